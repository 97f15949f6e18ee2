"""`millrace preview FILE STEP`: one step with given inputs and earlier results, as Windmill's per-step preview.

Windmill's flow editor tests one step with the flow inputs and the earlier
steps' results it holds (their last test runs): the step's input transforms
see them as `flow_input` and `results.<id>`, and `previous_result` is the
result of the step before it.
"""

from __future__ import annotations

import json

import pytest

from cli_shell import Shell

pytestmark = pytest.mark.local

FLOW = """\
summary: preview
schema:
  type: object
  properties:
    n: {type: integer, default: 3}
value:
  modules:
    - id: a
      value:
        type: rawscript
        language: python3
        content: |
          def main(n):
              print("a ran")
              return {"double": n * 2}
        input_transforms:
          n: {type: javascript, expr: flow_input.n}
    - id: b
      value:
        type: rawscript
        language: bash
        content: |
          d="$1"
          prev="$2"
          echo "{\\"plus\\": $((d + 1)), \\"prev\\": $prev}" > result.json
        input_transforms:
          d: {type: javascript, expr: results.a.double}
          prev: {type: javascript, expr: previous_result}
    - id: boom
      value:
        type: rawscript
        language: python3
        content: |
          def main():
              raise ValueError("no good")
        input_transforms: {}
    - id: each
      value:
        type: forloopflow
        iterator: {type: javascript, expr: "[1, 2]"}
        skip_failures: false
        modules:
          - id: inner
            value:
              type: rawscript
              language: python3
              content: |
                def main(v):
                    return v * 10
              input_transforms:
                v: {type: javascript, expr: flow_input.iter.value}
"""


def test_a_step_runs_with_the_given_inputs_and_its_result_is_printed(shell: Shell) -> None:
    outcome = shell("preview", shell.flow("preview", FLOW), "a", "--arg", "n=5")
    assert outcome.code == 0, outcome.err
    assert outcome.json() == {"double": 10}
    assert "a ran" in outcome.err
    # The schema's default applies as in a run.
    assert shell("preview", shell.flow("preview", FLOW), "a").json() == {"double": 6}


def test_earlier_results_come_from_a_file_and_the_previous_one_is_previous_result(shell: Shell) -> None:
    results = shell.home.parent / "results.json"
    results.write_text(json.dumps({"a": {"double": 40}}))
    outcome = shell("preview", shell.flow("preview", FLOW), "b", "--results", results)
    assert outcome.code == 0, outcome.err
    assert outcome.json() == {"plus": 41, "prev": {"double": 40}}


def test_a_recorded_run_gives_the_inputs_and_results_and_options_override_them(shell: Shell) -> None:
    path = shell.flow("preview", FLOW)
    run = shell.run(path, "--arg", "n=10")
    assert run["error"]["step_id"] == "boom"  # a failed run is a record like any other
    assert shell("preview", path, "b", "--run", run["run"]).json() == {"plus": 21, "prev": {"double": 20}}
    assert shell("preview", path, "a", "--run", run["run"], "--arg", "n=1").json() == {"double": 2}
    results = shell.home.parent / "results.json"
    results.write_text(json.dumps({"a": {"double": 0}}))
    assert shell("preview", path, "b", "--run", run["run"], "--results", results).json() == {"plus": 1, "prev": {"double": 0}}
    # Nothing of a preview is recorded as a run.
    assert [d.name for d in (shell.home / "runs").iterdir()] == [run["run"]]


def test_a_step_inside_a_loop_reads_iter_from_the_inputs(shell: Shell) -> None:
    outcome = shell("preview", shell.flow("preview", FLOW), "inner", "--arg", 'iter={"value": 4, "index": 0}')
    assert outcome.code == 0, outcome.err
    assert outcome.json() == 40


def test_errors_name_the_flow_and_the_step(shell: Shell) -> None:
    path = shell.flow("preview", FLOW)
    failed = shell("preview", path, "boom")
    assert failed.code == 1 and failed.out == ""
    assert "error: flow 'preview', step 'boom': ValueError: no good" in failed.err
    missing = shell("preview", path, "nope")
    assert missing.code == 2 and "flow 'preview', step 'nope': the flow has no step with this id" in missing.err
    loop = shell("preview", path, "each")
    assert loop.code == 2 and "flow 'preview', step 'each', field 'value.type'" in loop.err
    bad = shell("preview", path, "a", "--arg", "n=many")
    assert bad.code == 2 and "flow 'preview'" in bad.err and "args.n" in bad.err
    unknown = shell("preview", path, "b", "--run", "no-such-run")
    assert unknown.code == 2 and "flow 'preview', field 'run': no run 'no-such-run'" in unknown.err
