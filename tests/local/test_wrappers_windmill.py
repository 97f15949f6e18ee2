"""Windmill's rules for what a step's wrapper makes of its arguments, result and errors.

Each test runs the real interpreter through the local executor and states one
rule of Windmill's own wrappers, citing where it comes from in
backend/windmill-worker/src/: python_executor.rs (handle_python_job writes
wrapper.py), bun_executor.rs (wrapper.mjs), deno_executor.rs (wrapper.ts),
bash_executor.rs (handle_bash_job) and result_processor.rs (process_result,
extract_error_value: the error of a process that exits non-zero).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from millrace.local.executor import LocalExecutor
from millrace.local.stepapi import LocalStepApi
from millrace.runtime.protocol import StepError, StepOutcome, StepRequest

pytestmark = pytest.mark.local

keys = count()


@pytest.fixture(scope="module", params=["forked", "started"])
def python(request: pytest.FixtureRequest, step_api: LocalStepApi) -> Iterator[LocalExecutor]:
    """python3 steps both through the fork server and started per step: the same wrapper either way."""
    with LocalExecutor(fork_server=request.param == "forked", environ=dict(os.environ), api=step_api) as running:
        yield running


@pytest.fixture(scope="module")
def executor(step_api: LocalStepApi) -> Iterator[LocalExecutor]:
    with LocalExecutor(api=step_api) as running:
        yield running


def run(executor: LocalExecutor, language: str, code: str, tmp_path: Path, args: dict[str, Any] | None = None,
        env: dict[str, str] | None = None) -> StepOutcome:
    key = f"step/{next(keys)}"
    return executor.run(StepRequest(key=key, language=language, code=code, args=args or {}, workdir=str(tmp_path / key),
                                    env=env or {}))


def result(outcome: StepOutcome) -> Any:
    assert outcome.ok, outcome
    return outcome.result


def error(outcome: StepOutcome) -> StepError:
    assert not outcome.ok and outcome.error is not None, outcome
    return outcome.error


# --- python3: arguments -----------------------------------------------------------------


def test_python_parameter_without_argument_gets_none(python: LocalExecutor, tmp_path: Path):
    """Windmill: python_executor.rs prepare_wrapper, `args["b"] = kwargs.get("b")` for a parameter without default."""
    assert result(run(python, "python3", "def main(a, b):\n    return [a, b]\n", tmp_path, {"a": 1})) == [1, None]


def test_python_null_or_missing_argument_takes_the_default(python: LocalExecutor, tmp_path: Path):
    """Windmill: prepare_wrapper deletes an argument that is None when its parameter has a default."""
    code = "def main(a=1, b='two', c=3):\n    return [a, b, c]\n"
    assert result(run(python, "python3", code, tmp_path, {"a": None, "c": 0})) == [1, "two", 0]


def test_python_kwargs_take_every_argument_as_given(python: LocalExecutor, tmp_path: Path):
    """Windmill: prepare_wrapper spreads `args = kwargs` when main() has **kwargs: nulls stay, no defaults apply."""
    code = "def main(a=1, **rest):\n    return [a, rest]\n"
    assert result(run(python, "python3", code, tmp_path, {"a": None, "b": 2})) == [None, {"b": 2}]


def test_python_only_positional_or_keyword_parameters_get_arguments(python: LocalExecutor, tmp_path: Path):
    """Windmill: parse_python_signature lists main's `args` only (not positional-only, keyword-only or *args),
    and wrapper.py calls `main(**args)`: the others get no argument."""
    failed = error(run(python, "python3", "def main(a, /):\n    return a\n", tmp_path, {"a": 1}))
    assert failed.name == "TypeError" and "missing 1 required positional argument: 'a'" in failed.message
    failed = error(run(python, "python3", "def main(*, a):\n    return a\n", tmp_path, {"a": 1}))
    assert failed.name == "TypeError" and "keyword-only argument: 'a'" in failed.message
    code = "def main(a, *rest, b=2):\n    return [a, rest, b]\n"
    assert result(run(python, "python3", code, tmp_path, {"a": 1, "rest": [9], "b": 3})) == [1, [], 2]


def test_python_default_the_parser_cannot_read_counts_as_none(python: LocalExecutor, tmp_path: Path):
    """Windmill: the parser's to_value reads a constant, dict, list, call or `Name.attr` default; any other
    (`-1` is an operation, a bare name, a tuple) reads as no default, so the parameter gets None."""
    code = "LIMIT = 5\ndef main(a=-1, b=LIMIT, c=(1, 2), d=1, e=[1], f=dict(x=1)):\n    return [a, b, c, d, e, f]\n"
    assert result(run(python, "python3", code, tmp_path)) == [None, None, None, 1, [1], {"x": 1}]


def test_python_function_call_placeholder_is_left_out(python: LocalExecutor, tmp_path: Path):
    """Windmill: wrapper.py deletes every argument whose value is "<function call>" (the parser's stand-in
    for a default that is a call), so the default applies."""
    code = "import datetime\ndef main(when=datetime.date(2020, 1, 2)):\n    return str(when)\n"
    assert result(run(python, "python3", code, tmp_path, {"when": "<function call>"})) == "2020-01-02"


def test_python_without_def_main_gets_no_arguments(python: LocalExecutor, tmp_path: Path):
    """Windmill: parse_python_signature finds no `def main` when main is bound otherwise: nothing is passed."""
    code = "def run(x=1):\n    return x\nmain = run\n"
    assert result(run(python, "python3", code, tmp_path, {"x": 5})) == 1


def test_python_bytes_datetime_and_date_parameters_are_converted(python: LocalExecutor, tmp_path: Path):
    """Windmill: prepare_wrapper's transforms decode a `bytes` argument from base64 and parse a `datetime` one
    with datetime.fromisoformat, a `date` one with date.fromisoformat or else %d-%m-%Y, %m/%d/%Y, %d/%m/%Y,
    %Y/%m/%d; by the annotation's name, also in Optional[] or `| None`, and not when null."""
    code = (
        "import datetime\nfrom datetime import date\nfrom typing import Optional\n"
        "def main(raw: bytes, at: datetime.datetime, day: date, other: Optional[date], none: bytes | None,\n"
        "         plain: str):\n"
        "    return [raw, at.isoformat(), day.isoformat(), other.isoformat(), none, plain]\n"
    )
    args = {"raw": "aGk=", "at": "2024-05-06T07:08:09+00:00", "day": "2024-05-06", "other": "31/12/2023",
            "none": None, "plain": "2024-05-06"}
    # The decoded bytes, inside a list, come back through str().
    assert result(run(python, "python3", code, tmp_path, args)) == [
        "b'hi'", "2024-05-06T07:08:09+00:00", "2024-05-06", "2023-12-31", None, "2024-05-06"]


