"""Turn `--arg key=value` and `--args-file` into the flow's input object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import FlowError, Problem


def json_object_file(flow_name: str, path: Path, option: str, field: str, holding: str = "a JSON object") -> dict[str, Any]:
    """The JSON object in the file given to `option`; FlowError naming the flow and `field` otherwise."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise FlowError([Problem(flow_name, f"cannot read {option} {path}: {exc}", field=field)]) from None
    if not isinstance(loaded, dict):
        raise FlowError([Problem(flow_name, f"{option} {path} must hold {holding}", field=field)])
    return loaded


def parse_args(flow_name: str, schema: dict[str, Any] | None, pairs: list[str], args_file: Path | None) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if args_file is not None:
        args.update(json_object_file(flow_name, args_file, "--args-file", "args"))
    properties = (schema or {}).get("properties") or {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise FlowError([Problem(flow_name, f"--arg expects key=value, got {pair!r}", field="args")])
        args[key] = _coerce(raw, (properties.get(key) or {}).get("type"))
    return args


def _coerce(raw: str, declared: Any) -> Any:
    """Strings stay strings when the schema says so; anything else is read as JSON if it parses."""
    if declared == "string":
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw
