"""`millrace serve FILE`: the flow's webhook on 127.0.0.1, to try a trigger before it is deployed."""

from __future__ import annotations

import argparse
import queue
from collections import OrderedDict
import secrets
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..triggers.webhook import DEFAULT_MAX_BODY, HookPolicy, RateLimit

if TYPE_CHECKING:
    from ..model.run import RunStatus


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="serve a flow's webhook on 127.0.0.1 and run the flow for each POST")
    serve.add_argument("file", type=Path)
    serve.add_argument("--port", type=int, default=8790)
    serve.add_argument("--token", help="the bearer token callers must send (default: a new random one, printed)")
    serve.add_argument("--scripts", type=Path, action="append", default=[])
    serve.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, help="bytes; larger bodies get 413")
    serve.add_argument("--rate", type=float, default=5.0, help="requests per second allowed after a burst")
    serve.add_argument("--burst", type=int, default=20, help="requests allowed at once before --rate applies")


def main(options: argparse.Namespace) -> int:
    from .main import load_runnable

    loaded, library, problems = load_runnable(options.file, options.scripts)
    for problem in problems:
        print(str(problem), file=sys.stderr)
    token = options.token or secrets.token_urlsafe(24)
    policy = HookPolicy(flow=loaded.name, schema=loaded.flow.schema_, token=token, max_body=options.max_body,
                        preprocessor=loaded.flow.value.preprocessor_module is not None)
    from ..local.executor import LocalExecutor
    from ..local.runner import LocalRun
    from ..triggers.server import HookTarget, TriggerServer

    with LocalExecutor() as executor:
        def execute(run_id: str, args: dict[str, Any]) -> RunStatus:
            run = LocalRun(loaded=loaded, executor=executor, library=library, run_id=run_id,
                           approvals=executor.api.backend)
            return run.execute(args, preprocess=policy.preprocessor)

        runs = _SerialRuns(loaded.name, execute)
        hook = HookTarget(policy=policy, start=runs.submit, wait=runs.wait)
        server = TriggerServer(lambda flow: hook if flow == loaded.name else None, host="127.0.0.1",
                               port=options.port, limit=RateLimit(per_second=options.rate, burst=options.burst))
        server.start()
        print(f"POST {server.url}/hooks/{loaded.name}  (add /wait to answer with the result)\n"
              f"Authorization: Bearer {token}\nCtrl-C stops", file=sys.stderr, flush=True)
        try:
            runs.work()
        finally:
            server.close()
    return 0


# Outcomes kept for callers that wait; older ones are in the run records (`millrace show`).
KEPT_OUTCOMES = 1000


class _SerialRuns:
    """Runs started by requests, one at a time in arrival order, on the serving thread."""

    def __init__(self, flow: str, execute: Any) -> None:
        self._flow = flow
        self._execute = execute
        self._queue: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._done: OrderedDict[str, RunStatus] = OrderedDict()
        self._finished = threading.Condition()

    def submit(self, args: dict[str, Any]) -> str:
        from ..local.store import new_run_id  # not at the top: `millrace validate` and `run` load this module too

        run_id = new_run_id(self._flow)
        self._queue.put((run_id, args))
        return run_id

    def wait(self, run_id: str) -> dict[str, Any]:
        with self._finished:
            self._finished.wait_for(lambda: run_id in self._done)
            state = self._done.pop(run_id)
        return {"run": run_id, "status": state.phase.lower(), "result": state.result,
                "error": state.error.model_dump(exclude_none=True) if state.error else None}

    def work(self) -> None:
        while True:
            run_id, args = self._queue.get()
            state = self._execute(run_id, args)
            print(f"run {run_id}: {state.phase.lower()}", file=sys.stderr, flush=True)
            with self._finished:
                self._done[run_id] = state
                while len(self._done) > KEPT_OUTCOMES:
                    self._done.popitem(last=False)
                self._finished.notify_all()
