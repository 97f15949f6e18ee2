"""millrace step wrapper for python3: call main() of ./main.py with ./args.json, as Windmill does.

Standard library only: this file is copied into step pods as it is, with the
sdk folder beside its own (../sdk), which makes `import wmill` work. The
local fork server imports it once and calls main() in each forked child. It
prints only what Windmill's wrapper lets Python print (the traceback of a
script that does not load): the step's stdout and stderr are the user's. The
outcome goes to the step API (MILLRACE_API_URL, MILLRACE_TOKEN). In a pod
(MILLRACE_EXIT_ON_FAILURE, set by launch.sh) an exception's traceback is
printed too and a failed step exits 1, so the pod's log shows it and its
Job is Failed.

A ./requirements.txt (written by the launch plan when the step needs
packages, runtime/requirements.py) is installed first, cached, by
millrace_packages.py; its folder goes on sys.path (docs/dependencies.md).

What a step gets and gives follows the wrapper.py that Windmill's
python_executor.rs (handle_python_job, prepare_wrapper) writes: arguments by
name (millrace_arguments.py, in the sdk folder), a parameter with no argument
gets None and one with a default takes the default when its argument is
missing or null; the result is
serialised by res_to_json (bytes to base64, anything else not JSON through
str(), NaN and infinities to null); a raised exception is {name, message, stack}.
"""

import base64
import io
import json
import os
import re
import sys
import traceback
import types
from typing import Optional, cast

SDK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sdk")
sys.path.insert(1, SDK)  # after the script's folder, before site-packages: our wmill, not an installed one

from millrace_arguments import convert, signature, spread  # noqa: E402  (found through the line above)
from millrace_packages import InstallError, install  # noqa: E402
from millrace_step_api import StepApiError, send  # noqa: E402

SCRIPT = "main.py"
ARGS = "args.json"
REQUIREMENTS = "requirements.txt"  # written by the launch plan only when the step needs packages
ENTRYPOINT = "entrypoint"
# Windmill's name for the interpreter in an exit-code error, and how much of the log that error quotes.
PROGRAM = "python run"
LOG_TAIL = 600
# Windmill rewrites these in the result's JSON text to null (get_result_postprocessor), strings included.
INVALID_FIELDS = re.compile(r"(?:\bNaN\b|\\*\\u0000|Infinity|\-Infinity)")
# Header comments Windmill reads (PythonAnnotations); the one this wrapper honours turns the rewrite off.
ANNOTATIONS = frozenset({"no_cache", "no_postinstall", "py_select_latest", "skip_result_postprocessing",
                         "py310", "py311", "py312", "py313"})
ANNOTATION_TOKEN = re.compile(r"^#|\w+")


def report(document: str) -> None:
    """Hand the outcome document to the step API; a result too large to send becomes the step's error."""
    try:
        send("POST", "report", document.encode("utf-8"))
    except StepApiError as refusal:
        if refusal.status != 413:
            raise  # into the step's log: the runner then says the step ended without a report
        send("POST", "report", failure("ResultError", f"the result could not be reported: {refusal}").encode("utf-8"))


def failure(name: str, message: str, stack: str = "", exit_code: Optional[int] = None) -> str:
    error: dict = {"name": name, "message": message, "stack": stack}
    if exit_code is not None:
        error["exit_code"] = exit_code
    return json.dumps({"ok": False, "error": error})


def annotations(code: str) -> set:
    """The annotations of the script's header, read as Windmill's annotations macro reads them.

    Lines are read from the top until one without a word nor a leading `#`
    (a blank line): a `#` line made only of annotation names sets them, any
    other line is passed over.
    """
    found: set = set()
    for line in code.split("\n"):
        tokens = ANNOTATION_TOKEN.findall(line.removesuffix("\r"))
        comment = tokens[:1] == ["#"]
        words = tokens[1:] if comment else tokens
        if any(word not in ANNOTATIONS for word in words):
            continue
        if not comment:
            break
        found.update(words)
    return found


def as_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def to_json(result: object, rewrite: bool) -> str:
    """The result's JSON text as Windmill's res_to_json makes it.

    A pandas or polars DataFrame becomes its rows; bytes, at the top or as a
    value of a top-level dict, become base64; anything else JSON cannot hold
    goes through str(). NaN, infinities and NUL characters then become null.
    """
    kind = type(result)
    if kind.__name__ == "DataFrame" and kind.__module__ == "pandas.core.frame":
        result = result.values.tolist()  # type: ignore[attr-defined]
    elif kind.__name__ == "DataFrame" and kind.__module__ == "polars.dataframe.frame":
        result = result.rows()  # type: ignore[attr-defined]
    elif kind.__name__ == "bytes":
        result = as_base64(result)  # type: ignore[arg-type]
    elif kind.__name__ == "dict":
        result = {key: as_base64(value) if type(value).__name__ == "bytes" else value
                  for key, value in result.items()}  # type: ignore[attr-defined]
    text = json.dumps(result, separators=(",", ":"), default=str)
    return INVALID_FIELDS.sub(" null ", text) if rewrite else text


