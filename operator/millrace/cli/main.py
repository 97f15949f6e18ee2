"""`millrace`: run and validate flows from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import FlowError, Problem
from ..expressions import Sandbox
from ..engine.inputs import unknown_args
from ..engine.validate import validate_flow
from ..local.scripts import build_library, search_roots
from ..model.loader import FlowDocument, LoadedFlow, load_flow_document, load_flow_file, read_flow_documents
from . import crds, data, operator, preview, runs, schedule, serve
from .args import parse_args
from .outcome import EXIT_INVALID, EXIT_OK, exit_code, report

if TYPE_CHECKING:
    from ..local.forkserver import ForkServer
    from ..model.run import RunStatus

# Running a flow needs the executor, the runner and their fork server; checking one does not,
# so they are imported by `_run` (tests/unit/test_cli_imports.py keeps it so).

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="millrace", description="Run Windmill OpenFlow flows locally or on Kubernetes.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a flow on this machine")
    run.add_argument("file", type=Path, help="a Flow manifest or a bare OpenFlow file (.yaml or .json)")
    run.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="a flow input (repeatable)")
    run.add_argument("--args-file", type=Path, help="a JSON file holding the flow inputs")
    run.add_argument("--output", choices=["text", "json"], default="text", help="json prints only the outcome")
    run.add_argument("--scripts", type=Path, action="append", default=[], help="a folder where script and flow paths resolve")
    run.add_argument("--keep-workdirs", action="store_true", help="keep each step's working directory")
    run.add_argument("--wait", action="store_true",
                     help="when the run suspends, keep serving its resume and cancel links and go on when one is used")
    run.add_argument("--from-run", metavar="RUN", help="restart the local run RUN (with --from): its inputs, and the "
                                                        "results of the steps before STEP, are reused")
    run.add_argument("--from", dest="from_step", metavar="STEP", help="the top-level step to restart from (with --from-run)")

    validate = sub.add_parser("validate", help="check flows without running them")
    validate.add_argument("files", type=Path, nargs="+")
    validate.add_argument("--scripts", type=Path, action="append", default=[])
    preview.register(sub)
    runs.register(sub)
    schedule.register(sub)
    serve.register(sub)
    data.register(sub)
    crds.register(sub)
    operator.register(sub)
    return parser


def _resume_or_cancel(options: argparse.Namespace) -> int:
    if options.namespace:
        return runs.in_cluster(options)
    run_id, flow_name, state = (runs.resume if options.command == "resume" else runs.cancel)(options)
    report(options.output, run_id, flow_name, state)
    return exit_code(state)


def _dispatch(options: argparse.Namespace, forks: ForkServer | None) -> int:
    handlers = {
        "run": lambda options: _run(options, forks),
        "validate": _validate,
        "preview": preview.main,
        "resume": _resume_or_cancel,
        "cancel": _resume_or_cancel,
        "runs": lambda _: runs.list_runs(),
        "show": runs.show,
        "crds": crds.write,
        "operator": operator.run,
        "schedule": schedule.main,
        "serve": serve.main,
    }
    handler = handlers.get(options.command, data.main if options.command in data.COMMANDS else None)
    assert handler is not None, options.command
    return handler(options)


def main(argv: Sequence[str] | None = None, forks: ForkServer | None = None) -> int:
    """`forks`: the fork server `millrace run` started already (cli/launch.py); closed on return."""
    try:
        return _dispatch(_parser().parse_args(argv), forks)
    except FlowError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if forks is not None:
            forks.close()


def _check(loaded: LoadedFlow, path: Path, scripts: list[Path], sandbox: Sandbox) -> tuple[Any, list[Problem]]:
    library = build_library(loaded.flow, search_roots(path, scripts))
    problems = validate_flow(loaded, library, sandbox)
    spec = (loaded.manifest or {}).get("spec") or {}
    if "schedule" in spec:
        from ..schedule.policy import schedule_problems  # the schedule models: only a scheduled flow needs them

        problems += schedule_problems(loaded.name, spec)
    return library, problems


def _load_checked(path: Path, scripts: list[Path], sandbox: Sandbox) -> tuple[LoadedFlow, Any, list[Problem]]:
    loaded = load_flow_file(path)
    library, problems = _check(loaded, path, scripts, sandbox)
    return loaded, library, problems


def load_runnable(path: Path, scripts: list[Path]) -> tuple[LoadedFlow, Any, list[Problem]]:
    """A flow to run: FlowError on any error; the warnings are returned."""
    with Sandbox() as sandbox:
        loaded, library, problems = _load_checked(path, scripts, sandbox)
    errors = [p for p in problems if not p.warning]
    if errors:
        raise FlowError(errors)
    return loaded, library, problems


def _validate(options: argparse.Namespace) -> int:
    status = EXIT_OK
    with Sandbox() as sandbox:
        for path in options.files:
            try:
                real, docs = read_flow_documents(path)
            except FlowError as exc:
                _print_problems(exc.problems)
                print(f"{path}: invalid ({_errors(exc.problems)})")
                status = EXIT_INVALID
                continue
            names: dict[str, str] = {}
            for doc in docs:
                name, problems = _validate_document(doc, real, path, options.scripts, sandbox)
                if name in names:
                    problems.append(Problem(name, f"defined again in {path} (documents {names[name]} and {doc.default_name}): "
                                                  "applied together, the last one wins"))
                names.setdefault(name, doc.default_name)
                _print_problems(problems)
                where = str(path) if len(docs) == 1 else f"{path}: {name}"
                if any(not p.warning for p in problems):
                    status = EXIT_INVALID
                    print(f"{where}: invalid ({_errors(problems)})")
                else:
                    print(f"{where}: ok" if len(docs) > 1 else f"{where}: ok ({name})")
    return status


def _validate_document(doc: FlowDocument, real: Path, path: Path, scripts: list[Path],
                       sandbox: Sandbox) -> tuple[str, list[Problem]]:
    """The document's flow name (its default when it cannot be read) and its problems."""
    try:
        loaded = load_flow_document(doc.raw, doc.default_name, base_dir=real.parent, source=real)
    except FlowError as exc:
        named = [p.flow for p in exc.problems if p.flow]
        return (named[0] if named else doc.default_name), list(exc.problems)
    return loaded.name, _check(loaded, path, scripts, sandbox)[1]


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        print(f"{'warning' if problem.warning else 'error'}: {problem}".replace("warning: warning: ", "warning: "), file=sys.stderr)


