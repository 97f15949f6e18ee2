"""The step runtime's pure parts: bash signatures, launch plans, outcomes, tool lookup."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from millrace.runtime import bash_signature, toolchain
from millrace.runtime.launch import WRAPPERS, plan
from millrace.runtime.languages import runtime_language
from millrace.runtime.outcome import interpret
from millrace.runtime.protocol import StepRequest

WINDMILL_EXAMPLE = """
token="$1"
image="$2"
digest="${3:-latest with spaces}"
text="$4" # with comment
non_required="${5:-}"
"""


def test_bash_parameters_follow_the_positions():
    assert bash_signature.parameters(WINDMILL_EXAMPLE) == ["token", "image", "digest", "text", "non_required"]


def test_bash_parameters_stop_at_the_first_gap():
    assert bash_signature.parameters('b="$2"\na="$1"\nd="$4"\n') == ["a", "b"]


def test_bash_arguments_are_text_and_missing_ones_empty():
    args = {"token": "t", "image": {"a": [1, 2]}, "digest": 3, "text": None}
    assert bash_signature.positional(WINDMILL_EXAMPLE, args) == ["t", '{"a":[1,2]}', "3", "null", ""]


def test_plan_for_each_language():
    def request(language: str, code: str = "x") -> StepRequest:
        return StepRequest(key="a/1", language=language, code=code, args={"n": 1}, workdir="/w")

    python = plan(request("python3"), "/usr/bin/python3")
    assert python.files == {"main.py": "x", "args.json": '{"n": 1}'}
    assert python.argv == ["/usr/bin/python3", str(WRAPPERS / "python3.py")]
    bash = plan(request("bash", 'n="$1"'), "/bin/bash")
    # Windmill: bash_executor.rs handle_bash_job writes main.sh as `set -e` + the script.
    assert bash.files == {"main.sh": 'set -e\nn="$1"'} and bash.argv == ["/bin/bash", str(WRAPPERS / "bash.sh"), "1"]
    assert plan(request("bun"), "bun").argv == ["bun", "run", str(WRAPPERS / "typescript.ts")]
    assert plan(request(runtime_language("nativets")), "bun").files["main.ts"] == "x"
    assert plan(request("deno"), "deno").argv[:2] == ["deno", "run"]


def test_outcome_from_a_report():
    report = json.dumps({"ok": True, "result": {"a": 1}})
    outcome = interpret(report, 0, "logs", 0.5)
    assert (outcome.ok, outcome.result, outcome.logs, outcome.duration_s) == (True, {"a": 1}, "logs", 0.5)


def test_outcome_parses_result_json_text():
    assert interpret('{"ok": true, "result_json": "[1, 2]"}', 0, "", 0).result == [1, 2]
    bad = interpret('{"ok": true, "result_json": "{nope"}', 0, "", 0)
    assert not bad.ok and bad.error and bad.error.name == "ResultError"
    assert "result.json is not JSON" in bad.error.message


def test_outcome_without_report_says_how_the_process_ended():
    killed = interpret(None, -11, "", 0)
    assert killed.error and killed.error.name == "StepCrashed" and "SIGSEGV (signal 11)" in killed.error.message
    exited = interpret(None, 3, "", 0)
    assert exited.error and "exited with code 3" in exited.error.message


def test_a_process_that_exits_without_a_report_fails_as_windmills_exit_code_error():
    """common.rs extract_error_value: ExecutionErr, `exit code for "<program>": N, last log lines:` and
    the end of the log, trimmed, its colour codes removed, with exit_code."""
    logs = "x" * 700 + "\n\x1b[31mlast words\x1b[0m\n"
    outcome = interpret(None, 4, logs, 0, exit_name="bun run")
    assert outcome.error is not None and (outcome.error.name, outcome.error.exit_code) == ("ExecutionErr", 4)
    head, tail = outcome.error.message.split("\n", 1)
    assert head == 'exit code for "bun run": 4, last log lines:'
    assert tail.endswith("x\nlast words") and len(tail) < 600
    assert interpret(None, -9, logs, 0, exit_name="bun run").error.name == "StepCrashed"  # type: ignore[union-attr]


def test_outcome_from_a_garbled_report():
    outcome = interpret('{"ok": tr', 0, "", 0)
    assert outcome.error and outcome.error.name == "ProtocolError"


def executable(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_tool_lookup_order(tmp_path: Path):
    on_path = executable(tmp_path / "path" / "bun")
    cached = executable(tmp_path / "cache" / "node-tools" / "bin" / "bun")
    environ = {"PATH": str(tmp_path / "path"), "MILLRACE_CACHE": str(tmp_path / "cache")}
    assert toolchain.find("bun", {**environ, "MILLRACE_BUN": "/opt/bun"}) == "/opt/bun"
    assert toolchain.find("bun", environ) == on_path
    assert toolchain.find("bun", {**environ, "PATH": os.devnull}) == cached


def test_missing_tool_says_how_to_get_it(tmp_path: Path):
    with pytest.raises(toolchain.RuntimeMissing, match="make tools"):
        toolchain.find("deno", {"PATH": str(tmp_path), "MILLRACE_CACHE": str(tmp_path)})
