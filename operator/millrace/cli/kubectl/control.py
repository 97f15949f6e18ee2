"""`resume RUN` and `cancel RUN`: ask the operator to go on with, refuse or stop a run.

The request is recorded as the run's resume record (cluster/control.py); the
operator applies it. `millrace resume|cancel -n NS` does the same.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from ...errors import FlowError, Problem

if TYPE_CHECKING:
    from ...cluster.kube import KubeApi


def add_resume_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN")
    parser.add_argument("--payload", default="null", help="JSON the next step sees as `resume`")
    parser.add_argument("--approver", default="cli")
    parser.add_argument("--disapprove", action="store_true",
                        help="refuse the suspended step: the run fails with SuspendedDisapproved "
                             "(or goes on with that error, with continue_on_disapprove_timeout)")


def add_cancel_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN")
    parser.add_argument("--reason", default="cancelled")
    parser.add_argument("--by", default="cli")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    add_resume_options(sub.add_parser("resume", parents=[common], help="approve a suspended run and let it go on"))
    add_cancel_options(sub.add_parser("cancel", parents=[common], help="cancel a run"))


def payload(options: argparse.Namespace) -> Any:
    try:
        return json.loads(options.payload)
    except json.JSONDecodeError as exc:
        raise FlowError([Problem(options.run, f"--payload is not JSON: {exc}", field="payload")]) from None


def request(kube: KubeApi, namespace: str, options: argparse.Namespace, cancel: bool) -> int:
    """Record the resume, disapproval or cancel request of `options` for the FlowRun."""
    # Imported here: the local `millrace resume` parser uses this module too, and stays quick to load.
    from ...cluster.control import request_resume

    disapprove = not cancel and options.disapprove
    name = request_resume(kube, namespace, options.run,
                          payload=None if cancel or disapprove else payload(options),
                          approver=options.by if cancel else options.approver, cancel=cancel,
                          reason=options.reason if cancel else "", disapprove=disapprove)
    what = "cancel" if cancel else "disapproval" if disapprove else "resume"
    print(f"flowrun/{options.run} {what} requested ({name})")
    return 0
