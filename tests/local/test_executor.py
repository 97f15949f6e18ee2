"""LocalExecutor with real interpreters: python3 (forked and started), bash, bun, deno."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from millrace.local.environment import base_environment, python_fork_server
from millrace.local.executor import LocalExecutor
from millrace.local.stepapi import LocalStepApi
from millrace.runtime import toolchain
from millrace.runtime.languages import runtime_language
from millrace.runtime.protocol import StepOutcome, StepRequest

pytestmark = pytest.mark.local

keys = count()


@pytest.fixture(scope="module", params=["forked", "started"])
def executor(request: pytest.FixtureRequest, step_api: LocalStepApi) -> Iterator[LocalExecutor]:
    environ = {**os.environ, "ENGINE_SECRET": "hunter2"}
    with LocalExecutor(fork_server=request.param == "forked", environ=environ, api=step_api) as running:
        yield running


@pytest.fixture(scope="module")
def forking(step_api: LocalStepApi) -> Iterator[LocalExecutor]:
    with LocalExecutor(api=step_api) as running:
        yield running


def step(language: str, code: str, tmp_path: Path, args: dict[str, Any] | None = None, **options: Any) -> StepRequest:
    key = f"step/{next(keys)}"
    return StepRequest(key=key, language=language, code=code, args=args or {}, workdir=str(tmp_path / key), **options)


def error_of(outcome: StepOutcome) -> tuple[str, str, str]:
    assert not outcome.ok and outcome.error is not None, outcome
    return outcome.error.name, outcome.error.message, outcome.error.stack


def gone(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting for its reaper."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except FileNotFoundError:
        return True


# --- python3, both through the fork server and started per step -----------------------


def test_python_args_by_name_and_logs(executor: LocalExecutor, tmp_path: Path):
    code = "import sys\ndef main(a, b=2, c=0):\n    print('out', a)\n    print('err', file=sys.stderr)\n    return a + b + c\n"
    outcome = executor.run(step("python3", code, tmp_path, {"c": 3, "a": 1, "unused": 9}))
    assert outcome.ok and outcome.result == 6
    assert outcome.logs == "out 1\nerr\n"
    assert outcome.duration_s > 0


def test_python_extra_args_go_to_kwargs(executor: LocalExecutor, tmp_path: Path):
    outcome = executor.run(step("python3", "def main(a, **rest):\n    return rest\n", tmp_path, {"a": 1, "b": 2}))
    assert outcome.result == {"b": 2}


def test_python_exception_keeps_the_users_traceback(executor: LocalExecutor, tmp_path: Path):
    code = "def inner():\n    raise ValueError('broken')\n\ndef main():\n    inner()\n"
    name, message, stack = error_of(executor.run(step("python3", code, tmp_path)))
    assert (name, message) == ("ValueError", "broken")
    assert 'File "main.py", line 5, in main' in stack and 'File "main.py", line 2, in inner' in stack
    assert "wrappers" not in stack


def test_python_syntax_error_names_the_line(executor: LocalExecutor, tmp_path: Path):
    outcome = executor.run(step("python3", "def main():\n    return (1,\n", tmp_path))
    name, message, _ = error_of(outcome)
    assert name == "ExecutionErr" and "SyntaxError" in message and "line 2" in message
    assert "SyntaxError" in outcome.logs


def test_python_sys_exit_is_an_error(executor: LocalExecutor, tmp_path: Path):
    code = "import sys\ndef main():\n    sys.exit(3)\n"
    name, message, stack = error_of(executor.run(step("python3", code, tmp_path)))
    assert (name, message) == ("SystemExit", "3") and "line 3" in stack


def test_python_hard_exit_is_reported(executor: LocalExecutor, tmp_path: Path):
    code = "import os\ndef main():\n    print('last words', flush=True)\n    os._exit(3)\n"
    outcome = executor.run(step("python3", code, tmp_path))
    name, message, _ = error_of(outcome)
    assert name == "ExecutionErr" and outcome.logs == "last words\n"
    assert message == 'exit code for "python run": 3, last log lines:\nlast words'
    assert outcome.error is not None and outcome.error.exit_code == 3


def test_python_segfault_is_reported(executor: LocalExecutor, tmp_path: Path):
    code = "import ctypes\ndef main():\n    ctypes.string_at(0)\n"
    name, message, _ = error_of(executor.run(step("python3", code, tmp_path)))
    assert name == "StepCrashed" and "SIGSEGV" in message


def test_python_timeout_kills_the_whole_group(executor: LocalExecutor, tmp_path: Path):
    code = (
        "import subprocess, time\n"
        "def main():\n"
        "    child = subprocess.Popen(['sleep', '60'])\n"
        "    print(child.pid, flush=True)\n"
        "    time.sleep(60)\n"
    )
    started = time.monotonic()
    outcome = executor.run(step("python3", code, tmp_path, timeout_s=1.0))
    name, message, _ = error_of(outcome)
    assert name == "TimeoutError" and "1 s" in message
    assert time.monotonic() - started < 10
    grandchild = int(outcome.logs.split()[0])
    deadline = time.monotonic() + 5
    while not gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(grandchild)


def test_python_environment_is_the_steps_only(executor: LocalExecutor, tmp_path: Path):
    code = "import os\ndef main():\n    return [os.getcwd(), os.environ.get('GREETING'), 'ENGINE_SECRET' in os.environ]\n"
    request = step("python3", code, tmp_path, env={"GREETING": "hi"})
    outcome = executor.run(request)
    assert outcome.result == [request.workdir, "hi", False]


def test_python_script_imports_its_siblings(executor: LocalExecutor, tmp_path: Path):
    # The empty requirements header keeps `helper` from being taken for a package to install.
    request = step("python3", "#requirements:\nimport helper\ndef main():\n    return helper.VALUE\n", tmp_path)
    Path(request.workdir).mkdir(parents=True)
    Path(request.workdir, "helper.py").write_text("VALUE = 7\n")
    assert executor.run(request).result == 7


def test_steps_run_concurrently(executor: LocalExecutor, tmp_path: Path):
    code = "import time\ndef main(n):\n    time.sleep(0.5)\n    return n * 2\n"
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(executor.run, [step("python3", code, tmp_path, {"n": n}) for n in range(6)]))
    assert [outcome.result for outcome in outcomes] == [0, 2, 4, 6, 8, 10]
    assert time.monotonic() - started < 2.5


def test_cancel_kills_a_running_step(executor: LocalExecutor, tmp_path: Path):
    request = step("python3", "import time\ndef main():\n    time.sleep(60)\n", tmp_path)
    threading.Timer(0.5, executor.cancel, args=(request.key,)).start()
    name, _, _ = error_of(executor.run(request))
    assert name == "CancelledError"


# --- the fork server itself ------------------------------------------------------------


def test_forked_steps_share_nothing(forking: LocalExecutor, tmp_path: Path):
    first = "import json\nLEAK = []\ndef main():\n    json.leak = True\n    LEAK.append(1)\n    return len(LEAK)\n"
    second = "import json\ndef main():\n    return [hasattr(json, 'leak'), 'LEAK' in globals()]\n"
    assert forking.run(step("python3", first, tmp_path)).result == 1
    assert forking.run(step("python3", first, tmp_path)).result == 1
    assert forking.run(step("python3", second, tmp_path)).result == [False, False]


def test_forked_steps_are_separate_processes(forking: LocalExecutor, tmp_path: Path):
    code = "import os\ndef main():\n    return os.getpid()\n"
    pids = {forking.run(step("python3", code, tmp_path)).result for _ in range(3)}
    assert len(pids) == 3


def test_a_step_that_kills_the_fork_server_fails_alone(forking: LocalExecutor, tmp_path: Path):
    code = "import os, signal, time\ndef main():\n    os.kill(os.getppid(), signal.SIGKILL)\n    time.sleep(5)\n"
    outcome = forking.run(step("python3", code, tmp_path, timeout_s=20))
    assert not outcome.ok
    assert forking.run(step("python3", "def main():\n    return 'fine'\n", tmp_path)).result == "fine"


def test_a_fork_server_started_before_the_executor_runs_its_steps(step_api: LocalStepApi, tmp_path: Path):
    forks = python_fork_server(sys.executable, base_environment(os.environ))
    forks.start()  # booting while the caller goes on, as `millrace run` has it
    with LocalExecutor(api=step_api, forks=forks) as running:
        assert running.forks is forks
        code = "import os\ndef main():\n    return os.getppid()\n"
        parent = running.run(step("python3", code, tmp_path)).result
    assert parent != os.getpid()  # forked by the server, not started by the executor


# --- bash ------------------------------------------------------------------------------


def test_bash_positional_args_and_last_line_string(forking: LocalExecutor, tmp_path: Path):
    code = 'name="$1"\ncount="${2:-5}"\ndata="$3"\necho "working" >&2\necho "  $name $count $data  "\n'
    outcome = forking.run(step("bash", code, tmp_path, {"data": {"a": 1}, "name": "world"}))
    assert outcome.ok and outcome.result == 'world 5 {"a":1}'
    assert outcome.logs == 'working\n  world 5 {"a":1}  \n'


def test_bash_last_line_stays_a_string_even_when_it_looks_like_json(forking: LocalExecutor, tmp_path: Path):
    assert forking.run(step("bash", 'echo \'{"a": 1}\'\n', tmp_path)).result == '{"a": 1}'


def test_bash_result_json_file_is_the_json_result(forking: LocalExecutor, tmp_path: Path):
    code = 'n="$1"\necho \'{"n": \'"$n"\', "ok": [true]}\' > result.json\necho done\n'
    assert forking.run(step("bash", code, tmp_path, {"n": 4})).result == {"n": 4, "ok": [True]}


def test_bash_bad_result_json_is_an_error(forking: LocalExecutor, tmp_path: Path):
    name, message, _ = error_of(forking.run(step("bash", "echo '{nope' > result.json\n", tmp_path)))
    assert name == "ResultError" and "result.json is not JSON" in message


def test_bash_failing_command_stops_the_script(forking: LocalExecutor, tmp_path: Path):
    code = 'echo "before"\nls /no/such/place\necho "never"\n'
    outcome = forking.run(step("bash", code, tmp_path))
    name, message, _ = error_of(outcome)
    assert name == "ExecutionErr" and message.startswith('exit code for "bash run": 2,') and "/no/such/place" in message
    assert "never" not in outcome.logs


def test_bash_exit_code_is_reported(forking: LocalExecutor, tmp_path: Path):
    name, message, _ = error_of(forking.run(step("bash", "echo failing >&2\nexit 7\n", tmp_path)))
    assert (name, message) == ("ExecutionErr", 'exit code for "bash run": 7, last log lines:\nfailing')


def test_bash_timeout(forking: LocalExecutor, tmp_path: Path):
    name, _, _ = error_of(forking.run(step("bash", "sleep 30\n", tmp_path, timeout_s=0.5)))
    assert name == "TimeoutError"


# --- TypeScript ------------------------------------------------------------------------


TYPED = """
type Options = { scale: number };
export async function main(name: string, count: number = 2, options: Options, missing?: string) {
  await new Promise((resolve) => setTimeout(resolve, 10));
  console.log(`hello ${name}`);
  return { greeting: `${name} x${count * options.scale}`, missing: missing ?? null };
}
"""


def test_typescript_typed_async_main(forking: LocalExecutor, tmp_path: Path, typescript: str):
    outcome = forking.run(step(typescript, TYPED, tmp_path, {"options": {"scale": 3}, "name": "ada", "extra": 1}))
    assert outcome.ok, outcome
    assert outcome.result == {"greeting": "ada x6", "missing": None}
    assert outcome.logs == "hello ada\n"


def test_typescript_exception_keeps_its_stack(forking: LocalExecutor, tmp_path: Path, typescript: str):
    code = "function check(n: number) {\n  throw new TypeError(`bad ${n}`);\n}\nexport function main(n: number) {\n  check(n);\n}\n"
    name, message, stack = error_of(forking.run(step(typescript, code, tmp_path, {"n": 4})))
    assert (name, message) == ("TypeError", "bad 4")
    assert "main.ts:2" in stack and "typescript.ts" not in stack


def test_typescript_arrow_main_with_destructuring(forking: LocalExecutor, tmp_path: Path, typescript: str):
    code = "export const main = async (a = 'x, y', { b } = { b: 2 }, c: string[]) => [a, b, c];\n"
    assert forking.run(step(typescript, code, tmp_path, {"c": ["z"]})).result == ["x, y", 2, ["z"]]


def test_typescript_result_must_be_json(forking: LocalExecutor, tmp_path: Path, typescript: str):
    code = "export function main() { return () => 1; }\n"
    name, message, _ = error_of(forking.run(step(typescript, code, tmp_path)))
    assert name == "ResultError" and message == "result is not JSON: a function"


def test_typescript_that_does_not_build(forking: LocalExecutor, tmp_path: Path, typescript: str):
    name, message, _ = error_of(forking.run(step(typescript, "export function main( {\n", tmp_path)))
    assert name == "ExecutionErr" and "main.ts" in message


def test_nativets_runs_on_bun(forking: LocalExecutor, tmp_path: Path):
    toolchain.find("bun")
    assert forking.run(step(runtime_language("nativets"), "export async function main(x: number) { return x + 1 }", tmp_path, {"x": 1})).result == 2


def test_missing_typescript_runtime_is_an_error_not_a_crash(tmp_path: Path):
    environ = {"PATH": "/usr/bin:/bin", "MILLRACE_CACHE": str(tmp_path / "empty")}
    with LocalExecutor(environ=environ) as executor:
        name, message, _ = error_of(executor.run(step("deno", "export function main() {}", tmp_path)))
    assert name == "RuntimeMissing" and "make tools" in message
