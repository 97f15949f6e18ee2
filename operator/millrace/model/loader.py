"""Read a flow from a file: a `kind: Flow` manifest or a bare OpenFlow file.

Windmill's CLI writes script bodies to separate files and refers to them as
`'!inline <file>'` strings (or an unquoted `!inline` YAML tag). They are
resolved next to the flow file; a missing one is recorded, not fatal, so the
rest of the document still validates.

A module without an `id` gets one from its position (Windmill gives it a
random one, `default_id` in windmill-types), recorded so validation can warn.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..errors import FlowError, Problem
from .flow import OpenFlow, openflow_of

if TYPE_CHECKING:
    import yaml

API_VERSION = "millrace.dev/v1alpha1"
INLINE_PREFIX = "!inline "
# Fields whose bodies we never need to run a step (dependency locks are
# resolved by the step image, not by millrace).
_OPTIONAL_INLINE_FIELDS = frozenset({"lock"})


@dataclass(frozen=True)
class MissingBody:
    step: str
    field: str
    file: str


@dataclass
class LoadedFlow:
    """A parsed flow plus what the loader noticed about it.

    `name` is what messages show; `key` keeps the flow's step states apart
    from every other flow's (the local shell sets it from the file's real
    location, so two flow files with the same name never share a state).
    """

    name: str
    flow: OpenFlow
    source: Path | None = None
    missing_bodies: list[MissingBody] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    default_ids: list[str] = field(default_factory=list)
    key: str = ""

    def __post_init__(self) -> None:
        self.key = self.key or self.name


class _InlineTag(str):
    """Marks an unquoted `!inline file` YAML tag."""


@functools.cache
def _yaml_loader() -> type[yaml.SafeLoader]:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def inline(loader: yaml.SafeLoader, node: yaml.Node) -> _InlineTag:
        return _InlineTag(loader.construct_scalar(node))  # type: ignore[arg-type]

    Loader.add_constructor("!inline", inline)
    return Loader


def parse_document(text: str, name: str) -> Any:
    """Parse YAML or JSON text, turning syntax errors into a located Problem."""
    if text.lstrip().startswith(("{", "[")):
        # JSON by the fast parser; YAML's (pure Python) reads what it refuses and locates errors.
        try:
            return json.loads(text)
        except ValueError:
            pass
    import yaml

    try:
        return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise FlowError([Problem(name, f"invalid YAML{where}: {problem}")]) from None


def parse_documents(text: str, name: str) -> list[Any]:
    """Every document of a YAML stream (`---` between them; empty ones left out), or the one JSON document."""
    if "\n---" not in text and not text.startswith("---"):
        return [parse_document(text, name)]
    import yaml

    try:
        return [doc for doc in yaml.load_all(text, Loader=_yaml_loader()) if doc is not None]  # noqa: S506
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise FlowError([Problem(name, f"invalid YAML{where}: {problem}")]) from None


@dataclass
class FlowDocument:
    """One document of a flow file: what messages call it until its own name is known, and its content."""

    default_name: str
    raw: Any


def read_flow_documents(path: Path) -> tuple[Path, list[FlowDocument]]:
    """The file's real location and its documents; one of several is named <file name>#<position> by default."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowError([Problem(str(path), f"cannot read flow file: {exc.strerror}")]) from None
    # The real location, so that how the path was typed (`flow.yaml` from inside
    # `x.flow/`, or `/abs/x.flow/flow.yaml`) changes neither the name nor the key.
    real = path.resolve()
    default_name = _default_name(real)
    docs = parse_documents(text, default_name)
    if len(docs) == 1:
        return real, [FlowDocument(default_name, docs[0])]
    return real, [FlowDocument(f"{default_name}#{i}", doc) for i, doc in enumerate(docs, 1)]


