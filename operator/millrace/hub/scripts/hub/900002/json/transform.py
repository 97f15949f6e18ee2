"""Build a new JSON object from parts of another, each picked by a path."""

from typing import Any

MISSING = object()


def main(data: Any, mapping: dict, default: Any = None, strict: bool = False) -> dict:
    """`mapping` is {output key: path}. A path is dot-separated: keys of objects, indexes
    of arrays (`items.0.name`), and `*` for every element of an array or value of an object
    (`items.*.id` is the list of ids); "" is `data` itself. A path that finds nothing gives
    `default`, or fails the step when `strict` is true."""
    out = {}
    for key, path in mapping.items():
        found = pick(data, [part for part in str(path).split(".") if part != ""])
        if found is MISSING:
            if strict:
                raise KeyError(f"path '{path}' (for '{key}') finds nothing in the data")
            found = default
        out[key] = found
    return out


def pick(value: Any, parts: list) -> Any:
    for index, part in enumerate(parts):
        if part == "*":
            children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
            if children is None:
                return MISSING
            found = (pick(child, parts[index + 1:]) for child in children)
            return [item for item in found if item is not MISSING]
        value = step(value, part)
        if value is MISSING:
            return MISSING
    return value


def step(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return value.get(key, MISSING)
    if isinstance(value, list) and key.lstrip("-").isdigit() and -len(value) <= int(key) < len(value):
        return value[int(key)]
    return MISSING
