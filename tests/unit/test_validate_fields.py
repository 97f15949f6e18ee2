"""Every field is honoured, refused or warned about: nested keys, ids, cycles, options without effect.

The field sets are Windmill's (windmill-types flows.rs: FlowModule, Retry,
Suspend, StopAfterIf, Branch, InputTransform), which Windmill's serde reads
and silently drops when unknown; here a misspelt nested key is an error.
"""

from __future__ import annotations

from typing import Any

import pytest

from millrace.engine.library import Library
from millrace.engine.validate import validate_flow
from millrace.errors import Problem
from millrace.model.flow import OpenFlow
from millrace.model.loader import load_flow_document

from .planner_harness import _SANDBOX, script

STATIC = {"type": "static", "value": 1}


def check(*modules: dict[str, Any], library: Library | None = None, **value: Any) -> list[Problem]:
    loaded = load_flow_document({"summary": "t", "value": {"modules": list(modules), **value}}, "f")
    return validate_flow(loaded, library or Library(), _SANDBOX)


def errors(*modules: dict[str, Any], **kwargs: Any) -> list[str]:
    return [str(p) for p in check(*modules, **kwargs) if not p.warning]


def warnings(*modules: dict[str, Any], **kwargs: Any) -> list[str]:
    return [str(p) for p in check(*modules, **kwargs) if p.warning]


def loop(step_id: str, body: list[dict[str, Any]], kind: str = "forloopflow", **value: Any) -> dict[str, Any]:
    extra = {"iterator": {"type": "javascript", "expr": "[1, 2]"}} if kind == "forloopflow" else {}
    return {"id": step_id, "value": {"type": kind, "skip_failures": False, "modules": body, **extra, **value}}


def call(step_id: str, path: str) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "flow", "path": path, "input_transforms": {}}}


def sub_flow(*modules: dict[str, Any], **value: Any) -> OpenFlow:
    return OpenFlow.model_validate({"summary": "s", "value": {"modules": list(modules), **value}})


# --- unknown keys inside nested objects -------------------------------------------------