def load_flow_file(path: Path) -> LoadedFlow:
    """Load a manifest or bare OpenFlow file from disk: one flow (`millrace validate` reads files of several)."""
    real, docs = read_flow_documents(path)
    if len(docs) != 1:
        raise FlowError([Problem(str(path), f"holds {len(docs)} documents where one flow is expected "
                                            "(millrace validate checks each document of a file)")])
    return load_flow_document(docs[0].raw, docs[0].default_name, base_dir=real.parent, source=real)


def load_flow_document(
    raw: Any, default_name: str, *, base_dir: Path | None = None, source: Path | None = None
) -> LoadedFlow:
    """Build a LoadedFlow from an already parsed document."""
    if not isinstance(raw, dict):
        raise FlowError([Problem(default_name, "a flow document must be a mapping")])
    manifest: dict[str, Any] | None = None
    name = default_name
    if "apiVersion" in raw or "kind" in raw:
        manifest = raw
        name, raw = _unwrap_manifest(raw, default_name)
    if "value" not in raw or not isinstance(raw.get("value"), dict):
        raise FlowError([Problem(name, "missing 'value' (the OpenFlow document has no value.modules)", field="value")])
    if "modules" not in raw["value"]:
        raise FlowError([Problem(name, "missing 'value.modules'", field="value.modules")])
    default_ids: list[str] = []
    if _has_module_without_id(raw["value"]):
        raw = copy.deepcopy(raw)  # ids are given in place; the caller's document stays as it was
        default_ids = assign_default_ids(raw["value"])
    missing: list[MissingBody] = []
    resolved = _resolve_inline(raw, base_dir, [], missing)
    try:
        flow = OpenFlow.model_validate(resolved)
    except ValidationError as exc:
        raise FlowError(_problems_from_validation(exc, resolved, name)) from None
    return LoadedFlow(name=name, flow=flow, source=source, missing_bodies=missing, manifest=manifest,
                      default_ids=default_ids)


def assign_default_ids(value: dict[str, Any]) -> list[str]:
    """Give every module mapping without an `id` one from its position; return the ids given.

    Top-level module 2 is `module_2`, the first step of its body (or of its branch 1:
    `module_2_1_0`, of its default branch: `module_2_default_0`) `module_2_0`; an
    underscore is added while the id is already taken, so no id clashes with another.
    """
    taken: set[str] = set()

    def take(module: dict[str, Any], _: str) -> None:
        if isinstance(module.get("id"), str):
            taken.add(module["id"])

    _each_module(value, "", take)
    given: list[str] = []

    def give(module: dict[str, Any], position: str) -> None:
        if "id" in module:
            return
        new_id = position
        while new_id in taken:
            new_id += "_"
        module["id"] = new_id
        taken.add(new_id)
        given.append(new_id)

    _each_module(value, "", give)
    return given


def _has_module_without_id(value: dict[str, Any]) -> bool:
    without: list[str] = []

    def visit(module: dict[str, Any], position: str) -> None:
        if "id" not in module:
            without.append(position)

    _each_module(value, "", visit)
    return bool(without)


def _each_module(value: Any, position: str, visit: Callable[[dict[str, Any], str], None]) -> None:
    """Call visit(module mapping, position) for every module under a flow or module value, in order."""
    if not isinstance(value, dict):
        return
    lists: list[tuple[str, Any]] = [("modules", value.get("modules"))]
    lists += [(str(i), b.get("modules")) for i, b in enumerate(value.get("branches") or []) if isinstance(b, dict)]
    lists.append(("default", value.get("default")))
    for label, modules in lists:
        for i, module in enumerate(modules if isinstance(modules, list) else []):
            if not isinstance(module, dict):
                continue
            if position:
                here = f"{position}_{i}" if label == "modules" else f"{position}_{label}_{i}"
            else:
                here = f"module_{i}"
            visit(module, here)
            _each_module(module.get("value"), here, visit)
    for special in ("failure_module", "preprocessor_module"):
        module = value.get(special) if not position else None
        if isinstance(module, dict):
            visit(module, special.removesuffix("_module"))
            _each_module(module.get("value"), special.removesuffix("_module"), visit)


