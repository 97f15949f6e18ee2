"""Program steps (any program in an image) through the real `millrace run`.

Windmill: a bash script with the `# sandbox <image>` annotation runs its body
with that image's /bin/sh, arguments by position (docs: advanced/docker,
"Run Docker containers"); the result is found as bash_executor.rs
handle_bash_job finds a bash step's. Locally no image is pulled: the command
runs as a process of this machine, with its /bin/sh. millrace adds the
arguments as ./args.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_shell import Shell

pytestmark = pytest.mark.local


def flow(shell: Shell, steps: list[tuple[str, str, str]]) -> Path:
    """A flow of (id, transforms, content) bash steps."""
    text = "summary: program\nvalue:\n  modules:\n"
    for step_id, transforms, code in steps:
        body = "\n".join(f"          {line}" for line in code.strip("\n").splitlines())
        text += (f"    - id: {step_id}\n      value:\n        type: rawscript\n        language: bash\n"
                 f"        input_transforms: {transforms}\n        content: |\n{body}\n")
    return shell.flow("program", text)


PYTHON_PROGRAM = """
# shellcheck shell=bash
# sandbox python:3.12-slim
name="$1"
python3 -c 'import json, sys; a = json.load(open("args.json")); json.dump({"hello": sys.argv[1], "double": a["n"] * 2, "args": a}, open("result.json", "w"))' "$name"
echo "this line is not the result: result.json is"
"""


def test_a_program_step_gets_positional_arguments_and_args_json_and_returns_result_json(shell: Shell) -> None:
    path = flow(shell, [("py", '{name: {type: static, value: world}, n: {type: javascript, expr: flow_input.n}}',
                         PYTHON_PROGRAM)])
    document = shell.run(path, "--arg", "n=21")
    assert document["exit"] == 0, document
    assert document["result"] == {"hello": "world", "double": 42, "args": {"name": "world", "n": 21}}


def test_without_a_result_file_the_last_line_of_output_is_the_result_and_sh_runs_the_body(shell: Shell) -> None:
    # The process running the body is /bin/sh's program, not bash (unless /bin/sh is bash).
    code = ('# sandbox alpine:3.20\nx="$1"\n'
            'if [ "$(readlink /proc/$$/exe)" = "$(readlink -f /bin/sh)" ]; then echo "sh got $x"; fi\n')
    document = shell.run(flow(shell, [("sh", "{x: {type: static, value: {a: 1}}}", code)]))
    assert document["exit"] == 0, document
    assert document["result"] == 'sh got {"a":1}'


def test_a_failing_program_fails_its_step_with_the_exit_code_and_the_end_of_its_output(shell: Shell) -> None:
    code = "# sandbox alpine:3.20\necho 'about to fail'\nexit 7\n"
    outcome = shell("run", flow(shell, [("boom", "{}", code)]), "--output", "json")
    assert outcome.code != 0
    error = outcome.json()["error"]
    assert error["step_id"] == "boom" and error["name"] == "ExecutionErr"
    assert error["message"] == 'exit code for "bash run": 7, last log lines:\nabout to fail'


@pytest.mark.parametrize(("code", "message"), [
    ("# sandbox alpine:3.20\n# nothing but comments\n", "has no command"),
    ("# sandbox Not An Image\necho hi\n", "'Not An Image' is not an image reference"),
])
def test_a_program_step_without_a_command_or_with_a_bad_image_is_refused_naming_flow_step_and_field(
        shell: Shell, code: str, message: str) -> None:
    outcome = shell("validate", flow(shell, [("p", "{}", code)]))
    assert outcome.code != 0
    assert "flow 'program', step 'p', field 'value.content'" in outcome.err and message in outcome.err, outcome.err


def test_windmills_other_bash_annotations_run_as_plain_bash_with_a_warning(shell: Shell) -> None:
    path = flow(shell, [("bare", "{}", "# sandbox\necho plain"), ("docker", "{}", "# docker\necho [[ bash ]]")])
    checked = shell("validate", path)
    assert checked.code == 0, checked.err
    assert "step 'bare', field 'value.content': '# sandbox' without an image" in checked.err
    assert "step 'docker', field 'value.content': '# docker'" in checked.err
    document = shell.run(path)
    assert document["exit"] == 0 and document["result"] == "[[ bash ]]", json.dumps(document)