def test_python_argument_that_does_not_convert_ends_the_process(python: LocalExecutor, tmp_path: Path):
    """Windmill: the transforms run before wrapper.py's try, so a bad datetime is an exit-code error."""
    code = "from datetime import datetime\ndef main(at: datetime):\n    return 1\n"
    failed = error(run(python, "python3", code, tmp_path, {"at": "not a time"}))
    assert failed.name == "ExecutionErr" and "Invalid isoformat string: 'not a time'" in failed.message


# --- python3: results -------------------------------------------------------------------


def test_python_bytes_become_base64(python: LocalExecutor, tmp_path: Path):
    """Windmill: res_to_json turns a bytes result, and bytes values of a top-level dict, into base64."""
    assert result(run(python, "python3", "def main():\n    return b'hi there'\n", tmp_path)) == "aGkgdGhlcmU="
    code = "def main():\n    return {'data': b'\\x00\\xff', 'n': 1}\n"
    assert result(run(python, "python3", code, tmp_path)) == {"data": "AP8=", "n": 1}


def test_python_deeper_bytes_go_through_str(python: LocalExecutor, tmp_path: Path):
    """Windmill: res_to_json converts bytes at the top and one dict level only; deeper ones meet `default=str`."""
    code = "def main():\n    return {'inner': {'data': b'ab'}, 'list': [b'cd']}\n"
    assert result(run(python, "python3", code, tmp_path)) == {"inner": {"data": "b'ab'"}, "list": ["b'cd'"]}


