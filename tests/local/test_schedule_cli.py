"""`millrace schedule`: a flow on its cron schedule in the foreground, as a user tries a watcher."""

from __future__ import annotations

import pytest

from cli_shell import Shell

pytestmark = pytest.mark.local

WATCHER = """\
apiVersion: millrace.dev/v1alpha1
kind: Flow
metadata: {name: watcher}
spec:
  summary: counts the runs of its schedule in its state
  schedule: {cron: "* * * * * *", args: {step: 1}}
  schema: {type: object, properties: {step: {type: integer, default: 10}}}
  value:
    modules:
      - id: seen
        value:
          type: rawscript
          language: python3
          content: |
            import wmill
            def main(step: int):
                n = (wmill.get_state() or 0) + step
                wmill.set_state(n)
                return n
          input_transforms:
            step: {type: javascript, expr: flow_input.step}
"""


def outcomes(text: str) -> list[dict]:
    import json

    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_runs_follow_the_schedule_with_its_args_and_keep_their_state_per_schedule(shell: Shell) -> None:
    flow = shell.flow("watcher", WATCHER)
    first = shell("schedule", flow, "--max-runs", "2", "--output", "json")
    assert first.code == 0, first.err
    runs = outcomes(first.out)
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    assert [r["result"] for r in runs] == [1, 2]
    # Each run is for its own fire time, one second apart at least.
    assert runs[0]["scheduled_for"] < runs[1]["scheduled_for"]
    # A run by hand keeps its state apart from the schedule's (Windmill's trigger state per schedule).
    assert shell.run(flow)["result"] == 10
    again = shell("schedule", flow, "--max-runs", "1", "--output", "json")
    assert outcomes(again.out)[0]["result"] == 3


def test_a_bare_flow_file_takes_its_schedule_from_cron(shell: Shell) -> None:
    flow = shell.flow("bare", "summary: bare\nvalue:\n  modules:\n    - id: a\n      value:\n        type: rawscript\n"
                              "        language: bash\n        content: echo hello\n")
    done = shell("schedule", flow, "--cron", "* * * * * *", "--max-runs", "1", "--output", "json")
    assert done.code == 0, done.err
    assert outcomes(done.out)[0]["result"] == "hello"


@pytest.mark.parametrize(("argv", "needles"), [
    (["--cron", "61 * * * *"], ["flow 'watcher'", "spec.schedule.cron", "not a valid cron expression"]),
    (["--timezone", "Mars/Olympus"], ["spec.schedule.timezone", "not an IANA timezone"]),
])
def test_a_bad_schedule_is_refused_naming_the_field(shell: Shell, argv: list[str], needles: list[str]) -> None:
    flow = shell.flow("watcher", WATCHER)
    refused = shell("schedule", flow, *argv, "--max-runs", "1")
    assert refused.code == 2
    for needle in needles:
        assert needle in refused.err
    assert not (shell.home / "runs").exists()


def test_a_flow_without_a_schedule_needs_cron(shell: Shell) -> None:
    flow = shell.flow("plain", "summary: p\nvalue:\n  modules: []\n")
    refused = shell("schedule", flow, "--max-runs", "1")
    assert refused.code == 2 and "spec.schedule.cron" in refused.err


def test_validate_refuses_a_bad_schedule(shell: Shell) -> None:
    flow = shell.flow("watcher", WATCHER.replace('"* * * * * *"', '"* * * * 9"'))
    refused = shell("validate", flow)
    assert refused.code == 2
    assert "flow 'watcher', field 'spec.schedule.cron'" in refused.err
