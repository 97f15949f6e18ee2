"""The step SDKs in real step processes: `wmill` (python3), `windmill-client` (bun, deno), bash through env."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from millrace.local.datastore import DataStore
from millrace.runtime.stepapi.models import Resource, Variable
from millrace.local.executor import LocalExecutor
from millrace.local.stepapi import LocalStepApi
from millrace.runtime import toolchain
from millrace.runtime.protocol import StepOutcome, StepRequest
from millrace.runtime.redact import MASK

pytestmark = pytest.mark.local
serial = count()
TYPESCRIPT = ["bun", "deno"]


@pytest.fixture(scope="module", params=["forked", "started"])
def executor(request: pytest.FixtureRequest, step_api: LocalStepApi) -> Iterator[LocalExecutor]:
    with LocalExecutor(fork_server=request.param == "forked", api=step_api) as running:
        yield running


@pytest.fixture(scope="module")
def plain(step_api: LocalStepApi) -> Iterator[LocalExecutor]:
    with LocalExecutor(api=step_api) as running:
        yield running


def run(executor: LocalExecutor, language: str, code: str, tmp_path: Path, *, run_id: str = "",
        flow: str = "flow", step_id: str = "a", args: dict[str, Any] | None = None) -> StepOutcome:
    """One attempt of step `step_id` of a run of `flow`, as the runner would start it."""
    number = next(serial)
    env = {"MILLRACE_RUN_ID": run_id or f"run-{number}", "MILLRACE_FLOW": flow, "WM_FLOW_STEP_ID": step_id}
    request = StepRequest(key=f"{step_id}/1", language=language, code=code, args=args or {},
                          workdir=str(tmp_path / str(number)), env=env)
    return executor.run(request)


def ok(outcome: StepOutcome) -> Any:
    assert outcome.ok, outcome
    return outcome.result


# --- the seed examples ---------------------------------------------------------------


def test_python_flow_user_state_seed(executor: LocalExecutor, tmp_path: Path):
    code = "import wmill\n\ndef main():\n    wmill.set_flow_user_state('foobar', 43)\n    return wmill.get_flow_user_state('foobar')\n"
    assert ok(run(executor, "python3", code, tmp_path)) == 43


@pytest.mark.parametrize("language", TYPESCRIPT)
def test_typescript_flow_user_state_seed(plain: LocalExecutor, tmp_path: Path, language: str):
    toolchain.find(language)
    code = ('import * as wmill from "windmill-client";\n\nexport async function main() {\n'
            '  await wmill.setFlowUserState("FOO", 42);\n  return await wmill.getFlowUserState("FOO");\n}\n')
    assert ok(run(plain, language, code, tmp_path)) == 42


def test_flow_user_state_belongs_to_its_run(executor: LocalExecutor, tmp_path: Path):
    set_it = "import wmill\ndef main():\n    wmill.set_flow_user_state('k', 'mine')\n"
    get_it = "import wmill\ndef main():\n    return wmill.get_flow_user_state('k')\n"
    ok(run(executor, "python3", set_it, tmp_path, run_id="owner", step_id="a"))
    assert ok(run(executor, "python3", get_it, tmp_path, run_id="owner", step_id="b")) == "mine"
    assert ok(run(executor, "python3", get_it, tmp_path, run_id="stranger", step_id="b")) is None


# --- states across runs ----------------------------------------------------------------

COUNTER = {
    "python3": "import wmill\ndef main():\n    n = (wmill.get_state() or 0) + 1\n    wmill.set_state(n)\n    return n\n",
    "bun": ('import { getState, setState } from "windmill-client";\n'
            "export async function main() { const n = ((await getState()) ?? 0) + 1; await setState(n); return n; }\n"),
}
COUNTER["deno"] = COUNTER["bun"]


@pytest.mark.parametrize("language", ["python3", *TYPESCRIPT])
def test_state_persists_across_runs_of_the_same_flow_step(plain: LocalExecutor, tmp_path: Path, language: str):
    if language != "python3":
        toolchain.find(language)
    flow = f"counter-{language}"
    counts = [ok(run(plain, language, COUNTER[language], tmp_path, flow=flow)) for _ in range(2)]
    assert counts == [1, 2]
    assert ok(run(plain, language, COUNTER[language], tmp_path, flow=flow, step_id="other")) == 1


# --- variables and resources -------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def data(data_store: DataStore) -> None:
    data_store.set_variable("u/test/greeting", Variable(value="hello"))
    data_store.set_variable("u/test/password", Variable(value="hunter2", is_secret=True))
    data_store.set_resource("f/test/db", Resource(value={"host": "db", "port": 5432}, resource_type="postgresql"))


def test_python_variables_and_resources(executor: LocalExecutor, tmp_path: Path, data_store: DataStore):
    code = (
        "import wmill\n"
        "def main():\n"
        "    wmill.set_variable('u/test/py', 'v1')\n"
        "    wmill.set_resource('f/test/py', {'a': 1}, 'thing')\n"
        "    return [wmill.get_variable('u/test/greeting'), wmill.get_resource('f/test/db')['port'],\n"
        "            wmill.get_variable('u/test/py'), wmill.get_resource('f/test/missing', none_if_undefined=True)]\n"
    )
    assert ok(run(executor, "python3", code, tmp_path)) == ["hello", 5432, "v1", None]
    assert data_store.get_resource("f/test/py") == Resource(value={"a": 1}, resource_type="thing")


def test_python_unknown_variable_names_the_path(executor: LocalExecutor, tmp_path: Path):
    outcome = run(executor, "python3", "import wmill\ndef main():\n    return wmill.get_variable('u/test/nope')\n", tmp_path)
    assert not outcome.ok and outcome.error is not None
    assert outcome.error.name == "StepApiError" and "u/test/nope" in outcome.error.message


@pytest.mark.parametrize("language", TYPESCRIPT)
def test_typescript_variables_resources_and_windmill_spellings(plain: LocalExecutor, tmp_path: Path, language: str):
    toolchain.find(language)
    code = (
        'import * as wmill from "npm:windmill-client@1.380.0";\n'
        "import { getResource } from 'https://deno.land/x/windmill@v1.380.0/mod.ts';\n"
        "export async function main() {\n"
        '  await wmill.setVariable("u/test/ts", "v2");\n'
        '  await wmill.setResource({ b: 2 }, "f/test/ts");\n'
        '  return [await wmill.getVariable("u/test/greeting"), (await getResource("f/test/db")).host,\n'
        '          await wmill.getVariable("u/test/ts"), await getResource("f/test/ts"),\n'
        '          (await wmill.getResumeUrls()).resume.startsWith("http://127.0.0.1:")];\n'
        "}\n"
    )
    assert ok(run(plain, language, code, tmp_path)) == ["hello", "db", "v2", {"b": 2}, True]


def test_shared_state_is_a_file_in_the_shared_folder(executor: LocalExecutor, tmp_path: Path):
    code = ("import os, wmill\ndef main():\n    os.makedirs('shared', exist_ok=True)\n"
            "    wmill.set_shared_state({'x': 1})\n    return wmill.get_shared_state()\n")
    assert ok(run(executor, "python3", code, tmp_path)) == {"x": 1}


def test_secrets_are_masked_in_logs_and_errors(executor: LocalExecutor, tmp_path: Path):
    code = "import wmill\ndef main():\n    secret = wmill.get_variable('u/test/password')\n    print(secret)\n    raise ValueError(secret)\n"
    outcome = run(executor, "python3", code, tmp_path)
    assert outcome.error is not None and outcome.error.message == MASK
    assert "hunter2" not in outcome.logs + outcome.error.stack and MASK in outcome.logs


# --- bash, and reports too large to send -------------------------------------------------


def test_bash_reaches_the_api_through_its_environment(plain: LocalExecutor, tmp_path: Path):
    code = (
        'curl -sf -X PUT -H "Authorization: Bearer $MILLRACE_TOKEN" -d \'{"value": {"from": "bash"}}\' '
        '"$MILLRACE_API_URL/v1/flow_user_state/k" >/dev/null\n'
        'curl -sf -H "Authorization: Bearer $MILLRACE_TOKEN" "$MILLRACE_API_URL/v1/variables/u/test/greeting" > result.json\n'
    )
    assert ok(run(plain, "bash", code, tmp_path)) == {"value": "hello"}


def test_bash_reports_non_ascii_results(plain: LocalExecutor, tmp_path: Path):
    assert ok(run(plain, "bash", "echo 'héllo wörld ✓'", tmp_path)) == "héllo wörld ✓"


@pytest.mark.parametrize("language", ["python3", "bash", "bun"])
def test_a_result_over_the_limit_is_the_steps_error(tmp_path: Path, language: str):
    code = {
        "python3": "def main():\n    return 'x' * 4096\n",
        "bash": "head -c 4096 /dev/zero | tr '\\0' x",
        "bun": "export function main() { return 'x'.repeat(4096); }",
    }[language]
    with LocalStepApi(DataStore(tmp_path / "home"), max_body=1024) as api, LocalExecutor(api=api) as small:
        outcome = run(small, language, code, tmp_path)
    assert not outcome.ok and outcome.error is not None and outcome.error.name == "ResultError", outcome
