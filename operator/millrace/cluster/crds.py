"""The Flow and FlowRun CustomResourceDefinitions, built from the pydantic models.

Pure functions: `millrace crds` writes their output to crds/ and to the
chart, and a unit test fails when the committed files drift from the models.

The pydantic JSON schema is turned into a Kubernetes *structural* schema:
references are inlined, unions are merged into one schema (the apiserver
allows no types inside anyOf/oneOf), `X | None` becomes `nullable`, `Any`
and free-form mappings keep unknown fields, and OpenFlow objects keep
unknown fields too, because `millrace validate` reports them rather than
the apiserver pruning them silently. Defaults are left to the models so the
stored object stays exactly what the user applied. A few patterns and CEL
rules (below) let the apiserver refuse the obvious where no webhook runs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from ..model.resources import GROUP, VERSION, FlowRunSpec, FlowRunStatus, FlowSpec, FlowStatus

Schema = dict[str, Any]

# Module lists nest (loops, branches, sub-modules). Below this many levels of
# FlowModule the apiserver keeps the document as it is; the webhook and the
# models still validate it in full.
MODULE_DEPTH = 2
CATEGORY = "millrace"
# A digest of a CRD's spec, on the CRD: the chart refuses to upgrade over CRDs whose schema differs
# from the ones it ships (Helm never upgrades crds/), naming the command that applies them.
SCHEMA_ANNOTATION = "millrace.dev/schema"
PRESERVE = "x-kubernetes-preserve-unknown-fields"
_KEPT_KEYWORDS = ("description", "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                  "minLength", "maxLength", "pattern", "minItems", "maxItems", "format")
_ANY: Schema = {PRESERVE: True}


# (name, type, JSON path) of the columns `kubectl get` shows; Age comes last on both. Columns named in
# WIDE_COLUMNS show with `-o wide` only (priority 1).
FLOW_COLUMNS = (
    ("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
    ("Schedule", "string", ".spec.schedule.cron"),
    ("Last run", "string", ".status.lastRun"),
    ("Outcome", "string", ".status.lastRunPhase"),
    ("Next run", "string", ".status.nextScheduleTime"),
)
# Started is status.startTime (RFC 3339, a date column showing an age): status.startedAt
# is epoch seconds, which kubectl could only print as a bare number.
FLOWRUN_COLUMNS = (
    ("Flow", "string", ".status.flow"),
    ("Phase", "string", ".status.phase"),
    ("Step", "string", ".status.currentStep"),
    ("Started", "date", ".status.startTime"),
    ("Duration", "string", ".status.duration"),
    ("Error", "string", ".status.error.name"),
    ("Message", "string", ".status.error.message"),
)
WIDE_COLUMNS = frozenset({"Message"})
_AGE = ("Age", "date", ".metadata.creationTimestamp")


def flow_crd() -> dict[str, Any]:
    return _crd("Flow", "flows", ["fl"], FlowSpec, FlowStatus, FLOW_COLUMNS)


def flowrun_crd() -> dict[str, Any]:
    return _crd("FlowRun", "flowruns", ["fr"], FlowRunSpec, FlowRunStatus, FLOWRUN_COLUMNS)


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD document."""
    return {"flow.yaml": flow_crd(), "flowrun.yaml": flowrun_crd()}


def structural_schema(model: type[BaseModel]) -> Schema:
    """The model's JSON schema as a Kubernetes structural schema."""
    raw = model.model_json_schema(by_alias=True)
    return _with_rules(_convert(raw, raw.get("$defs", {}), ()), model.__name__)


def _with_rules(out: Schema, model: str) -> Schema:
    """The model's object schema with what _PROPERTY_RULES and _OBJECT_RULES add to it."""
    for (name, prop), keywords in _PROPERTY_RULES.items():
        if name == model:
            out["properties"][prop] = {**out["properties"][prop], **keywords}
    if model in _OBJECT_RULES:
        out[VALIDATIONS] = out.get(VALIDATIONS, []) + _OBJECT_RULES[model]
    return out


