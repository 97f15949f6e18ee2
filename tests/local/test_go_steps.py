"""Go steps through the real CLI and the real Go toolchain.

Windmill: go_executor.rs handle_go_job -- the script is package `inner` with
`func main(...) (interface{}, error)`, its arguments come from args.json into
main's parameters by name, the result is main's value as JSON, and the built
binary is cached by the script's hash.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli_shell import Shell

from millrace.runtime import toolchain

GO = "/usr/local/go/bin"
# A first build compiles the standard library into the shared build cache: minutes on a loaded machine.
pytestmark = [pytest.mark.skipif(not Path(GO, "go").exists(), reason="needs the Go toolchain in /usr/local/go"),
              pytest.mark.timeout(1800)]

FLOW = """\
summary: go
value:
  modules:
    - id: a
      value:
        type: rawscript
        language: go
        content: |
          package inner

          import ("errors"; "fmt")

          type Point struct { X, Y int }

          func main(x int, names []string, p Point) (interface{}, error) {
          	fmt.Println("hello from go")
          	if x < 0 {
          		return nil, errors.New("x must not be negative")
          	}
          	return map[string]interface{}{"double": x * 2, "n": len(names), "sum": p.X + p.Y}, nil
          }
        input_transforms:
          x: {type: javascript, expr: flow_input.x}
          names: {type: static, value: ["a", "b"]}
          p: {type: static, value: {X: 1, Y: 2}}
"""


@pytest.fixture
def go_cache(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default Go cache: its build cache is shared (the standard library builds once); binaries are keyed by code."""
    monkeypatch.setenv("PATH", f"{GO}:{os.environ.get('PATH', '')}")
    monkeypatch.delenv("MILLRACE_GO_CACHE", raising=False)
    return toolchain.cache_dir() / "go"


def test_a_go_step_gets_its_arguments_and_a_second_run_reuses_the_build(shell: Shell, go_cache: Path) -> None:
    flow = shell.flow("go", FLOW.replace("package inner", f"package inner // {shell.home}"))  # code never built before
    before = set((go_cache / "bin").glob("*")) if (go_cache / "bin").exists() else set()
    first = shell.run(flow, "--arg", "x=21")
    assert first["exit"] == 0, first
    assert first["result"] == {"double": 42, "n": 2, "sum": 3}
    built = set((go_cache / "bin").iterdir()) - before
    assert len(built) == 1 and next(iter(built)).name.startswith("go1.")
    stamp = next(iter(built)).stat().st_mtime_ns
    again = shell.run(flow, "--arg", "x=5")
    assert again["result"]["double"] == 10
    assert set((go_cache / "bin").iterdir()) - before == built and next(iter(built)).stat().st_mtime_ns == stamp


def test_main_returning_an_error_fails_the_step_with_its_message(shell: Shell, go_cache: Path) -> None:
    outcome = shell.run(shell.flow("go", FLOW), "--arg", "x=-1")
    assert outcome["exit"] != 0
    assert "x must not be negative" in str(outcome)


def test_a_build_error_fails_the_step_with_the_compiler_message(shell: Shell, go_cache: Path) -> None:
    broken = FLOW.replace("return map[string]", "return undefinedThing, nil\n          \treturn map[string]")
    outcome = shell.run(shell.flow("go", broken), "--arg", "x=1")
    assert outcome["exit"] != 0
    assert "BuildError" in str(outcome) and "undefinedThing" in str(outcome)


def test_a_go_step_without_main_is_refused_at_validation(shell: Shell) -> None:
    outcome = shell("run", shell.flow("go", FLOW.replace("func main(", "func other(")))
    assert outcome.code != 0
    assert "func main" in outcome.err and "value.content" in outcome.err
