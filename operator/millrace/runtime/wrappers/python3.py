"""millrace step wrapper for python3: call main() of ./main.py with ./args.json.

Standard library only: this file is copied into step pods as it is, with the
sdk folder beside its own (../sdk), which makes `import wmill` work. The
local fork server imports it once and calls main() in each forked child. It
never prints while the step runs: the step's stdout and stderr are the
user's. The outcome goes to the step API (MILLRACE_API_URL, MILLRACE_TOKEN).
In a pod (MILLRACE_EXIT_ON_FAILURE, set by launch.sh) a failed step's
traceback then goes to stderr and the process exits 1, so the pod's log
shows it and its Job is Failed.
"""

import inspect
import json
import os
import sys
import traceback
import types

SDK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sdk")
sys.path.insert(1, SDK)  # after the script's folder, before site-packages: our wmill, not an installed one

from millrace_step_api import StepApiError, send  # noqa: E402  (found through the line above)

SCRIPT = "main.py"
ARGS = "args.json"


class StepFailure(Exception):
    """A step error that is not the user's exception, so it has no traceback."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def report(document: str) -> None:
    """Hand the outcome document to the step API; a result too large to send becomes the step's error."""
    try:
        send("POST", "report", document.encode("utf-8"))
    except StepApiError as refusal:
        if refusal.status != 413:
            raise  # into the step's log: the runner then says the step ended without a report
        send("POST", "report", failure("ResultError", f"the result could not be reported: {refusal}").encode("utf-8"))


def success(result: object) -> str:
    try:
        return json.dumps({"ok": True, "result": result}, allow_nan=False)
    except (TypeError, ValueError) as problem:
        return failure("ResultError", f"result is not JSON: {problem}")


def failure(name: str, message: str, stack: str = "") -> str:
    return json.dumps({"ok": False, "error": {"name": name, "message": message, "stack": stack}})


def user_failure(error: BaseException) -> str:
    # Drop the wrapper's own frames: the stack starts in the user's main.py.
    tail = error.__traceback__
    while tail is not None and tail.tb_frame.f_globals is globals():
        tail = tail.tb_next
    stack = "".join(traceback.format_exception(type(error), error, tail))
    return failure(type(error).__name__, str(error), stack)


def bind(function: object, args: dict) -> tuple[list, dict]:
    """Arguments by name; those main() does not take are dropped unless it has **kwargs."""
    positional: list = []
    keywords: dict = {}
    taken: set = set()
    open_ended = False
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            open_ended = True
            continue
        if parameter.kind is parameter.VAR_POSITIONAL:
            continue
        if parameter.name not in args and parameter.default is parameter.empty:
            raise StepFailure("TypeError", f"main() missing required argument: '{parameter.name}'")
        taken.add(parameter.name)
        if parameter.kind is parameter.POSITIONAL_ONLY:
            positional.append(args.get(parameter.name, parameter.default))
        elif parameter.name in args:
            keywords[parameter.name] = args[parameter.name]
    if open_ended:
        keywords.update((name, value) for name, value in args.items() if name not in taken)
    return positional, keywords


def load(code: str) -> types.ModuleType:
    """Run the script as module `main`, as an import would, so `__main__` blocks stay quiet."""
    module = types.ModuleType("main")
    module.__file__ = os.path.abspath(SCRIPT)
    sys.modules["main"] = module
    exec(compile(code, SCRIPT, "exec"), module.__dict__)
    return module


def run_step() -> str:
    """Run the step in the current directory; return its outcome document."""
    sys.path[0] = os.getcwd()  # the script's siblings import, the wrapper's do not
    sys.argv = [SCRIPT]
    with open(SCRIPT, encoding="utf-8") as stream:
        code = stream.read()
    with open(ARGS, encoding="utf-8") as stream:
        args = json.load(stream)
    try:
        module = load(code)
    except BaseException as error:
        return user_failure(error)
    function = getattr(module, "main", None)
    if not callable(function):
        return failure("NameError", f"{SCRIPT} defines no main() function")
    try:
        positional, keywords = bind(function, args)
    except StepFailure as error:
        return failure(error.name, str(error))
    try:
        result = function(*positional, **keywords)
    except BaseException as error:  # SystemExit too: a step's exit is its error, reported with its stack
        return user_failure(error)
    return success(result)


def main() -> None:
    # Line buffering keeps print() and tracebacks in order in the captured log.
    sys.stdout.reconfigure(line_buffering=True)
    document = run_step()
    report(document)
    outcome = json.loads(document)
    if not outcome["ok"] and os.environ.get("MILLRACE_EXIT_ON_FAILURE"):
        error = outcome["error"]
        sys.stderr.write(error.get("stack") or f"{error['name']}: {error['message']}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
