"""Windmill's rules that millrace states as tests, for docs/compatibility.md.

Each rule names where Windmill defines it and the test that holds millrace to
it (`file::test`); tests/unit/test_compat_rules.py checks that every named
test exists, so the page never points at a test that is gone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    rule: str
    windmill: str
    tests: tuple[str, ...]


VALIDATION_RULES: tuple[Rule, ...] = (
    Rule("`results.<id>` of no step, of a later step or of the step itself evaluates to `null`: "
         "validation warns, it does not refuse",
         "backend/tests `test_flow_results_non_existent_step`",
         ("tests/unit/test_validate.py::test_results_of_a_later_step_are_a_warning_not_an_error",
          "tests/local/test_bad_input.py::test_results_of_a_step_that_has_not_run_are_null_with_a_warning")),
    Rule("a module without an `id` is accepted; Windmill gives it a random id, millrace one from its "
         "position (`module_2`, `module_2_0`, ...), never one already in use, with a warning",
         "windmill-types `more_serde::default_id`, `FlowModule.id`",
         ("tests/unit/test_validate_fields.py::test_modules_without_an_id_get_one_from_their_position_and_a_warning",
          "tests/local/test_bad_input.py::test_a_module_without_an_id_runs_under_an_id_from_its_position")),
    Rule("an exponential retry with `attempts > 0` needs `seconds > 0`",
         "windmill-types flows.rs `validate_retry`",
         ("tests/unit/test_validate_fields.py::test_an_exponential_retry_with_a_base_of_zero_is_refused",)),
    Rule("the nested objects of a module have a fixed set of keys (retry, suspend, stop_after_if, skip_if, "
         "mock, branches, transforms); Windmill drops an unknown one, millrace refuses it",
         "windmill-types flows.rs `Retry`, `Suspend`, `StopAfterIf`, `Branch`, `InputTransform`",
         ("tests/unit/test_validate_fields.py::"
          "test_a_misspelt_key_inside_a_nested_object_is_an_error_naming_flow_step_and_field",
          "tests/local/test_bad_input.py::test_an_invalid_flow_is_refused_before_anything_runs")),
    Rule("keys Windmill itself writes are accepted: one branch shape for both branch kinds, a transform's "
         "other key, `resume_form` as free JSON",
         "windmill-types flows.rs `Branch`, `UntaggedInputTransform`, `Suspend.resume_form`",
         ("tests/unit/test_validate_fields.py::test_keys_windmill_itself_writes_are_accepted",
          "tests/unit/test_validate_fields.py::test_an_unknown_key_in_a_resume_form_is_a_warning")),
    Rule("a while loop has no parallel mode: `parallel` and `parallelism` on it do nothing (warned)",
         "windmill-types flows.rs `FlowModuleValue::WhileloopFlow`",
         ("tests/unit/test_validate_fields.py::test_parallel_options_of_a_while_loop_are_warned_about",)),
    Rule("a branchall runs every branch and only its own `parallel` counts: a branch's `parallel` or `expr` "
         "does nothing (warned)",
         "worker_flow.rs `push_next_flow_job` (BranchAll)",
         ("tests/unit/test_validate_fields.py::"
          "test_a_branch_parallel_flag_that_disagrees_with_its_branchall_is_warned_about",
          "tests/unit/test_validate_fields.py::test_a_condition_on_a_branchall_branch_is_warned_about")),
)


def render_rules(rules: tuple[Rule, ...] = VALIDATION_RULES) -> list[str]:
    lines = [
        "## Windmill's rules checked before a run",
        "",
        "| rule | where Windmill defines it | tested by |",
        "|---|---|---|",
    ]
    for rule in rules:
        tests = "<br>".join(f"`{t}`" for t in rule.tests)
        lines.append(f"| {rule.rule} | {rule.windmill} | {tests} |")
    return lines