def not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def success(text: str) -> str:
    # Left as NaN under skip_result_postprocessing, or escapes broken by the rewrite: Windmill cannot parse it either.
    try:
        json.loads(text, parse_constant=not_json)
    except ValueError as problem:
        return failure("ResultError", f"result is not JSON: {problem}")
    return '{"ok":true,"result":' + text + "}"


def user_failure(error: BaseException) -> str:
    """The error as Windmill's wrapper reports it: class name, str(), the user's frames."""
    tail = error.__traceback__
    while tail is not None and tail.tb_frame.f_globals is globals():
        tail = tail.tb_next  # the wrapper's own frames, which Windmill drops with tb[1:]
    if os.environ.get("MILLRACE_EXIT_ON_FAILURE"):
        traceback.print_exception(type(error), error, tail)  # a pod's log is where `kubectl logs` finds it
    return failure(type(error).__name__, str(error), "\n".join(traceback.format_tb(tail)))


def load_failure(error: BaseException) -> str:
    """A script that does not load kills Windmill's wrapper before its try: an exit-code error.

    Python prints the traceback (into the step's log, as it would); the
    message quotes its end, as Windmill quotes the end of the log.
    """
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    sys.stderr.write(text)
    return failure("ExecutionErr", f'exit code for "{PROGRAM}": 1, last log lines:\n{text[-LOG_TAIL:].strip()}', exit_code=1)


def load(code: str) -> types.ModuleType:
    """Run the script as module `main`, as an import would, so `__main__` blocks stay quiet."""
    module = types.ModuleType("main")
    module.__file__ = os.path.abspath(SCRIPT)
    sys.modules["main"] = module
    exec(compile(code, SCRIPT, "exec"), module.__dict__)
    return module


def entrypoint() -> str:
    """main, or the function ./entrypoint names (a flow's preprocessor)."""
    try:
        with open(ENTRYPOINT, encoding="utf-8") as stream:
            return stream.read().strip()
    except FileNotFoundError:
        return "main"


def packages() -> str | None:
    """Install the step's requirements (cached) and put them on its path; a failure document if that fails."""
    try:
        with open(REQUIREMENTS, encoding="utf-8") as stream:
            wanted = [line for line in stream.read().splitlines() if line]
    except FileNotFoundError:
        return None  # nothing to install: no installer runs
    try:
        folder = install(wanted)
    except (InstallError, OSError) as problem:
        step = os.environ.get("WM_FLOW_STEP_ID", "?")
        message = f"step '{step}': installing its requirements ({', '.join(wanted)}) failed: {problem}"
        sys.stderr.write(message + "\n")
        return failure("DependencyError", message)
    sys.path.insert(2, folder)  # after the step's folder and the sdk
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")]))
    return None


def run_step() -> str:
    """Run the step in the current directory; return its outcome document."""
    sys.path[0] = os.getcwd()  # the script's siblings import, the wrapper's do not
    sys.argv = [SCRIPT]
    refused = packages()
    if refused is not None:
        return refused
    with open(SCRIPT, encoding="utf-8") as stream:
        code = stream.read()
    with open(ARGS, encoding="utf-8") as stream:
        args = json.load(stream, strict=False)
    try:
        module = load(code)
        name = entrypoint()
        parameters, open_ended = signature(code, name)
        args = convert(parameters, args)  # before Windmill's try: a bad date or base64 ends the process
    except BaseException as error:
        return load_failure(error)
    try:
        function = getattr(module, name)  # a missing main() is an AttributeError, as in Windmill
        if function is None or not callable(function):
            raise ValueError("main function is missing")
        result = function(**spread(parameters, open_ended, args))
        # SystemExit too: a step's exit is its error, reported with its stack.
        return success(to_json(result, "skip_result_postprocessing" not in annotations(code)))
    except BaseException as error:
        return user_failure(error)


def main() -> None:
    # Line buffering keeps print() and tracebacks in order in the captured log.
    cast(io.TextIOWrapper, sys.stdout).reconfigure(line_buffering=True)
    document = run_step()
    report(document)
    if os.environ.get("MILLRACE_EXIT_ON_FAILURE") and not json.loads(document)["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