def _crd(kind: str, plural: str, short: list[str], spec: type[BaseModel], status: type[BaseModel],
         columns: tuple[tuple[str, str, str], ...]) -> dict[str, Any]:
    root: Schema = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural_schema(spec),
            "status": structural_schema(status),
        },
    }
    crd_spec: dict[str, Any] = {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "kind": kind,
            "listKind": f"{kind}List",
            "plural": plural,
            "singular": kind.lower(),
            "shortNames": short,
            "categories": [CATEGORY],
        },
        "versions": [{
            "name": VERSION,
            "served": True,
            "storage": True,
            "subresources": {"status": {}},
            "additionalPrinterColumns": [{"name": name, "type": of_type, "jsonPath": path,
                                          **({"priority": 1} if name in WIDE_COLUMNS else {})}
                                         for name, of_type, path in (*columns, _AGE)],
            "schema": {"openAPIV3Schema": root},
        }],
    }
    digest = hashlib.sha256(json.dumps(crd_spec, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "millrace"},
                     "annotations": {SCHEMA_ANNOTATION: digest}},
        "spec": crd_spec,
    }


# What the apiserver refuses beyond the models' types, enums and required fields, so that a cluster
# without the webhook still turns the obvious away (the webhook and `millrace validate` say the same
# with flow, step and field). Patterns the models leave to the validator, for its messages:
# (model, property) -> schema keywords.
CRON_SHAPE = r"(?i)^\s*(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+(\s+\S+){4,5})\s*$"
_PROPERTY_RULES: dict[tuple[str, str], Schema] = {
    ("FlowModule", "id"): {"minLength": 1, "pattern": "^[^/]+$"},  # step paths join ids with '/'
    ("Schedule", "cron"): {"pattern": CRON_SHAPE},  # five or six fields, or a shorthand
    ("Schedule", "timezone"): {"minLength": 1},
    ("FlowRef", "name"): {"minLength": 1},
    ("RestartFrom", "run"): {"minLength": 1},
    ("RestartFrom", "step"): {"minLength": 1},
}
# CEL rules on a model's object: model -> x-kubernetes-validations.
_OBJECT_RULES: dict[str, list[Schema]] = {
    "FlowRunSpec": [{"rule": "has(self.flowRef) != has(self.flow)",
                     "message": "set exactly one of spec.flowRef (a Flow of this namespace) and spec.flow "
                                "(an inline flow)"},
                    {"rule": "!has(self.restartFrom) || (has(self.flowRef) && !has(self.argsSecret))",
                     "message": "spec.restartFrom restarts a run of the Flow spec.flowRef names, with that run's args: "
                                "it goes with spec.flowRef, not with spec.flow or spec.argsSecret"}],
}
VALIDATIONS = "x-kubernetes-validations"
# Module levels whose module kinds get CEL rules for their required fields (see _convert).
RULE_DEPTH = 1

# Required fields the loader fills in before validation, so a Flow may leave them out:
# a module without an `id` gets one from its position (model/loader.py assign_default_ids).
_GIVEN_BY_LOADER: dict[str, set[str]] = {"FlowModule": {"id"}}


def _convert(node: Schema, defs: dict[str, Schema], stack: tuple[str, ...]) -> Schema:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if stack.count(name) >= MODULE_DEPTH:
            return {"type": "object", PRESERVE: True}
        out = _convert(defs[name], defs, stack + (name,))
        if name in _GIVEN_BY_LOADER and "required" in out:
            out["required"] = [f for f in out["required"] if f not in _GIVEN_BY_LOADER[name]]
            if not out["required"]:
                del out["required"]
        return _with_description(_with_rules(out, name), node)
    for union in ("anyOf", "oneOf"):
        if union in node:
            merged = _union(node[union], defs, stack)
            # Rules only outside nested module lists: the apiserver bounds the estimated cost of all
            # rules, and each list level multiplies it (the webhook checks the nested ones).
            rules = _required_by_kind(node[union], defs) if stack.count("FlowModule") <= RULE_DEPTH else []
            if rules and merged.get("type") == "object":
                merged = {**merged, VALIDATIONS: rules}
            return _with_description(merged, node)
    kind = node.get("type")
    out = {}
    if kind == "object":
        out = _object(node, defs, stack)
    elif kind == "array":
        out = {"type": "array", "items": _convert(node.get("items", {}), defs, stack)}
    elif kind is not None:
        out = {"type": kind}
    elif "const" not in node:
        return _with_description(dict(_ANY), node)
    if "const" in node:
        out = {"type": kind or "string", "enum": [node["const"]]}
    out.update({k: node[k] for k in _KEPT_KEYWORDS if k in node and k not in out})
    return out


