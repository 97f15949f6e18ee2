"""The parameter names of a Go step's `func main(...)`, in order.

Windmill's Go convention (windmill_parser_go parse_go_sig): the script's
`main` takes the step's arguments as its parameters, by name. The wrapper
decodes each argument into the parameter's type by reflection, so only the
names are read here. Grouped names (`a, b int`) share the type that follows.
"""

from __future__ import annotations

import re

_MAIN = re.compile(r"^func\s+main\s*\(", re.MULTILINE)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPEN, _CLOSE = "([{", ")]}"


class GoSignatureError(ValueError):
    """The script has no `func main(...)` whose parameters can be read."""


def parameter_names(code: str) -> list[str]:
    found = _MAIN.search(code)
    if found is None:
        raise GoSignatureError("the Go script has no `func main(...)`")
    depth, start, parts = 0, found.end(), []
    for index in range(found.end(), len(code)):
        char = code[index]
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            if depth == 0:
                parts.append(code[start:index])
                break
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(code[start:index])
            start = index + 1
    else:
        raise GoSignatureError("the Go script's `func main(` has no closing parenthesis")
    names = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        name = _NAME.match(part)
        if name is None:
            raise GoSignatureError(f"cannot read the parameter '{part}' of main: give every parameter a name")
        names.append(name.group())
    return names