def test_python_values_json_cannot_hold_go_through_str(python: LocalExecutor, tmp_path: Path):
    """Windmill: res_to_json is `json.dumps(res, default=str)`."""
    code = (
        "import datetime, decimal\n"
        "class Point:\n"
        "    def __str__(self):\n"
        "        return 'Point(1, 2)'\n"
        "def main():\n"
        "    return [{3, 4}, datetime.date(2024, 5, 6), decimal.Decimal('1.50'), Point(), (7, 8)]\n"
    )
    assert result(run(python, "python3", code, tmp_path)) == ["{3, 4}", "2024-05-06", "1.50", "Point(1, 2)", [7, 8]]


def test_python_nan_and_infinities_become_null(python: LocalExecutor, tmp_path: Path):
    """Windmill: get_result_postprocessor rewrites NaN, Infinity and -Infinity in the JSON text to null."""
    code = "def main():\n    return {'nan': float('nan'), 'big': [float('inf'), -float('inf')], 'n': 1.5}\n"
    assert result(run(python, "python3", code, tmp_path)) == {"nan": None, "big": [None, None], "n": 1.5}


def test_python_null_rewrite_reaches_into_strings(python: LocalExecutor, tmp_path: Path):
    """Windmill: the rewrite (`replace_invalid_fields`) works on the text, so words in strings change too."""
    code = "def main():\n    return ['NaN', 'To Infinity', 'NaNa', 'nul\\x00']\n"
    assert result(run(python, "python3", code, tmp_path)) == [" null ", "To  null ", "NaNa", "nul null "]


def test_python_skip_result_postprocessing_annotation_keeps_the_text(python: LocalExecutor, tmp_path: Path):
    """Windmill: the `#skip_result_postprocessing` annotation (PythonAnnotations) turns the rewrite off."""
    code = "#!/usr/bin/env python3\n# skip_result_postprocessing\n\ndef main():\n    return 'To Infinity'\n"
    assert result(run(python, "python3", code, tmp_path)) == "To Infinity"
    # Without the rewrite a NaN is not JSON: Windmill cannot parse the result either.
    failed = error(run(python, "python3", "# skip_result_postprocessing\ndef main():\n    return float('nan')\n", tmp_path))
    assert failed.name == "ResultError"


def test_python_annotations_stop_at_the_first_blank_line(python: LocalExecutor, tmp_path: Path):
    """Windmill: the annotations parser (windmill-macros) reads header lines until one with no word."""
    code = "import math\n\n# skip_result_postprocessing\ndef main():\n    return 'NaN'\n"
    assert result(run(python, "python3", code, tmp_path)) == " null "


def test_python_dataframe_becomes_its_rows(python: LocalExecutor, tmp_path: Path):
    """Windmill: res_to_json turns a pandas DataFrame into `values.tolist()` (recognised by its class)."""
    code = (
        "import sys, types\n"
        "class DataFrame:\n"
        "    values = types.SimpleNamespace(tolist=lambda: [[1, 'a'], [2, 'b']])\n"
        "DataFrame.__module__ = 'pandas.core.frame'\n"
        "def main():\n"
        "    return DataFrame()\n"
    )
    assert result(run(python, "python3", code, tmp_path)) == [[1, "a"], [2, "b"]]


# --- python3: errors --------------------------------------------------------------------


def test_python_error_is_class_name_str_and_the_users_frames(python: LocalExecutor, tmp_path: Path):
    """Windmill: wrapper.py reports `{message: str(e), name: e.__class__.__name__, stack: '\\n'.join(tb[1:])}`,
    tb being traceback.format_tb: the frames only, without the wrapper's, the header or the exception line."""
    code = "class Broken(Exception):\n    pass\n\ndef inner():\n    raise Broken('it', 'broke')\n\ndef main():\n    inner()\n"
    failed = error(run(python, "python3", code, tmp_path))
    assert (failed.name, failed.message) == ("Broken", "('it', 'broke')")
    assert failed.stack == ('  File "main.py", line 8, in main\n    inner()\n\n'
                            '  File "main.py", line 5, in inner\n    raise Broken(\'it\', \'broke\')\n')


