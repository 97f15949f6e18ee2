"""Windmill's bash signature: how a bash step's named arguments become positional.

Windmill reads parameters from lines `name="$1"`, `name="${2}"` or
`name="${3:-default}"` (a trailing comment allowed), numbered from 1 with no
gap, and passes each argument as a string: a JSON string as it is, any other
JSON value as its JSON text, a missing one as "" (so `${N:-default}` applies).
"""

from __future__ import annotations

import json
import re
from typing import Any

PARAMETER = re.compile(r'^(\w+)="\$(?:(\d+)|\{(\d+)\}|\{(\d+):-.*\})"[\t ]*(?:#.*)?\r?$', re.MULTILINE)


def declared(code: str) -> list[tuple[str, bool]]:
    """(name, has a `${N:-default}`) of each parameter in position order, up to the first missing position."""
    by_position: dict[int, tuple[str, bool]] = {}
    for match in PARAMETER.finditer(code):
        position = int(next(group for group in match.groups()[1:] if group is not None))
        by_position[position] = (match.group(1), match.group(4) is not None)
    found: list[tuple[str, bool]] = []
    while len(found) + 1 in by_position:
        found.append(by_position[len(found) + 1])
    return found


def parameters(code: str) -> list[str]:
    """Parameter names in position order, up to the first missing position."""
    return [name for name, _ in declared(code)]


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def positional(code: str, args: dict[str, Any]) -> list[str]:
    return [as_text(args[name]) if name in args else "" for name in parameters(code)]
