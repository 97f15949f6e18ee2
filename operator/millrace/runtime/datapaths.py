"""Windmill paths of variables, resources and states: one rule for both shells.

Paths are Windmill's (`u/alice/token`, `f/team/db`): segments of letters,
digits, `_`, `-` and `.`, none starting with a dot. Locally a path names a
file, so no path may leave its folder; in a cluster it is kept whole in an
annotation and hashed into the object's name, so `f/a-b` and `f/a/b` stay
two objects.
"""

from __future__ import annotations

import re

SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


class DataPathError(ValueError):
    """A variable, resource or state path that is not a Windmill path."""


def checked(path: str) -> str:
    segments = path.split("/")
    if not path or not all(SEGMENT.fullmatch(segment) for segment in segments):
        raise DataPathError(
            f"invalid path {path!r}: use segments of letters, digits, '_', '-' and '.', "
            "separated by '/', none empty or starting with '.' (e.g. u/alice/api_key)"
        )
    return path