@pytest.mark.parametrize(
    ("module", "field"),
    [
        (script("s", retry={"constant": {"atempts": 3}}), "retry.constant.atempts"),
        (script("s", retry={"exponential": {"attempts": 1, "seconds": 2, "multiplyer": 3}}),
         "retry.exponential.multiplyer"),
        (script("s", retry={"retry_if": {"expr": "true", "when": 1}}), "retry.retry_if.when"),
        (script("s", retry={"constant": {"attempts": 1}, "max": 2}), "retry.max"),
        (script("s", suspend={"required_events": 1, "timout": 60}), "suspend.timout"),
        (script("s", stop_after_if={"expr": "true", "skip_if_stoped": True}), "stop_after_if.skip_if_stoped"),
        ({**loop("l", [script("s")]), "stop_after_all_iters_if": {"expr": "true", "x": 1}}, "stop_after_all_iters_if.x"),
        (script("s", skip_if={"expr": "true", "else": 1}), "skip_if.else"),
        (script("s", mock={"enabled": True, "return_valu": 1}), "mock.return_valu"),
        (script("s", sleep={"type": "static", "value": 1, "unit": "s"}), "sleep.unit"),
        (script("s", timeout={"type": "static", "value": 1, "unit": "s"}), "timeout.unit"),
        ({"id": "s", "value": {"type": "rawscript", "language": "python3", "content": "def main(x): pass",
                               "input_transforms": {"x": {"type": "javascript", "expr": "1", "exp": "2"}}}},
         "value.input_transforms.x.exp"),
        ({"id": "b", "value": {"type": "branchone", "default": [],
                               "branches": [{"expr": "true", "modules": [], "condition": "x"}]}},
         "value.branches[0].condition"),
        ({"id": "b", "value": {"type": "branchall", "branches": [{"modules": [], "skip_failures": True}]}},
         "value.branches[0].skip_failures"),
        (loop("l", [script("s")], iterator={"type": "javascript", "expr": "[1]", "static": True}),
         "value.iterator.static"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_misspelt_key_inside_a_nested_object_is_an_error_naming_flow_step_and_field(
        module: dict[str, Any], field: str) -> None:
    found = [p for p in check(module) if not p.warning]
    assert len(found) == 1, found
    problem = found[0]
    assert (problem.flow, problem.field) == ("f", field)
    assert problem.step in ("s", "b", "l")
    assert problem.message.startswith("unknown field (known: ")


def test_the_message_lists_the_known_fields() -> None:
    found = errors(script("s", retry={"constant": {"atempts": 3}}))
    assert found == ["flow 'f', step 's', field 'retry.constant.atempts': unknown field (known: attempts, seconds)"]


def test_a_nested_key_inside_a_loop_body_names_the_body_step() -> None:
    found = errors(loop("l", [script("inner", retry={"constant": {"atempts": 3}})]))
    assert found == ["flow 'f', step 'l/*/inner', field 'retry.constant.atempts': unknown field (known: attempts, seconds)"]


def test_keys_windmill_itself_writes_are_accepted() -> None:
    # Windmill's Branch is one shape for both branch kinds (summary, expr, modules,
    # skip_failure, parallel), and its editor leaves `value` on a javascript transform.
    modules = [
        {"id": "one", "value": {"type": "branchone", "default": [], "branches": [
            {"summary": "x", "expr": "true", "modules": [], "skip_failure": True, "parallel": True}]}},
        {"id": "all", "value": {"type": "branchall", "parallel": True, "branches": [
            {"summary": "y", "expr": "", "modules": [], "skip_failure": False, "parallel": True}]}},
        {"id": "s", "value": {"type": "rawscript", "language": "python3", "content": "def main(x): pass",
                              "input_transforms": {"x": {"type": "javascript", "expr": "1", "value": None}}},
         "stop_after_if": {"expr": "false", "skip_if_stopped": False, "error_message": "e", "error_include_result": True},
         "suspend": {"required_events": 1, "timeout": 60, "hide_cancel": False, "skin": "minimal",
                     "resume_form": {"schema": {"type": "object"}}, "continue_on_disapprove_timeout": False},
         "retry": {"constant": {"attempts": 1, "seconds": 0},
                   "exponential": {"attempts": 1, "multiplier": 2, "seconds": 3, "random_factor": 10},
                   "retry_if": {"expr": "true"}},
         "mock": {"enabled": False, "return_value": {"a": 1}}},
        script("after"),  # a suspend is waited for before a next step
    ]
    assert check(*modules) == []


def test_an_unknown_key_in_a_resume_form_is_a_warning() -> None:
    # Windmill keeps resume_form as free JSON and reads only its `schema`: a real
    # export (corpus flow 15) has `required` beside `schema`.
    module = script("s", suspend={"required_events": 1, "resume_form": {"schema": {}, "required": ["v"]}})
    assert errors(module) == []
    assert warnings(module, script("after")) == ["warning: flow 'f', step 's', field 'suspend.resume_form.required': unknown field has "
                                "no effect (in Windmill either): only 'schema' is read; did you mean "
                                "'suspend.resume_form.schema.required'?"]


def test_an_exponential_retry_with_a_base_of_zero_is_refused() -> None:
    # Windmill refuses it when the flow is saved (flows.rs validate_retry).
    found = errors(script("s", retry={"exponential": {"attempts": 2, "seconds": 0}}))
    assert found == ["flow 'f', step 's', field 'retry.exponential.seconds': an exponential retry needs 'seconds' "
                     "greater than 0: a base of 0 would retry at once"]


def test_an_option_one_level_too_deep_is_named() -> None:
    module = script("s")
    module["value"]["timeout"] = 30
    assert warnings(module) == ["warning: flow 'f', step 's', field 'value.timeout': unknown field 'timeout' is "
                                "ignored (in Windmill too): 'timeout' belongs on the module, beside 'value'"]


# --- ids --------------------------------------------------------------------------------

def test_an_id_with_a_slash_is_refused() -> None:
    found = errors(script("a/b"))
    assert len(found) == 1 and "step 'a/b', field 'id': a step id cannot contain '/'" in found[0]


def test_a_top_level_step_named_like_the_failure_module_path_is_refused() -> None:
    found = errors(script("failure"), failure_module=script("handler"))
    assert found == ["flow 'f', step 'failure', field 'id': the id 'failure' is the failure module's path: "
                     "give this step another id"]
    assert errors(script("a"), failure_module=script("failure")) == []


def test_modules_without_an_id_get_one_from_their_position_and_a_warning() -> None:
    # Windmill fills a missing id with a random one (windmill-types more_serde default_id).
    anonymous = script("x")
    del anonymous["id"]
    body = script("x")
    del body["id"]
    found = check(anonymous, script("module_1"), loop("l", [body]), script("c", {"v": "results.module_0"}))
    assert [p for p in found if not p.warning] == []
    assert [(p.step, p.field) for p in found] == [("module_0", "id"), ("l/*/module_2_0", "id")]
    assert "millrace names it 'module_0' from its position" in found[0].message


def test_a_default_id_never_takes_an_id_already_in_use() -> None:
    anonymous = script("x")
    del anonymous["id"]
    loaded = load_flow_document({"value": {"modules": [anonymous, script("module_0")]}}, "f")
    assert [m.id for m in loaded.flow.value.modules] == ["module_0_", "module_0"]
    assert loaded.default_ids == ["module_0_"]


# --- flows that call themselves ---------------------------------------------------------

def test_a_flow_calling_itself_through_another_is_refused_with_the_cycle() -> None:
    library = Library(flows={"f/a": sub_flow(call("to_b", "f/b")), "f/b": sub_flow(call("to_a", "f/a"))})
    found = errors(script("first"), call("start", "f/a"), library=library)
    assert found == ["flow 'f', step 'start', field 'value.path': the flow calls itself: f/a -> f/b -> f/a"]


def test_a_flow_calling_itself_directly_is_refused() -> None:
    library = Library(flows={"f/me": sub_flow(loop("l", [call("again", "f/me")]))})
    found = errors(call("start", "f/me"), library=library)
    assert found == ["flow 'f', step 'start', field 'value.path': the flow calls itself: f/me -> f/me"]


def test_a_cycle_through_a_failure_module_is_refused() -> None:
    library = Library(flows={"f/a": sub_flow(script("s"), failure_module=call("failure", "f/a"))})
    assert "the flow calls itself: f/a -> f/a" in errors(call("start", "f/a"), library=library)[0]


def test_the_same_sub_flow_called_twice_is_no_cycle() -> None:
    library = Library(flows={"f/leaf": sub_flow(script("s")), "f/mid": sub_flow(call("x", "f/leaf"), call("y", "f/leaf"))})
    assert errors(call("a", "f/mid"), call("b", "f/leaf"), library=library) == []


# --- accepted but not honoured ----------------------------------------------------------

def only_warning(module: dict[str, Any], **value: Any) -> str:
    assert errors(module, **value) == []
    found = warnings(module, **value)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("option", ["concurrent_limit", "concurrency_time_window_s", "custom_concurrency_key"])
def test_rawscript_concurrency_options_are_warned_about(option: str) -> None:
    module = script("s")
    module["value"][option] = "k" if option == "custom_concurrency_key" else 2
    assert f"step 's', field 'value.{option}': '{option}' is accepted but not honoured by millrace" in only_warning(module)


def test_a_zero_concurrency_window_that_windmill_writes_by_default_is_not_warned_about() -> None:
    module = script("s")
    module["value"]["concurrency_time_window_s"] = 0
    assert warnings(module) == []


@pytest.mark.parametrize("option", ["debounce_delay_s", "debounce_key", "max_total_debouncing_time"])
def test_flow_debounce_options_are_warned_about(option: str) -> None:
    found = only_warning(script("s"), **{option: "k" if option == "debounce_key" else 5})
    assert f"field 'value.{option}': '{option}' is accepted but not honoured by millrace" in found


def test_a_python_lock_and_requirements_headers_are_honoured_without_a_warning() -> None:
    for value in ({"lock": "requests==2.31.0\n"}, {"content": "#requirements:\n#requests==2.31.0\ndef main():\n    return 1\n"},
                  {"content": "# extra_requirements:\n#httpx\ndef main():\n    return 1\n"}):
        module = script("s")
        module["value"].update(value)
        assert warnings(module) == []


def test_a_typescript_lock_is_warned_about_its_runtime_resolves_imports_itself() -> None:
    module = script("s")
    module["value"].update(language="bun", content="export function main() { return 1 }", lock="{}")
    found = only_warning(module)
    assert "field 'value.lock': 'lock' is accepted but not honoured by millrace for bun steps" in found


def test_hide_cancel_is_warned_about() -> None:
    (found,) = warnings(script("s", suspend={"required_events": 1, "hide_cancel": True}), script("after"))
    assert "field 'suspend.hide_cancel': 'suspend.hide_cancel' is accepted but not honoured" in found


@pytest.mark.parametrize("option", [{"parallel": True}, {"parallelism": {"type": "static", "value": 2}}])
def test_parallel_options_of_a_while_loop_are_warned_about(option: dict[str, Any]) -> None:
    # Windmill's FlowModuleValue::WhileloopFlow has no parallel mode: iterations run in turn.
    found = only_warning(loop("w", [script("s")], kind="whileloopflow", **option))
    assert "has no effect on a while loop (in Windmill either)" in found


def test_a_branch_parallel_flag_that_disagrees_with_its_branchall_is_warned_about() -> None:
    # Windmill reads only the branchall's `parallel` (worker_flow.rs push_next_flow_job, BranchAll).
    branchall = {"id": "b", "value": {"type": "branchall", "parallel": True,
                                      "branches": [{"modules": [], "parallel": True}, {"modules": [], "parallel": False}]}}
    assert "field 'value.branches[1].parallel': a branch's 'parallel' has no effect" in only_warning(branchall)


def test_a_condition_on_a_branchall_branch_is_warned_about() -> None:
    branchall = {"id": "b", "value": {"type": "branchall", "branches": [{"modules": [], "expr": "flow_input.go"}]}}
    assert "field 'value.branches[0].expr': a branch's 'expr' has no effect on a branchall" in only_warning(branchall)


@pytest.mark.parametrize("option", ["cache_ignore_s3_path", "delete_after_secs"])
def test_caching_and_cleanup_options_are_warned_about(option: str) -> None:
    found = only_warning(script("s", **{option: True if option == "cache_ignore_s3_path" else 60}))
    assert f"field '{option}': '{option}' is accepted but not honoured" in found


def test_passing_the_flow_input_directly_is_refused() -> None:
    found = errors(script("s", pass_flow_input_directly=True))
    assert found == ["flow 'f', step 's', field 'pass_flow_input_directly': 'pass_flow_input_directly' is not supported yet"]


def test_an_unknown_top_level_field_is_warned_about_and_a_flow_timeout_named() -> None:
    loaded = load_flow_document({"summary": "t", "timeout": 60, "triggers": [], "value": {"modules": []}}, "f")
    found = [str(p) for p in validate_flow(loaded, Library(), _SANDBOX)]
    assert found == ["warning: flow 'f', field 'timeout': 'timeout' is accepted but not honoured by millrace",
                     "warning: flow 'f', field 'triggers': unknown field 'triggers' is ignored"]
