"""The webhook's checks: the messages of `millrace validate`, FlowRun args against the flow's schema."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from millrace.cluster.admission import flow_ready_condition, review_flow, review_flowrun, review_flowrun_update
from millrace.engine.library import Library

from .planner_harness import _SANDBOX

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((REPO / "examples" / "hello-flow.yaml").read_text())


def spec() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLE["spec"])


def _cli_errors(tmp_path: Path, flow_spec: dict[str, Any]) -> list[str]:
    path = tmp_path / "hello-flow.yaml"
    path.write_text(yaml.safe_dump({**EXAMPLE, "spec": flow_spec}))
    proc = subprocess.run([sys.executable, "-m", "millrace.cli.main", "validate", str(path)],
                          capture_output=True, text=True, check=False)
    return [line.removeprefix("error: ") for line in proc.stderr.splitlines() if line.startswith("error: ")]


def test_a_valid_flow_is_allowed() -> None:
    review = review_flow("hello-flow", spec(), _SANDBOX)
    assert review.allowed and review.errors == []


@pytest.mark.parametrize("change", ["duplicate", "expression", "nested_typo"])
def test_messages_are_those_of_millrace_validate(tmp_path: Path, change: str) -> None:
    broken = spec()
    modules = broken["value"]["modules"]
    if change == "duplicate":
        modules[1]["id"] = "greet"
    elif change == "expression":
        modules[0]["value"]["input_transforms"]["name"]["expr"] = "flow_input.name +"
    else:
        modules[1]["retry"] = {"constant": {"atempts": 3}}
    review = review_flow("hello-flow", broken, _SANDBOX)
    assert not review.allowed
    assert review.errors == _cli_errors(tmp_path, broken)


def test_specific_messages() -> None:
    broken = spec()
    broken["value"]["modules"][1]["id"] = "greet"
    errors = review_flow("hello-flow", broken, _SANDBOX).errors
    assert "flow 'hello-flow', step 'greet', field 'id': duplicate step id 'greet' (also used at 'greet')" in errors


def test_a_flow_that_does_not_load_is_rejected_with_the_field() -> None:
    broken = spec()
    broken["value"]["modules"][0]["value"]["type"] = "nonsense"
    errors = review_flow("hello-flow", broken, _SANDBOX).errors
    assert len(errors) == 1 and "step 'greet'" in errors[0] and "unknown type 'nonsense'" in errors[0]


def test_kubernetes_settings_beside_the_openflow_document_are_not_openflow_fields() -> None:
    with_settings = {**spec(), "schedule": {"cron": "*/5 * * * *"}, "runtime": {"images": {"python3": "py"}}}
    assert review_flow("hello-flow", with_settings, _SANDBOX) == review_flow("hello-flow", spec(), _SANDBOX)


def test_paths_are_left_to_the_reconciler_unless_a_library_is_given() -> None:
    by_path = spec()
    by_path["value"]["modules"].append({"id": "ext", "value": {"type": "script", "path": "f/lib/x"}})
    assert review_flow("hello-flow", by_path, _SANDBOX).allowed
    condition = flow_ready_condition("hello-flow", by_path, 3, _SANDBOX, library=Library())
    assert condition.status == "False" and "script 'f/lib/x' was not found" in condition.message


def test_warnings_do_not_reject() -> None:
    flagged = spec()
    flagged["value"]["modules"][0]["priority"] = 3
    review = review_flow("hello-flow", flagged, _SANDBOX)
    assert review.allowed and any("'priority' is accepted but not honoured" in w for w in review.warnings)


def _lookup(name: str) -> dict[str, Any] | None:
    return EXAMPLE if name == "hello-flow" else None


def test_flowrun_args_must_match_the_flow_schema() -> None:
    ok = review_flowrun("r", {"flowRef": {"name": "hello-flow"}, "args": {"name": "x", "times": 2}}, _SANDBOX, _lookup)
    assert ok.allowed
    bad = review_flowrun("r", {"flowRef": {"name": "hello-flow"}, "args": {"name": "x", "times": "two"}},
                         _SANDBOX, _lookup)
    assert bad.errors == ["flowrun 'r': args do not match the schema of flow 'hello-flow': "
                          "input 'times': 'two' is not of type 'integer'"]
    missing = review_flowrun("r", {"flowRef": {"name": "hello-flow"}, "args": {}}, _SANDBOX, _lookup)
    assert missing.allowed  # name has a default


def test_args_the_flow_has_no_input_for_are_warned_about() -> None:
    # `on: 1` in a manifest reaches the apiserver as {"true": 1}: kubectl reads YAML 1.1.
    review = review_flowrun("r", {"flowRef": {"name": "hello-flow"}, "args": {"name": "x", "true": 1, "nmae": "y"}},
                            _SANDBOX, _lookup)
    assert review.allowed and len(review.warnings) == 2
    boolean, typo = sorted(review.warnings, key=lambda w: "nmae" in w)
    assert boolean.startswith("flowrun 'r': spec.args.true: 'true' is not an input of flow 'hello-flow' "
                              "(inputs: name, times)")
    assert "quote its name" in boolean
    assert "spec.args.nmae: 'nmae' is not an input" in typo and "quote" not in typo


def test_flowrun_needs_exactly_one_flow() -> None:
    both = review_flowrun("r", {"flowRef": {"name": "hello-flow"}, "flow": spec()}, _SANDBOX, _lookup)
    neither = review_flowrun("r", {"args": {}}, _SANDBOX, _lookup)
    for review in (both, neither):
        assert review.errors == ["flowrun 'r': set exactly one of spec.flowRef (a Flow of this namespace) "
                                 "and spec.flow (an inline flow)"]


def test_an_inline_flow_is_validated_and_its_schema_applies() -> None:
    broken = spec()
    broken["value"]["modules"][1]["id"] = "greet"
    assert "duplicate step id 'greet'" in review_flowrun("r", {"flow": broken}, _SANDBOX, _lookup).errors[0]
    bad_args = review_flowrun("r", {"flow": spec(), "args": {"times": 0}}, _SANDBOX, _lookup)
    assert bad_args.errors == ["flowrun 'r': args do not match the schema of flow 'r': "
                               "input 'times': 0 is less than the minimum of 1"]


def test_a_missing_flow_is_a_warning_since_objects_may_be_applied_in_any_order() -> None:
    review = review_flowrun("r", {"flowRef": {"name": "later"}}, _SANDBOX, _lookup)
    assert review.allowed and review.warnings == ["flowrun 'r': flow 'later' does not exist (yet) in this namespace"]


def test_ready_condition_reports_every_error_with_the_generation() -> None:
    broken = spec()
    broken["value"]["modules"][1]["id"] = "greet"
    broken["value"]["modules"][0]["retry"] = {"constant": {"atempts": 3}}
    condition = flow_ready_condition("hello-flow", broken, 7, _SANDBOX)
    assert (condition.type, condition.status, condition.reason) == ("Ready", "False", "Invalid")
    assert condition.observed_generation == 7
    lines = condition.message.splitlines()
    assert any("duplicate step id 'greet'" in line for line in lines)
    assert any("field 'retry.constant.atempts': unknown field" in line for line in lines)
    good = flow_ready_condition("hello-flow", spec(), 8, _SANDBOX)
    assert (good.status, good.reason, good.observed_generation) == ("True", "Valid", 8)
    assert good.model_dump(by_alias=True, exclude_none=True)["observedGeneration"] == 8


def _stored_run(spec_: dict[str, Any], phase: str | None = "Running") -> dict[str, Any]:
    return {"metadata": {"name": "r", "finalizers": ["x"]}, "spec": spec_,
            "status": {"phase": phase} if phase else {}}


def test_an_update_that_leaves_the_spec_alone_or_only_cancels_always_passes() -> None:
    broken = spec()
    broken["value"]["modules"][1]["id"] = "greet"  # invalid today (say the schema tightened since)
    old = _stored_run({"flow": broken})
    unchanged = {**old, "metadata": {"name": "r", "finalizers": []}}
    assert review_flowrun_update("r", old, unchanged, _SANDBOX, _lookup).allowed
    cancelled = {**old, "spec": {"flow": broken, "cancel": True}}
    assert review_flowrun_update("r", old, cancelled, _SANDBOX, _lookup).allowed


def test_the_spec_of_a_started_run_is_immutable_except_cancel() -> None:
    old = _stored_run({"flowRef": {"name": "hello-flow"}, "args": {"name": "x"}})
    moved = {**old, "spec": {"flowRef": {"name": "other"}, "args": {"name": "x"}, "cancel": True}}
    review = review_flowrun_update("r", old, moved, _SANDBOX, _lookup)
    assert review.errors == ["flowrun 'r': the spec of a run that started is immutable except spec.cancel "
                             "(changed: spec.flowRef); create a new FlowRun instead"]


def test_a_run_that_has_not_started_may_change_but_is_checked_again() -> None:
    old = _stored_run({"flowRef": {"name": "hello-flow"}, "args": {"name": "x"}}, phase=None)
    bad = {**old, "spec": {"flowRef": {"name": "hello-flow"}, "args": {"name": "x", "times": "two"}}}
    assert "input 'times': 'two' is not of type 'integer'" in review_flowrun_update("r", old, bad, _SANDBOX, _lookup).errors[0]
    good = {**old, "spec": {"flowRef": {"name": "hello-flow"}, "args": {"name": "y"}}}
    assert review_flowrun_update("r", old, good, _SANDBOX, _lookup).allowed


def test_a_restarted_flowrun_names_its_flow_a_top_level_step_and_no_args() -> None:
    """spec.restartFrom (engine/restart.py): the args are the earlier run's; the step is a top-level one."""
    restart = {"flowRef": {"name": "hello-flow"}, "restartFrom": {"run": "r0", "step": "greet"}}
    assert review_flowrun("r", restart, _SANDBOX, _lookup).allowed
    unknown = review_flowrun("r", {**restart, "restartFrom": {"run": "r0", "step": "nope"}}, _SANDBOX, _lookup)
    assert unknown.errors == ["flow 'hello-flow', step 'nope', field 'spec.restartFrom.step': no such top-level step "
                              "in the flow (a run restarts from a top-level step)"]
    with_args = review_flowrun("r", {**restart, "args": {"name": "x"}}, _SANDBOX, _lookup)
    assert with_args.errors == ["flowrun 'r': spec.args: a restarted run gets the args of the run it restarts, leave it out"]
    itself = review_flowrun("r", {**restart, "restartFrom": {"run": "r", "step": "greet"}}, _SANDBOX, _lookup)
    assert itself.errors == ["flowrun 'r': spec.restartFrom.run: a run cannot restart itself"]
    inline = review_flowrun("r", {"flow": spec(), "restartFrom": {"run": "r0", "step": "greet"}}, _SANDBOX, _lookup)
    assert any("it does not go with spec.flow" in e for e in inline.errors)
    # A Flow not known yet, or whose steps take ids from the loader: the reconciler checks the step.
    later = {"flowRef": {"name": "later"}, "restartFrom": {"run": "r0", "step": "x"}}
    assert review_flowrun("r", later, _SANDBOX, _lookup).allowed