def test_python_result_that_json_refuses_is_the_steps_error(python: LocalExecutor, tmp_path: Path):
    """Windmill: res_to_json runs inside the wrapper's try, so json.dumps' own error is the step's."""
    failed = error(run(python, "python3", "def main():\n    return {(1, 2): 'tuple key'}\n", tmp_path))
    assert failed.name == "TypeError" and "keys must be" in failed.message


def test_python_without_main(python: LocalExecutor, tmp_path: Path):
    """Windmill: wrapper.py reads `inner_script.main` inside its try (AttributeError) and refuses a main that
    is None or not callable with `ValueError("main function is missing")`."""
    missing = error(run(python, "python3", "def helper():\n    return 1\n", tmp_path))
    assert missing.name == "AttributeError" and "has no attribute 'main'" in missing.message
    not_callable = error(run(python, "python3", "main = 3\n", tmp_path))
    assert (not_callable.name, not_callable.message) == ("ValueError", "main function is missing")


def test_python_script_that_does_not_load_is_an_exit_code_error(python: LocalExecutor, tmp_path: Path):
    """Windmill: wrapper.py imports the script before its try, so a failing import ends the process with
    code 1; process_result then reports extract_error_value: ExecutionErr and the end of the log. (An empty
    `#requirements:` header keeps the import from being taken for a package to install.)"""
    outcome = run(python, "python3", "#requirements:\nimport no_such_module_here\ndef main():\n    return 1\n", tmp_path)
    failed = error(outcome)
    assert (failed.name, failed.exit_code) == ("ExecutionErr", 1)
    assert failed.message.startswith('exit code for "python run": 1, last log lines:\nTraceback (most recent call last):')
    assert failed.message.endswith("ModuleNotFoundError: No module named 'no_such_module_here'")
    assert "ModuleNotFoundError" in outcome.logs


# --- TypeScript: results ----------------------------------------------------------------


def test_typescript_undefined_becomes_null_never_dropped(executor: LocalExecutor, tmp_path: Path, typescript: str):
    """Windmill: wrapper.mjs / wrapper.ts store `JSON.stringify(res ?? null, (k, v) => v === undefined ? null : v)`."""
    assert result(run(executor, typescript, "export function main() {}\n", tmp_path)) is None
    code = "export function main() { return { a: undefined, nested: { b: undefined }, list: [undefined, 1] }; }\n"
    assert result(run(executor, typescript, code, tmp_path)) == {"a": None, "nested": {"b": None}, "list": [None, 1]}


def test_typescript_bigint_becomes_its_decimal_string(executor: LocalExecutor, tmp_path: Path, typescript: str):
    """Windmill: the wrappers set `BigInt.prototype.toJSON` to `this.toString()` before calling main,
    so the script's own JSON.stringify of a BigInt works too."""
    code = "export function main() { return { big: 12345678901234567890n, list: [-1n], own: JSON.stringify(2n) }; }\n"
    assert result(run(executor, typescript, code, tmp_path)) == {"big": "12345678901234567890", "list": ["-1"], "own": '"2"'}


def test_typescript_values_json_drops_and_nulls(executor: LocalExecutor, tmp_path: Path, typescript: str):
    """Windmill: JSON.stringify's own rules hold: NaN and infinities are null, functions in objects are left out,
    a Date is its ISO text."""
    code = "export function main() { return { nan: NaN, inf: -Infinity, f() {}, at: new Date(0) }; }\n"
    assert result(run(executor, typescript, code, tmp_path)) == {"nan": None, "inf": None, "at": "1970-01-01T00:00:00.000Z"}


