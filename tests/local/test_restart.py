"""`millrace run FILE --from-run RUN --from STEP`: a new local run that reuses the results of the
steps before STEP (engine/restart.py, after Windmill's restarted_flows_resolution in windmill-queue
jobs.rs; the inputs are the earlier run's, as windmill-api's restart_flow pushes them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_shell import Shell

pytestmark = pytest.mark.local


def a_b_c(marker: Path) -> str:
    """a returns a fresh token and counts its runs in `marker`; b fails until `marker`.ok exists; c reads b."""
    return f"""summary: restart
schema: {{type: object, properties: {{n: {{type: number}}}}}}
value:
  modules:
    - id: a
      value:
        type: rawscript
        language: python3
        input_transforms: {{n: {{type: javascript, expr: flow_input.n}}}}
        content: |
          import pathlib, secrets
          def main(n):
              marker = pathlib.Path({str(marker)!r})
              marker.write_text(marker.read_text() + "a" if marker.exists() else "a")
              return {{"n": n, "token": secrets.token_hex(8)}}
    - id: b
      value:
        type: rawscript
        language: python3
        input_transforms: {{prev: {{type: javascript, expr: previous_result}}}}
        content: |
          import pathlib
          def main(prev):
              if not pathlib.Path({str(marker) + ".ok"!r}).exists():
                  raise RuntimeError("b is not ready")
              return {{"token": prev["token"], "double": prev["n"] * 2}}
    - id: c
      value:
        type: rawscript
        language: python3
        input_transforms: {{b: {{type: javascript, expr: results.b}}, a: {{type: javascript, expr: results.a}}}}
        content: |
          def main(b, a):
              return {{"same": b["token"] == a["token"], "double": b["double"]}}
"""


def test_a_failed_run_restarted_from_the_failed_step_reuses_the_steps_before_it(shell: Shell, tmp_path: Path) -> None:
    marker = tmp_path / "a-runs"
    path = shell.flow("abc", a_b_c(marker))
    first = shell.run(path, "--arg", "n=21")
    assert first["phase"] == "Failed" and first["error"]["step_id"] == "b"
    (tmp_path / "a-runs.ok").touch()
    again = shell.run(path, "--from-run", first["run"], "--from", "b")
    assert again["phase"] == "Succeeded", again
    assert again["result"] == {"same": True, "double": 42}
    assert marker.read_text() == "a"  # a ran once, in the first run
    record = shell.record(again["run"])
    assert record["restartedFrom"] == {"run": first["run"], "step": "b"}
    assert record["args"] == {"n": 21}
    assert record["steps"]["a"] == shell.record(first["run"])["steps"]["a"]
    shown = shell("show", again["run"]).out
    assert f"restarted from run {first['run']} at step 'b': the steps before it are that run's" in shown


def test_restarting_a_run_that_succeeded_gives_the_same_result(shell: Shell, tmp_path: Path) -> None:
    marker = tmp_path / "a-runs"
    (tmp_path / "a-runs.ok").touch()
    path = shell.flow("abc", a_b_c(marker))
    first = shell.run(path, "--arg", "n=2")
    again = shell.run(path, "--from-run", first["run"], "--from", "c")
    assert again["result"] == first["result"] == {"same": True, "double": 4}
    assert marker.read_text() == "a"


def test_bad_restarts_are_refused_naming_flow_step_and_option(shell: Shell, tmp_path: Path) -> None:
    marker = tmp_path / "a-runs"
    path = shell.flow("abc", a_b_c(marker))
    first = shell.run(path, "--arg", "n=1")  # fails at b
    cases = {
        ("--from-run", first["run"], "--from", "c"):
            "flow 'abc', step 'c', field '--from': step 'b' before it did not succeed in run "
            f"'{first['run']}' (failed): restart from 'b' or before",
        ("--from-run", first["run"], "--from", "nope"):
            "flow 'abc', step 'nope', field '--from': no such top-level step in the flow",
        ("--from-run", "no-such-run", "--from", "b"): "flow 'abc', field '--from-run': no run 'no-such-run' under ",
        ("--from-run", first["run"]): "flow 'abc', field '--from': --from-run and --from go together: --from is missing",
        ("--from-run", first["run"], "--from", "b", "--arg", "n=3"):
            f"flow 'abc', field '--arg': a restarted run gets the inputs of run '{first['run']}': leave out --arg and --args-file",
    }
    for argv, message in cases.items():
        outcome = shell("run", path, *argv)
        assert outcome.code == 2, (argv, outcome)
        assert f"error: {message}" in outcome.err, (argv, outcome.err)
    other = shell.flow("other", a_b_c(marker))
    outcome = shell("run", other, "--from-run", first["run"], "--from", "b")
    assert ("error: flow 'other', field '--from-run': run "
            f"'{first['run']}' is a run of flow 'abc', not of this flow") in outcome.err
