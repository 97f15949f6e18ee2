"""Flow inputs checked against the flow's JSON schema before anything runs."""

from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Any

from ..errors import Problem

if TYPE_CHECKING:
    from jsonschema import FormatChecker

# jsonschema is imported by the functions that use it: a flow without a schema (and every
# command but `run` and `validate` of one with a schema) starts without it, a tenth of a second less.


@functools.cache
def _formats() -> FormatChecker:
    from jsonschema import FormatChecker

    return FormatChecker()


class InputError(ValueError):
    """Arguments that do not match the schema; `field` names the argument."""

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        super().__init__(message)


def apply_defaults(schema: dict[str, Any] | None, args: dict[str, Any]) -> dict[str, Any]:
    """Fill in `default` values for missing top-level (and nested object) properties."""
    out = copy.deepcopy(args)
    _fill(schema or {}, out)
    return out


def _fill(schema: dict[str, Any], value: dict[str, Any]) -> None:
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        if name not in value and "default" in prop:
            value[name] = copy.deepcopy(prop["default"])
        if isinstance(value.get(name), dict) and prop.get("type") == "object":
            _fill(prop, value[name])


def check_schema(schema: dict[str, Any] | None) -> str | None:
    """Return a message when the schema itself is not a valid JSON schema."""
    if not schema:
        return None
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(_strip_windmill_extensions(schema))
    except SchemaError as exc:
        return f"the flow's schema is not a valid JSON schema: {exc.message}"
    return None


def validate_inputs(schema: dict[str, Any] | None, args: dict[str, Any]) -> dict[str, Any]:
    """Apply defaults, then validate; raise InputError naming the first bad field."""
    filled = apply_defaults(schema, args)
    if not schema:
        return filled
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(_strip_windmill_extensions(schema), format_checker=_formats())
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = ".".join(str(p) for p in err.absolute_path)
        if err.validator == "required":
            missing = err.message.split("'")[1] if "'" in err.message else err.message
            field = ".".join(filter(None, [path, missing]))
            raise InputError(field, f"missing required input '{field}'")
        raise InputError(path or None, f"input '{path}': {err.message}" if path else err.message)
    return filled


def _strip_windmill_extensions(schema: dict[str, Any]) -> dict[str, Any]:
    """Windmill marks resources as `format: resource-<type>` and uses empty
    formats; those are annotations, not string formats to enforce."""
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: walk(v) for k, v in node.items()}
            fmt = out.get("format")
            if isinstance(fmt, str) and (not fmt or fmt.startswith("resource-")):
                out.pop("format")
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node
    return walk(schema)


# What YAML 1.1 (kubectl's and PyYAML's reading) makes of unquoted y, n, yes, no, on and off keys.
_YAML_BOOLEAN_KEYS = ("true", "false")


def unknown_args(flow: str, schema: dict[str, Any] | None, args: dict[str, Any]) -> list[Problem]:
    """Warnings for args the flow has no input for: they reach no step (the schema allows them,
    so they are no error). None when the schema declares no inputs."""
    known = (schema or {}).get("properties")
    if not isinstance(known, dict) or not known:
        return []
    found = []
    for name in args:
        if name in known:
            continue
        hint = ("; YAML 1.1, as kubectl reads it, turns unquoted y, n, yes, no, on and off into booleans, so an "
                "arg written that way arrives as 'true' or 'false': quote its name" if name in _YAML_BOOLEAN_KEYS else "")
        found.append(Problem(flow, f"'{name}' is not an input of flow '{flow}' (inputs: {', '.join(sorted(known))}){hint}",
                             field=f"args.{name}", warning=True))
    return found