def test_typescript_null_argument_stays_null(executor: LocalExecutor, tmp_path: Path, typescript: str):
    """Windmill: argsObjToArr passes each argument by position as given: a JavaScript default replaces only a
    missing (undefined) argument, not a null one."""
    code = "export function main(a = 5, b = 6) { return [a, b]; }\n"
    assert result(run(executor, typescript, code, tmp_path, {"a": None})) == [None, 6]


def test_typescript_date_parameters_get_a_date(executor: LocalExecutor, tmp_path: Path, typescript: str):
    """Windmill: bun_executor.rs / deno_executor.rs write `args["x"] = args["x"] ? new Date(args["x"]) : undefined`
    for each parameter the parser (windmill-parser-ts tstype_to_typ) reads as a datetime: `Date`, or a union of
    two with undefined or null; a falsy argument becomes undefined, so the parameter's default applies."""
    code = (
        "export async function main(\n"
        "  at: Date, // when\n"
        "  maybe: Date | undefined,\n"
        "  options: Record<string, (x: number) => Date> = {},\n"
        "  later?: null | Date,\n"
        "  text: string = 'x, y',\n"
        "  fallback: Date = new Date(0),\n"
        ") {\n"
        "  return [at.toISOString(), maybe, typeof options, later?.getUTCFullYear(), text, fallback.getTime()];\n"
        "}\n"
    )
    args = {"at": "2024-05-06T07:08:09Z", "maybe": None, "later": "2030-01-01", "text": "2024-05-06", "fallback": ""}
    assert result(run(executor, typescript, code, tmp_path, args)) == [
        "2024-05-06T07:08:09.000Z", None, "object", 2030, "2024-05-06", 0]


# --- TypeScript: errors -----------------------------------------------------------------


def test_typescript_error_is_name_message_stack(executor: LocalExecutor, tmp_path: Path, typescript: str):
    """Windmill: the wrappers' catch reports `{message: e.message, name: e.name, stack: e.stack}`; bun's also
    prints the error first (`console.error(e)`), deno's does not."""
    code = (
        "class QuotaError extends Error {\n  name = 'QuotaError';\n}\n"
        "export function main() {\n  throw new QuotaError('over quota');\n}\n"
    )
    outcome = run(executor, typescript, code, tmp_path)
    failed = error(outcome)
    assert (failed.name, failed.message) == ("QuotaError", "over quota")
    assert "main.ts:5" in failed.stack
    assert ("over quota" in outcome.logs) == (typescript == "bun")


def test_typescript_thrown_value_that_is_not_an_error(executor: LocalExecutor, tmp_path: Path, typescript: str):
    """Windmill reads `e.message` and `e.name` of whatever was thrown, so a thrown string has neither; millrace's
    errors always have both: it is an `Error` with the string as its message."""
    failed = error(run(executor, typescript, "export function main() { throw 'plain text'; }\n", tmp_path))
    assert (failed.name, failed.message) == ("Error", "plain text")


def test_typescript_cycle_in_the_result_is_the_steps_error(executor: LocalExecutor, tmp_path: Path, typescript: str):
    """Windmill: the result is serialised inside the wrappers' try, so JSON.stringify's TypeError is the step's."""
    code = "export function main() { const a: any = {}; a.self = a; return a; }\n"
    assert error(run(executor, typescript, code, tmp_path)).name == "TypeError"


def test_typescript_without_main(executor: LocalExecutor, tmp_path: Path, typescript: str):
    """Windmill: bun's wrapper.mjs imports the module whole and throws `Error("main function is missing")`;
    deno's wrapper.ts imports `main` by name, so the module does not link and the process exits with code 1."""
    failed = error(run(executor, typescript, "export function helper() { return 1; }\n", tmp_path))
    if typescript == "bun":
        assert (failed.name, failed.message) == ("Error", "main function is missing")
    else:
        assert failed.name == "ExecutionErr"
        assert failed.message.startswith('exit code for "deno run": 1, last log lines:\n')
        assert "does not provide an export named 'main'" in failed.message


