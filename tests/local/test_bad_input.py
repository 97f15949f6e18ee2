"""Bad flows and bad inputs through the real command: a clear error naming the
flow, the step and the field, a non-zero exit code, and nothing half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cli_shell import Shell

REPO = Path(__file__).resolve().parents[2]

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
        (HEAD + step("a", "def main(x):\n    return x", transforms="{x: {type: javascript, expr: 'flow_input.('}}"),
         ["step 'a'", "field 'value.input_transforms.x.expr'", "invalid expression"]),
        (HEAD + step("a", "def main():\n    return 1") + "      retry: {constant: {atempts: 3, seconds: 0}}\n",
         ["flow 'bad', step 'a', field 'retry.constant.atempts': unknown field (known: attempts, seconds)"]),
        (HEAD + step("a", "def main():\n    return 1")
         + "      suspend: {required_events: 1, resume_form: {schema: {}}, timout: 5}\n",
         ["flow 'bad', step 'a', field 'suspend.timout': unknown field"]),
        (HEAD + step("a/b", "def main():\n    return 1"), ["step 'a/b', field 'id'", "cannot contain '/'"]),
    ],
    ids=["yaml", "no-modules", "duplicate-ids", "unknown-type", "syntax", "retry-typo", "suspend-typo", "slash-id"],
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
        (HEAD + step("a", "def main(:\n    return 1"), [], "ExecutionErr", ["SyntaxError", "main.py", "line 1"]),
        (HEAD + step("a", "def main():\n    raise KeyError('missing thing')"), [], "KeyError", ["missing thing"]),
        (HEAD + step("a", "def main():\n    return {(1, 2): 3}"), [], "TypeError", ["keys must be"]),
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


def test_an_invalid_flow_gives_a_json_outcome_with_output_json(shell: Shell) -> None:
    text = HEAD + step("a", "def main():\n    return 1") + "      retry: {constant: {atempts: 3}}\n"
    outcome = shell("run", shell.flow("bad", text), "--output", "json")
    assert outcome.code == 2
    assert outcome.json() == {"status": "invalid", "warnings": [], "errors": [
        {"flow": "bad", "step": "a", "field": "retry.constant.atempts", "message": "unknown field (known: attempts, seconds)"}]}
    assert not (shell.home / "runs").exists()


def test_a_document_that_does_not_parse_gives_a_json_outcome_too(shell: Shell) -> None:
    outcome = shell("run", shell.flow("bad", "value: [unclosed\n"), "--output", "json")
    assert outcome.code == 2
    document = outcome.json()
    assert document["status"] == "invalid" and document["errors"][0]["flow"] == "bad"
    assert "invalid YAML at line 2" in document["errors"][0]["message"]


def test_a_flow_that_calls_itself_through_another_is_refused_with_the_cycle(shell: Shell) -> None:
    folder = shell.home.parent / "f"
    folder.mkdir()
    call = "    - id: {id}\n      value: {{type: flow, path: {path}, input_transforms: {{}}}}\n"
    (folder / "a.yaml").write_text(HEAD + call.format(id="to_b", path="f/b"))
    (folder / "b.yaml").write_text(HEAD + call.format(id="to_a", path="f/a"))
    outcome = shell("run", shell.flow("bad", HEAD + call.format(id="start", path="f/a")))
    assert outcome.code == 2
    assert "flow 'bad', step 'start', field 'value.path': the flow calls itself: f/a -> f/b -> f/a" in outcome.err
    assert not (shell.home / "runs").exists()


def test_results_of_a_step_that_has_not_run_are_null_with_a_warning(shell: Shell) -> None:
    # Windmill: results.<id> of no step, or of a later one, evaluates to null
    # (backend/tests test_flow_results_non_existent_step).
    text = (HEAD + step("a", "def main(x, y):\n    return [x, y]",
                        transforms="{x: {type: javascript, expr: results.later}, y: {type: javascript, expr: results.nope}}")
            + step("later", "def main():\n    return 1"))
    outcome = shell("run", shell.flow("late", text))
    assert outcome.code == 0, outcome.err
    assert ("warning: flow 'late', step 'a', field 'value.input_transforms.x.expr': results.later names step 'later', "
            "which cannot have run before 'a': it evaluates to null, as in Windmill") in outcome.err
    assert "results.nope names no step of this flow" in outcome.err
    record = shell.record(shell.run(shell.flow("late", text))["run"])
    assert record["steps"]["a"]["result"] == [None, None]


def test_a_module_without_an_id_runs_under_an_id_from_its_position(shell: Shell) -> None:
    text = HEAD + step("a", "def main():\n    return 2") + "    - value: {type: identity}\n"
    outcome = shell("run", shell.flow("anon", text))
    assert outcome.code == 0, outcome.err
    assert "step 'module_1', field 'id': the step has no 'id'" in outcome.err
    assert json.loads(outcome.out) == 2


def test_a_misspelt_option_in_a_cluster_manifest_is_refused_by_validate(shell: Shell) -> None:
    manifest = ("apiVersion: millrace.dev/v1alpha1\nkind: Flow\nmetadata: {name: m}\nspec:\n  summary: s\n"
                "  value:\n    modules:\n      - id: a\n        value: {type: identity}\n"
                "        skip_if: {expr: 'false', when: 1}\n")
    outcome = shell("validate", shell.flow("m", manifest))
    assert outcome.code == 2
    assert "flow 'm', step 'a', field 'skip_if.when': unknown field (known: expr)" in outcome.err



def _manifest(name: str, language: str = "bash") -> str:
    return (f"apiVersion: millrace.dev/v1alpha1\nkind: Flow\nmetadata: {{name: {name}}}\nspec:\n  value:\n"
            f"    modules:\n      - id: a\n        value: {{type: rawscript, language: {language}, content: 'echo 1'}}\n")


def test_validate_checks_each_flow_of_a_multi_document_file_naming_its_flow(shell: Shell) -> None:
    text = "\n---\n".join([_manifest("first"), "# nothing here", _manifest("second", "cobol"),
                            _manifest("first").replace("kind: Flow", "kind: FlowRun")])
    outcome = shell("validate", shell.flow("folder", text))
    assert outcome.code == 2
    assert outcome.out.splitlines() == [f"{shell.home.parent / 'folder.yaml'}: {line}" for line in (
        "first: ok", "second: invalid (1 error)", "first: invalid (2 errors)")], outcome.out
    assert "flow 'second', step 'a', field 'value.language': language 'cobol' is not supported" in outcome.err
    assert "flow 'first', field 'kind': kind must be 'Flow', not 'FlowRun'" in outcome.err
    assert "flow 'first': defined again in" in outcome.err and "(documents folder#1 and folder#3)" in outcome.err


def test_validate_passes_a_file_of_valid_flows_and_run_refuses_it(shell: Shell) -> None:
    path = shell.flow("two", _manifest("one") + "---\n" + _manifest("other"))
    checked = shell("validate", path)
    assert (checked.code, checked.out.split()) == (0, [f"{path}:", "one:", "ok", f"{path}:", "other:", "ok"]), checked.err
    ran = shell("run", path)
    assert ran.code == 2 and "holds 2 documents where one flow is expected" in ran.err


# --- which flow a state belongs to -------------------------------------------------------

COUNTER = HEAD + step("count", "import wmill\ndef main():\n    n = (wmill.get_state() or 0) + 1\n"
                                 "    wmill.set_state(n)\n    return n")


def test_a_flow_is_the_same_flow_however_its_path_is_typed(shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = shell.home.parent / "counter.flow"
    folder.mkdir()
    (folder / "flow.yaml").write_text(COUNTER)
    monkeypatch.chdir(folder)
    first = shell.run(Path("flow.yaml"))
    second = shell.run(folder / "flow.yaml")
    monkeypatch.chdir(shell.home.parent)
    third = shell.run(Path("counter.flow") / ".." / "counter.flow" / "flow.yaml")
    assert [first["flow"], second["flow"], third["flow"]] == ["counter"] * 3
    assert [first["result"], second["result"], third["result"]] == [1, 2, 3]


def test_two_different_flows_with_the_same_name_never_share_a_state(shell: Shell) -> None:
    paths = []
    for place in ("one", "two"):
        folder = shell.home.parent / place / "counter.flow"
        folder.mkdir(parents=True)
        (folder / "flow.yaml").write_text(COUNTER)
        paths.append(folder / "flow.yaml")
    results = [shell.run(path)["result"] for path in (paths[0], paths[1], paths[0], paths[1])]
    assert results == [1, 1, 2, 2]
    first, second = sorted(os.listdir(shell.home / "state"))
    assert first == "counter" and second.startswith("counter-")


@pytest.mark.parametrize(
    ("extra", "field", "needle"),
    [
        ("        concurrent_limit: 2\n", "value.concurrent_limit", "not honoured by millrace"),
        ("      suspend: {required_events: 1, hide_cancel: true}\n", "suspend.hide_cancel", "not honoured by millrace"),
    ],
    ids=["concurrency", "hide-cancel"],
)
def test_an_option_without_effect_is_named_by_validate_and_run(shell: Shell, extra: str, field: str, needle: str) -> None:
    text = HEAD + step("a", "def main():\n    return 1") + extra
    checked = shell("validate", shell.flow("warned", text))
    assert checked.code == 0, checked.err
    line = next(line for line in checked.err.splitlines() if f"field '{field}'" in line)
    assert line.startswith("warning: flow 'warned', step 'a'") and needle in line


def test_a_requirements_header_is_honoured_without_a_warning(shell: Shell) -> None:
    text = HEAD + step("a", "#requirements:\n#six==1.16.0\nimport six\ndef main():\n    return six.__version__")
    outcome = shell("run", shell.flow("reqs", text), "--output", "json")
    assert outcome.code == 0 and outcome.json()["result"] == "1.16.0", outcome.err
    assert "warning" not in outcome.err


def test_args_the_flow_has_no_input_for_are_warned_about(shell: Shell, tmp_path: Path) -> None:
    # What `on: 1` in a manifest becomes once kubectl (YAML 1.1) has read it.
    args = tmp_path / "args.json"
    args.write_text('{"name": "Ada", "true": 1}')
    outcome = shell("run", REPO / "examples" / "hello-flow.yaml", "--args-file", args)
    assert outcome.code == 0, outcome.err
    assert "field 'args.true': 'true' is not an input of flow 'hello-flow'" in outcome.err
    assert "quote its name" in outcome.err
