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


def parameters(code: str) -> list[str]:
    """Parameter names in position order, up to the first missing position."""
    by_position: dict[int, str] = {}
    for match in PARAMETER.finditer(code):
        position = int(next(group for group in match.groups()[1:] if group is not None))
        by_position[position] = match.group(1)
    names: list[str] = []
    while len(names) + 1 in by_position:
        names.append(by_position[len(names) + 1])
    return names


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def positional(code: str, args: dict[str, Any]) -> list[str]:
    return [as_text(args[name]) if name in args else "" for name in parameters(code)]