def test_typescript_script_that_throws_on_load_is_an_exit_code_error(executor: LocalExecutor, tmp_path: Path,
                                                                     typescript: str):
    """Windmill: the wrappers import the script before their try: an error at its top level ends the process,
    and process_result reports ExecutionErr with the end of the log, where the runtime printed it."""
    outcome = run(executor, typescript, "throw new RangeError('at load');\nexport function main() {}\n", tmp_path)
    failed = error(outcome)
    assert (failed.name, failed.exit_code) == ("ExecutionErr", 1)
    assert failed.message.startswith(f'exit code for "{typescript} run": 1, last log lines:\n')
    assert "at load" in failed.message and "at load" in outcome.logs


def test_typescript_process_exit_is_an_exit_code_error(executor: LocalExecutor, tmp_path: Path, typescript: str):
    """Windmill: bun_executor / deno_executor handle_child ("bun run", "deno run") fails a process that exits
    non-zero before its wrapper wrote a result with extract_error_value: the code and the end of the log."""
    code = "export function main() { console.log('leaving'); process.exit(4); }\n"
    failed = error(run(executor, typescript, code, tmp_path))
    assert (failed.name, failed.exit_code) == ("ExecutionErr", 4)
    assert failed.message == f'exit code for "{typescript} run": 4, last log lines:\nleaving'


# --- bash -------------------------------------------------------------------------------


def test_bash_script_starts_with_set_e(executor: LocalExecutor, tmp_path: Path):
    """Windmill: handle_bash_job writes main.sh as `set -e\\n` + the script, so the script's lines are one down."""
    assert result(run(executor, "bash", "echo $LINENO\n", tmp_path)) == "2"


def test_bash_result_out_is_the_string_result(executor: LocalExecutor, tmp_path: Path):
    """Windmill: handle_bash_job reads ./result.json, else ./result.out as it is (not trimmed), else the
    last line of the output, trimmed."""
    assert result(run(executor, "bash", "printf '  padded \\n' > result.out\necho last\n", tmp_path)) == "  padded \n"
    assert result(run(executor, "bash", "echo '  last  '\n", tmp_path)) == "last"


def test_bash_non_zero_exit_is_windmills_execution_error(executor: LocalExecutor, tmp_path: Path):
    """Windmill: handle_child gives ExitStatus("bash run", code); process_result reports extract_error_value:
    `exit code for "bash run": N, last log lines:\\n` + the last 600 characters of the log, trimmed,
    colour codes removed."""
    code = "for i in $(seq 1 200); do echo \"line $i\"; done\nprintf '\\e[31mred\\e[0m\\n'\nexit 4\n"
    failed = error(run(executor, "bash", code, tmp_path))
    assert failed.name == "ExecutionErr"
    head, _, tail = failed.message.partition("\n")
    assert head == 'exit code for "bash run": 4, last log lines:'
    output = "".join(f"line {i}\n" for i in range(1, 201)) + "\x1b[31mred\x1b[0m\n"
    assert tail == output[-600:].strip().replace("\x1b[31m", "").replace("\x1b[0m", "")
    assert tail.endswith("line 200\nred")


def test_bash_exit_error_counts_characters_not_bytes(executor: LocalExecutor, tmp_path: Path):
    """Windmill: process_result quotes `right(logs, 600)`, characters of the log, whatever their width."""
    code = "printf 'é%.0s' $(seq 1 700)\nexit 1\n"
    for locale in ("C.UTF-8", "C"):  # the step's own locale does not change the count
        failed = error(run(executor, "bash", code, tmp_path, env={"LANG": locale}))
        assert failed.message == 'exit code for "bash run": 1, last log lines:\n' + "é" * 600, locale


def test_bash_output_copy_is_kept_out_of_tmp(executor: LocalExecutor, tmp_path: Path):
    """A pod's root file system is read-only: the wrapper needs nothing outside the step's directory."""
    outcome = run(executor, "bash", "echo fine\n", tmp_path, env={"TMPDIR": "/nonexistent"})
    assert result(outcome) == "fine"