def _errors(problems: list[Problem]) -> str:
    count = sum(not p.warning for p in problems)
    return f"{count} error{'s' if count != 1 else ''}"


def _run(options: argparse.Namespace, forks: ForkServer | None) -> int:
    # One sandbox checks the flow and runs it: a flow whose expressions need V8 starts it once.
    with Sandbox() as sandbox:
        return _run_in(options, sandbox, forks)


def _run_in(options: argparse.Namespace, sandbox: Sandbox, started: ForkServer | None) -> int:
    problems: list[Problem] = []
    try:
        loaded, library, problems = _load_checked(options.file, options.scripts, sandbox)
        errors = [p for p in problems if not p.warning]
        if errors:
            raise FlowError(errors)
        initial = runs.restart_state(options, loaded)
        if initial is not None:
            args = initial.args
        else:
            args = parse_args(loaded.name, loaded.flow.schema_, options.arg, options.args_file)
            problems += unknown_args(loaded.name, loaded.flow.schema_, args)
    except FlowError as exc:
        if options.output != "json":
            raise
        # Scripts read one JSON document on stdout whatever happened.
        warnings = [p for p in problems if p.warning]
        print(json.dumps({"status": "invalid", "errors": [_problem_json(p) for p in exc.problems],
                          "warnings": [_problem_json(p) for p in warnings]}, indent=2))
        return EXIT_INVALID
    if options.output == "text":
        for warning in problems:
            print(str(warning), file=sys.stderr)
    forks = _needed_fork_server(loaded, library, started)
    from ..local.executor import LocalExecutor
    from ..local.progress import Progress
    from ..local.runner import LocalRun

    progress = Progress(loaded.name, loaded.flow) if options.output == "text" else None
    with LocalExecutor(forks=forks) as executor:
        run = LocalRun(
            loaded=loaded,
            executor=executor,
            library=library,
            observer=progress.update if progress else None,
            keep_workdirs=options.keep_workdirs,
            approvals=executor.api.backend,
            wait_when_suspended=options.wait,
            sandbox=sandbox,
        )
        if options.wait and options.output == "text":
            print("--wait: a suspended run waits here for its resume or cancel link", file=sys.stderr)
        state = run.execute(args, initial=initial)
    report(options.output, run.run_id, loaded.name, state)
    return exit_code(state)


def _needed_fork_server(loaded: LoadedFlow, library: Any, started: ForkServer | None) -> ForkServer | None:
    """The fork server when python3 steps will run (`started` if given, closed if not needed),
    started now if not yet: it boots on another core while this process imports the executor
    and the step API, instead of delaying the first step."""
    from ..engine.library import step_languages
    from ..runtime.languages import LANGUAGES

    if not any(LANGUAGES[language].fork_server for language in step_languages(loaded.flow, library)):
        if started is not None:
            started.close()
        return None
    if started is not None:
        return started
    from ..local.environment import started_fork_server

    return started_fork_server(os.environ)


def _problem_json(problem: Problem) -> dict[str, str | None]:
    return {"flow": problem.flow, "step": problem.step, "field": problem.field, "message": problem.message}


def kubectl_plugin() -> int:
    """`kubectl millrace ...`: commands on the cluster (cli/kubectl/), not this machine's runs."""
    from .kubectl.main import main as plugin_main

    return plugin_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