def _default_name(path: Path) -> str:
    # Windmill folders are named `<name>.flow/flow.yaml` or `<name>__flow/flow.yaml`.
    if path.stem == "flow":
        parent = path.parent.name
        for suffix in (".flow", "__flow"):
            if parent.endswith(suffix):
                return parent[: -len(suffix)]
        return parent or path.stem
    return path.name.split(".")[0]


def _unwrap_manifest(raw: dict[str, Any], default_name: str) -> tuple[str, dict[str, Any]]:
    name = str((raw.get("metadata") or {}).get("name") or default_name)
    problems = []
    if raw.get("apiVersion") != API_VERSION:
        problems.append(Problem(name, f"apiVersion must be '{API_VERSION}', not {raw.get('apiVersion')!r}", field="apiVersion"))
    if raw.get("kind") != "Flow":
        problems.append(Problem(name, f"kind must be 'Flow', not {raw.get('kind')!r}", field="kind"))
    spec = raw.get("spec")
    if not isinstance(spec, dict):
        problems.append(Problem(name, "a Flow manifest needs a 'spec' mapping holding the OpenFlow document", field="spec"))
    if problems or not isinstance(spec, dict):
        raise FlowError(problems)
    return name, openflow_of(spec)


def _inline_ref(value: Any) -> str | None:
    if isinstance(value, _InlineTag):
        return value.strip()
    if isinstance(value, str) and value.startswith(INLINE_PREFIX):
        # A block scalar may fold the reference over a line break.
        return " ".join(value[len(INLINE_PREFIX):].split())
    return None


def _resolve_inline(
    node: Any, base_dir: Path | None, stack: list[str], missing: list[MissingBody]
) -> Any:
    """Replace `!inline` references by file contents, recording missing files."""
    if isinstance(node, dict):
        ids = stack + [str(node["id"])] if isinstance(node.get("id"), str) and "value" in node else stack
        out: dict[str, Any] = {}
        for key, value in node.items():
            ref = _inline_ref(value)
            if ref is None:
                out[key] = _resolve_inline(value, base_dir, ids, missing)
                continue
            body = _read_inline(base_dir, ref)
            if body is None:
                if key not in _OPTIONAL_INLINE_FIELDS:
                    missing.append(MissingBody(step="/".join(ids) or "-", field=key, file=ref))
                out[key] = None
            else:
                out[key] = body
        return out
    if isinstance(node, list):
        return [_resolve_inline(item, base_dir, stack, missing) for item in node]
    return node


def _read_inline(base_dir: Path | None, ref: str) -> str | None:
    if base_dir is None:
        return None
    target = (base_dir / ref).resolve()
    # An inline reference never reaches outside the flow's folder.
    if base_dir.resolve() not in target.parents:
        return None
    try:
        return target.read_text(encoding="utf-8")
    except OSError:
        return None


def _problems_from_validation(exc: ValidationError, raw: dict[str, Any], name: str) -> list[Problem]:
    problems = []
    for err in exc.errors():
        step, fld = _locate(raw, err["loc"])
        message = err["msg"]
        if err["type"] == "union_tag_invalid":
            tag = (err.get("ctx") or {}).get("tag")
            expected = (err.get("ctx") or {}).get("expected_tags")
            message = f"unknown type {tag!r} (expected one of {expected})"
        elif err["type"] == "union_tag_not_found":
            message = "missing 'type'"
        problems.append(Problem(name, message, step=step, field=fld))
    return problems


def _locate(raw: Any, loc: tuple[Any, ...]) -> tuple[str | None, str | None]:
    """Turn a pydantic error location into (module path, field within it)."""
    node = raw
    ids: list[str] = []
    field_parts: list[str] = []
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            # Discriminator names (e.g. 'rawscript') appear in loc but not in data.
            continue
        if isinstance(node, dict) and isinstance(node.get("id"), str) and "value" in node:
            ids.append(node["id"])
            field_parts = []
        else:
            field_parts.append(str(part))
    return ("/".join(ids) or None, ".".join(field_parts) or None)


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
