"""Static validation: every problem reported with flow, step and field."""

from __future__ import annotations

from typing import Any

from millrace.engine.library import Library
from millrace.engine.validate import validate_flow
from millrace.model.loader import load_flow_document

from .planner_harness import _SANDBOX, script


def problems(*modules: dict[str, Any], library: Library | None = None, **value: Any) -> list[str]:
    loaded = load_flow_document({"summary": "t", "value": {"modules": list(modules), **value}}, "f")
    return [str(p) for p in validate_flow(loaded, library or Library(), _SANDBOX) if not p.warning]


def warnings(*modules: dict[str, Any], library: Library | None = None, **value: Any) -> list[str]:
    loaded = load_flow_document({"summary": "t", "value": {"modules": list(modules), **value}}, "f")
    return [str(p) for p in validate_flow(loaded, library or Library(), _SANDBOX) if p.warning]


def test_a_valid_flow_has_no_problems() -> None:
    assert problems(script("a"), script("b", {"x": "results.a"})) == []


def test_duplicate_ids_are_reported() -> None:
    found = problems(script("a"), {"id": "l", "value": {"type": "forloopflow", "iterator": {"type": "static", "value": []},
                                                      "skip_failures": False, "modules": [script("a")]}})
    assert any("duplicate step id 'a'" in p and "step 'l/*/a'" in p for p in found)


# Windmill evaluates `results.<id>` of a step that has not run to null
# (backend/tests test_flow_results_non_existent_step): accepted, with a warning.
def test_results_of_a_later_step_are_a_warning_not_an_error() -> None:
    modules = (script("a", {"x": "results.b"}), script("b"))
    assert problems(*modules) == []
    assert warnings(*modules) == ["warning: flow 'f', step 'a', field 'value.input_transforms.x.expr': results.b names "
                                  "step 'b', which cannot have run before 'a': it evaluates to null, as in Windmill"]


def test_results_of_an_unknown_step_are_a_warning_not_an_error() -> None:
    assert problems(script("a", {"x": "results.zz.value"})) == []
    assert "results.zz names no step of this flow: it evaluates to null" in warnings(script("a", {"x": "results.zz.value"}))[0]


def test_a_step_reading_its_own_result_gets_a_warning() -> None:
    # Windmill: worker_flow.rs get_transform_context gives `results` the finished modules only,
    # so a step's own id, before it ran, reads as a missing step: null.
    assert problems(script("a", {"x": "results.a"})) == []
    assert "results.a refers to the step itself, which has no result yet" in warnings(script("a", {"x": "results.a"}))[0]


def test_loop_body_results_are_visible_inside_and_after_the_loop() -> None:
    # Windmill reads the previous iteration's result inside the body, the last one's after it.
    body = [script("inner", {"prev": "results.inner"})]
    loop = {"id": "l", "value": {"type": "whileloopflow", "skip_failures": False, "modules": body}}
    assert problems(loop, script("after", {"x": "results.inner"})) == []


def test_a_parallel_loop_body_is_visible_neither_across_iterations_nor_after_the_loop() -> None:
    """engine/scope.py: a parallel for loop's iterations are root jobs of their own (push_next_flow_job)."""
    body = [script("inner", {"prev": "results.inner"})]
    loop = {"id": "l", "value": {"type": "forloopflow", "parallel": True, "iterator": {"type": "static", "value": [1]},
                                 "skip_failures": False, "modules": body}}
    found = warnings(loop, script("after", {"x": "results.inner", "l": "results.l"}))
    assert len(found) == 2
    assert "step 'l/*/inner'" in found[0] and "results.inner refers to the step itself" in found[0]
    assert "step 'after'" in found[1] and "inside a parallel for loop" in found[1]


def test_a_sequential_branchall_branch_sees_the_branches_before_it_a_parallel_one_does_not() -> None:
    def flow_with(parallel: bool) -> list[str]:
        arms = [{"modules": [script("x")]}, {"modules": [script("y", {"x": "results.x"})]}]
        return warnings({"id": "b", "value": {"type": "branchall", "parallel": parallel, "branches": arms}})
    assert flow_with(parallel=False) == []
    assert "results.x names step 'x', which cannot have run before 'y'" in flow_with(parallel=True)[0]


def test_sibling_branch_results_are_not_visible_before_the_branch() -> None:
    found = warnings(script("first", {"x": "results.inner"}),
                     {"id": "b", "value": {"type": "branchall", "branches": [{"modules": [script("inner")]}]}})
    assert "cannot have run before 'first'" in found[0]


def test_a_suspend_or_sleep_on_a_last_step_is_warned_about() -> None:
    """worker_flow.rs push_next_flow_job: both happen as the next module of the same flow starts."""
    ask = script("ask", suspend={"required_events": 1}, sleep={"type": "static", "value": 5})
    found = warnings(script("a"), {"id": "b", "value": {"type": "branchone", "branches": [], "default": [ask]}})
    assert [w.split(": a ", 1)[0] for w in found] == ["warning: flow 'f', step 'b/default/ask', field 'suspend'",
                                                     "warning: flow 'f', step 'b/default/ask', field 'sleep'"]
    assert warnings(ask, script("after")) == []


def test_expression_syntax_error_is_reported() -> None:
    found = problems(script("a", {"x": "flow_input.("}))
    assert "step 'a', field 'value.input_transforms.x.expr': invalid expression" in found[0]


def test_unsupported_language_and_options_are_errors() -> None:
    sql = {"id": "q", "value": {"type": "rawscript", "language": "snowflake", "content": "select 1", "input_transforms": {}}}
    found = problems(sql, script("s", suspend={"required_events": 1, "user_groups_required": {"type": "static", "value": ["admins"]}}))
    assert any("language 'snowflake' is not supported" in p for p in found)
    assert any("step 's', field 'suspend.user_groups_required'" in p and "not supported yet" in p for p in found)


def test_missing_script_path_is_an_error() -> None:
    found = problems({"id": "s", "value": {"type": "script", "path": "f/a/b", "input_transforms": {}}})
    assert "script 'f/a/b' was not found" in found[0]


def test_aiagent_is_unsupported() -> None:
    found = problems({"id": "ai", "value": {"type": "aiagent", "input_transforms": {}, "tools": []}})
    assert "aiagent" in found[0]


def test_failure_module_may_reference_any_step() -> None:
    assert problems(script("a"), failure_module=script("failure", {"x": "results.a"})) == []


def test_an_input_named_like_a_yaml_boolean_is_flagged() -> None:
    loaded = load_flow_document({"summary": "t", "value": {"modules": [script("a", {"false": "1"})]}}, "f")
    warnings = [str(p) for p in validate_flow(loaded, Library(), _SANDBOX) if p.warning]
    assert any("YAML boolean" in w and "value.input_transforms.false" in w for w in warnings)
