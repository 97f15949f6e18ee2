"""`kubectl millrace`: start, watch, inspect and steer FlowRuns in a cluster.

Each command acts on the cluster of the current kubeconfig context and its
namespace, as kubectl does; `--kubeconfig`, `--context` and `-n` choose
others. One module per group of commands: start.py (run, retry), view.py
(get, describe), logs.py, control.py (resume, cancel).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ...errors import FlowError
from ..outcome import EXIT_INVALID
from . import connect, control, logs, start, view
from .connect import Target
from .errors import PluginError

Command = Callable[[argparse.Namespace, Target], int]
COMMANDS: dict[str, Command] = {
    "run": start.run,
    "retry": start.retry,
    "get": view.get,
    "describe": view.describe,
    "logs": logs.logs,
    "resume": lambda options, target: control.request(target.kube, target.namespace, options, cancel=False),
    "cancel": lambda options, target: control.request(target.kube, target.namespace, options, cancel=True),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="kubectl millrace",
                                  description="Run and inspect millrace flows in the cluster of the current "
                                              "kubeconfig context (FlowRuns of millrace.dev/v1alpha1).")
    connect.add_options(top, before_command=True)
    common = argparse.ArgumentParser(add_help=False)
    connect.add_options(common, before_command=False)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    start.register(sub, common)
    view.register(sub, common)
    logs.register(sub, common)
    control.register(sub, common)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    options = parser().parse_args(argv)
    try:
        return COMMANDS[options.command](options, connect.connect(options))
    except FlowError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_INVALID
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
