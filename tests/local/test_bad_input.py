"""Bad flows and bad inputs through the real command: a clear error naming the
flow, the step and the field, a non-zero exit code, and nothing half-written."""

from __future__ import annotations

import pytest

from cli_shell import Shell

pytestmark = pytest.mark.local

HEAD = "summary: bad\nvalue:\n  modules:\n"


def step(step_id: str, code: str, language: str = "python3", transforms: str = "{}") -> str:
    body = "\n".join(f"          {line}" for line in code.splitlines())
    return (f"    - id: {step_id}\n      value:\n        type: rawscript\n        language: {language}\n"
            f"        input_transforms: {transforms}\n        content: |\n{body}\n")


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("value: [unclosed\n", ["flow 'bad'", "invalid YAML at line 2"]),
        ("summary: x\nvalue: {}\n", ["flow 'bad'", "value.modules"]),
        (HEAD + step("a", "def main():\n    return 1") + step("a", "def main():\n    return 2"),
         ["step 'a'", "field 'id'", "duplicate step id 'a'"]),
        (HEAD + "    - id: t\n      value: {type: teleport}\n", ["step 't'", "teleport"]),
        (HEAD + step("a", "def main(x):\n    return x", transforms="{x: {type: javascript, expr: results.later}}")
         + step("later", "def main():\n    return 1"),
         ["step 'a'", "field 'value.input_transforms.x.expr'", "cannot have run before 'a'"]),
        (HEAD + step("a", "def main(x):\n    return x", transforms="{x: {type: javascript, expr: 'flow_input.('}}"),
         ["step 'a'", "field 'value.input_transforms.x.expr'", "invalid expression"]),
    ],
    ids=["yaml", "no-modules", "duplicate-ids", "unknown-type", "later-step", "syntax"],
)
def test_an_invalid_flow_is_refused_before_anything_runs(shell: Shell, text: str, needles: list[str]) -> None:
    outcome = shell("run", shell.flow("bad", text))
    assert outcome.code == 2
    for needle in needles:
        assert needle in outcome.err
    assert outcome.out == ""
    assert not (shell.home / "runs").exists()


@pytest.mark.parametrize(
    ("text", "args", "name", "needles"),
    [
        (HEAD + step("a", "def main(x):\n    return x", transforms="{x: {type: javascript, expr: 'flow_input.a.b'}}"),
         [], "ExpressionRuntimeError", ["input_transforms.x", "TypeError: Cannot read properties of undefined"]),
        (HEAD + step("a", "def main(x):\n    return x", transforms="{x: {type: javascript, expr: '(() => { while (true) {} })()'}}"),
         [], "ExpressionTimeout", ["input_transforms.x"]),
        (HEAD + step("a", "def main(:\n    return 1"), [], "SyntaxError", ["main.py", "line 1"]),
        (HEAD + step("a", "def main():\n    raise KeyError('missing thing')"), [], "KeyError", ["missing thing"]),
        (HEAD + step("a", "def main():\n    return {1, 2}"), [], "ResultError", ["not JSON"]),
        ("summary: s\nschema: {type: object, properties: {n: {type: integer}}, required: [n]}\n" + HEAD.split("\n", 1)[1]
         + step("a", "def main():\n    return 1"), [], "InputError", ["missing required input 'n'"]),
    ],
    ids=["throws", "loops-forever", "script-syntax", "script-raises", "not-json", "missing-input"],
)
def test_a_failing_run_names_the_step_and_the_error(shell: Shell, text: str, args: list[str], name: str,
                                                    needles: list[str]) -> None:
    outcome = shell.run(shell.flow("bad", text), *args)
    assert outcome["exit"] == 1 and outcome["phase"] == "Failed"
    error = outcome["error"]
    assert error["name"] == name, error
    text_of_error = error["message"] + error.get("stack", "")
    for needle in needles:
        assert needle in text_of_error, error
    if name != "InputError":
        assert error["step_id"] == "a"
    record = shell.record(outcome["run"])
    assert record["phase"] == "Failed"


def test_a_raising_script_keeps_its_traceback(shell: Shell) -> None:
    text = HEAD + step("a", "def helper():\n    raise ValueError('deep')\n\ndef main():\n    return helper()")
    outcome = shell("run", shell.flow("bad", text))
    assert outcome.code == 1
    assert "ValueError: deep" in outcome.err and "in helper" in outcome.err and "line 2" in outcome.err