def _object(node: Schema, defs: dict[str, Schema], stack: tuple[str, ...]) -> Schema:
    out: Schema = {"type": "object"}
    properties = {name: _convert(prop, defs, stack) for name, prop in node.get("properties", {}).items()}
    extra = node.get("additionalProperties")
    if properties:
        out["properties"] = properties
        if node.get("required"):
            out["required"] = list(node["required"])
    if isinstance(extra, dict) and extra and not properties:
        out["additionalProperties"] = _convert(extra, defs, stack)
    elif extra is True or extra == {} or not properties:
        # Extra-allowed OpenFlow objects and free-form mappings keep what they hold.
        out[PRESERVE] = True
    return out


def _union(variants: list[Schema], defs: dict[str, Schema], stack: tuple[str, ...]) -> Schema:
    nullable = any(v.get("type") == "null" for v in variants)
    schemas = [_convert(v, defs, stack) for v in variants if v.get("type") != "null"]
    merged = schemas[0]
    for other in schemas[1:]:
        merged = _merge(merged, other)
    if nullable:
        merged = {**merged, "nullable": True}
    return merged


def _required_by_kind(variants: list[Schema], defs: dict[str, Schema]) -> list[Schema]:
    """A merged union of objects told apart by `type` requires only what all variants do: a rule per
    variant puts back what its own kind requires (a rawscript its language, a for loop its iterator)."""
    rules = []
    for variant in variants:
        model = defs.get(variant.get("$ref", "").rsplit("/", 1)[-1], variant)
        kind = (model.get("properties") or {}).get("type", {}).get("const")
        needed = [f for f in model.get("required", []) if f != "type"]
        if isinstance(kind, str) and needed:
            # `type` may be absent where a variant has a default kind: no rule then (nothing to read).
            rules.append({"rule": f"!has(self.type) || self.type != '{kind}' || "
                                  + " && ".join(f"has(self.{f})" for f in needed),
                          "message": f"type {kind} needs {' and '.join(needed)}"})
    return rules


def _merge(a: Schema, b: Schema) -> Schema:
    """One schema accepting what either accepts (as closely as a structural schema can)."""
    if a == b:
        return a
    if a.get("type") != b.get("type") or a.get("type") is None:
        return dict(_ANY)
    out: Schema = {"type": a["type"]}
    if a.get("nullable") or b.get("nullable"):
        out["nullable"] = True
    if a["type"] == "array":
        out["items"] = _merge(a["items"], b["items"])
        return out
    if a["type"] != "object":
        if "enum" in a and "enum" in b:
            out["enum"] = a["enum"] + [v for v in b["enum"] if v not in a["enum"]]
        return out
    props_a, props_b = a.get("properties", {}), b.get("properties", {})
    names = list(props_a) + [n for n in props_b if n not in props_a]
    if names:
        out["properties"] = {
            n: _merge(props_a[n], props_b[n]) if n in props_a and n in props_b else props_a.get(n, props_b.get(n))
            for n in names
        }
    required = [n for n in a.get("required", []) if n in b.get("required", [])]
    if required:
        out["required"] = required
    if a.get(PRESERVE) or b.get(PRESERVE):
        out[PRESERVE] = True
    return out


def _with_description(schema: Schema, source: Schema) -> Schema:
    if "description" in source:
        return {**schema, "description": source["description"]}
    return schema
