"""Turn `--arg key=value` and `--args-file` into the flow's input object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import FlowError, Problem


def parse_args(flow_name: str, schema: dict[str, Any] | None, pairs: list[str], args_file: Path | None) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if args_file is not None:
        try:
            loaded = json.loads(args_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise FlowError([Problem(flow_name, f"cannot read --args-file {args_file}: {exc}", field="args")]) from None
        if not isinstance(loaded, dict):
            raise FlowError([Problem(flow_name, f"--args-file {args_file} must hold a JSON object", field="args")])
        args.update(loaded)
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
