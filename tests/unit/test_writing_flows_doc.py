"""docs/writing-flows.md: every YAML example is a manifest the validating webhook admits with no
error and no warning (the checks of `millrace validate`); the ConfigMaps and Secrets beside them
are labelled as the operator reads them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from millrace.cluster.admission import review_flow, review_flowrun
from millrace.expressions import Sandbox

DOC = Path(__file__).resolve().parents[2] / "docs" / "writing-flows.md"
KINDS = {"variable", "resource", "script"}


def blocks() -> list[list[dict[str, Any]]]:
    found = re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)
    return [[doc for doc in yaml.safe_load_all(text) if doc] for text in found]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


def test_the_page_has_examples_of_every_feature() -> None:
    kinds = {doc["kind"] for block in blocks() for doc in block}
    assert {"Flow", "FlowRun", "ConfigMap", "Secret"} <= kinds
    text = yaml.safe_dump(blocks())
    for feature in ("forloopflow", "whileloopflow", "branchone", "branchall", "type: script", "type: flow",
                    "failure_module", "preprocessor_module", "suspend", "retry", "timeout", "sleep", "skip_if",
                    "stop_after_if", "continue_on_error", "same_worker", "$var:", "resource(", "set_state",
                    "set_flow_user_state", "early_return", "type: static"):
        assert feature in text, feature


@pytest.mark.parametrize("index", range(len(blocks())))
def test_each_example_is_admitted_without_errors_or_warnings(sandbox: Sandbox, index: int) -> None:
    docs = blocks()[index]
    flows = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Flow"}
    for doc in docs:
        assert doc["apiVersion"] in ("millrace.dev/v1alpha1", "v1"), doc
        name = doc["metadata"]["name"]
        if doc["kind"] == "Flow":
            review = review_flow(name, doc["spec"], sandbox)
        elif doc["kind"] == "FlowRun":
            review = review_flowrun(name, doc["spec"], sandbox, flows.get)
        else:
            assert doc["kind"] in ("ConfigMap", "Secret"), doc
            assert doc["metadata"]["labels"]["millrace.dev/kind"] in KINDS
            assert doc["metadata"]["annotations"]["millrace.dev/path"].replace("/", "-") == name
            assert "value" in (doc.get("data") or doc.get("stringData") or {}) or doc["metadata"]["labels"]["millrace.dev/kind"] == "script"
            continue
        assert (review.errors, review.warnings) == ([], []), (name, review)
