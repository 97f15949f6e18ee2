"""The committed CRDs are what the generator makes from the models, and they are structural."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from millrace.cli.crds import DEFAULT_OUT, render
from millrace.cluster.crds import CRON_SHAPE, PRESERVE, SCHEMA_ANNOTATION, VALIDATIONS, all_crds, flow_crd, flowrun_crd

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("folder", DEFAULT_OUT, ids=str)
@pytest.mark.parametrize("name", sorted(all_crds()))
def test_committed_crds_match_the_models(folder: Path, name: str) -> None:
    committed = REPO / folder / name
    assert committed.exists(), f"{folder / name} is missing: run `make crds`"
    expected = render(all_crds()[name])
    assert committed.read_text(encoding="utf-8") == expected, (
        f"{folder / name} drifted from the pydantic models: run `make crds` (millrace crds) and commit the result")


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, prop in (schema.get("properties") or {}).items():
        yield from _nodes(prop, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _nodes(schema[key], f"{path}[{key}]")


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("crd", [flow_crd(), flowrun_crd()], ids=["flow", "flowrun"])
def test_schemas_are_structural(crd: dict[str, Any]) -> None:
    for path, node in _nodes(_schema(crd)):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "const", "default", "title"} & node.keys(), path
        assert node.get("type") or node.get(PRESERVE), f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path


def test_openflow_objects_keep_unknown_fields_and_kube_objects_do_not() -> None:
    spec = _schema(flow_crd())["properties"]["spec"]
    module = spec["properties"]["value"]["properties"]["modules"]["items"]
    assert module[PRESERVE] is True  # validate reports unknown OpenFlow fields: they must reach it
    assert PRESERVE not in spec["properties"]["schedule"]
    assert spec["properties"]["schedule"]["nullable"] is True


def test_recursive_modules_are_cut_below_the_module_depth() -> None:
    spec = _schema(flow_crd())["properties"]["spec"]
    top = spec["properties"]["value"]["properties"]["modules"]["items"]
    child = top["properties"]["value"]["properties"]["modules"]["items"]
    assert child["properties"]["id"] == {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
    grandchild = child["properties"]["value"]["properties"]["modules"]["items"]
    assert grandchild == {"type": "object", PRESERVE: True}


def test_unions_merge_and_any_keeps_everything() -> None:
    module = _schema(flow_crd())["properties"]["spec"]["properties"]["value"]["properties"]["modules"]["items"]
    value = module["properties"]["value"]
    assert value["required"] == ["type"]
    assert {"rawscript", "forloopflow", "branchone"} <= set(value["properties"]["type"]["enum"])
    transform = value["properties"]["input_transforms"]["additionalProperties"]
    assert transform["properties"]["type"]["enum"] == ["static", "javascript"]
    assert transform["properties"]["value"] == {PRESERVE: True}
    assert module["properties"]["timeout"] == {PRESERVE: True, "nullable": True}  # transform or integer


def test_names_category_status_and_printer_columns() -> None:
    flow, run = flow_crd(), flowrun_crd()
    assert flow["metadata"]["name"] == "flows.millrace.dev"
    assert flow["spec"]["names"]["shortNames"] == ["fl"]
    assert run["spec"]["names"]["shortNames"] == ["fr"]
    for crd in (flow, run):
        version = crd["spec"]["versions"][0]
        assert crd["spec"]["names"]["categories"] == ["millrace"]
        assert version["subresources"] == {"status": {}}
    run_columns = {c["name"]: c for c in run["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert [*run_columns] == ["Flow", "Phase", "Step", "Started", "Duration", "Error", "Message", "Age"]
    assert run_columns["Message"]["priority"] == 1 and "priority" not in run_columns["Error"]  # -o wide only
    assert run_columns["Started"] == {"name": "Started", "type": "date", "jsonPath": ".status.startTime"}
    status = _schema(run)["properties"]["status"]["properties"]
    for column in run_columns.values():
        if column["jsonPath"].startswith(".status."):
            assert column["jsonPath"].split(".")[2] in status
    flow_columns = [c["name"] for c in flow["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert flow_columns[:5] == ["Ready", "Schedule", "Last run", "Outcome", "Next run"]


def test_rendered_documents_parse_back() -> None:
    for document in all_crds().values():
        assert yaml.safe_load(render(document)) == document


def test_arrays_of_merged_items_keep_an_item_schema() -> None:
    for crd in (flow_crd(), flowrun_crd()):
        for path, node in _nodes(_schema(crd)):
            if node.get("type") == "array":
                assert isinstance(node.get("items"), dict), path


def _rules(schema: dict[str, Any]) -> list[str]:
    return [rule["rule"] for rule in schema.get(VALIDATIONS, [])]


def test_each_module_kind_requires_its_fields_at_the_top_of_the_module_tree() -> None:
    modules = _schema(flow_crd())["properties"]["spec"]["properties"]["value"]["properties"]["modules"]
    value = modules["items"]["properties"]["value"]
    assert "!has(self.type) || self.type != 'rawscript' || has(self.language)" in _rules(value)
    assert "!has(self.type) || self.type != 'forloopflow' || has(self.modules) && has(self.iterator)" in _rules(value)
    transform = value["properties"]["input_transforms"]["additionalProperties"]
    assert _rules(transform) == ["!has(self.type) || self.type != 'javascript' || has(self.expr)"]
    # Nested module lists carry none: each level multiplies the apiserver's estimated cost.
    inner = value["properties"]["modules"]["items"]["properties"]["value"]
    assert _rules(inner) == [] and inner["required"] == ["type"]


def test_a_flowrun_names_exactly_one_flow() -> None:
    spec = _schema(flowrun_crd())["properties"]["spec"]
    assert _rules(spec)[0] == "has(self.flowRef) != has(self.flow)"
    assert spec["properties"]["flowRef"]["properties"]["name"]["minLength"] == 1


def test_a_restart_goes_with_a_flow_ref_and_no_args_secret() -> None:
    spec = _schema(flowrun_crd())["properties"]["spec"]
    assert _rules(spec)[1] == "!has(self.restartFrom) || (has(self.flowRef) && !has(self.argsSecret))"
    restart = spec["properties"]["restartFrom"]
    assert restart["required"] == ["run", "step"]
    assert restart["properties"]["run"]["minLength"] == restart["properties"]["step"]["minLength"] == 1


@pytest.mark.parametrize(("cron", "shaped"), [
    ("0 6 * * *", True), ("*/5 * * * * *", True), ("@daily", True), ("@Hourly", True), (" 0  6 * * 1-5 ", True),
    ("every day", False), ("0 6 * *", False), ("0 0 6 * * * *", False), ("@fortnightly", False), ("", False),
])
def test_the_cron_shape_admits_what_the_schedule_reads(cron: str, shaped: bool) -> None:
    # Python's re and the apiserver's (Go) agree on this pattern's syntax.
    assert bool(re.match(CRON_SHAPE, cron)) == shaped


def test_each_crd_carries_the_digest_of_its_spec() -> None:
    first, second = flow_crd(), flow_crd()
    assert first["metadata"]["annotations"][SCHEMA_ANNOTATION] == second["metadata"]["annotations"][SCHEMA_ANNOTATION]
    assert flow_crd()["metadata"]["annotations"] != flowrun_crd()["metadata"]["annotations"]
