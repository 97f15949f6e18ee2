"""Runs one step's code in a real interpreter on this machine, each step in its own process.

python3 steps are forked from a warm fork server (see forkserver.py); bash
and TypeScript steps start their interpreter. Every step process leads its
own process group, so a timeout or a cancel kills whatever it started too.
Whatever a step does, run() returns an outcome: it never raises. Secret
variables are masked in its logs and error.

A step reports its outcome to the step API (local/stepapi.py) over HTTP; the
API writes it to the attempt's result file, read here once the process ends.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping
from itertools import count
from pathlib import Path
from types import TracebackType
from typing import Protocol

from ..runtime import go_signature, toolchain
from ..runtime.languages import LANGUAGES
from ..runtime.launch import Launch, plan
from ..runtime.outcome import cancelled, failed, interpret, timed_out
from ..runtime.protocol import StepError, StepOutcome, StepRequest
from ..runtime.redact import redact_outcome
from .environment import base_environment, python_fork_server
from .forkserver import ForkServer
from .stepapi import LocalStepApi

class StepProcess(Protocol):
    pid: int

    def wait(self, timeout: float | None = None) -> int: ...


class Spawned:
    """A started interpreter, waited on without Popen's polling when a timeout is set."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.pid = process.pid

    def wait(self, timeout: float | None = None) -> int:
        # Popen.wait(timeout) sleeps in steps of up to 50 ms; a pidfd wakes us when the process ends.
        if timeout is not None and hasattr(os, "pidfd_open"):
            descriptor = os.pidfd_open(self.pid)
            try:
                ready, _, _ = select.select([descriptor], [], [], timeout)
            finally:
                os.close(descriptor)
            if not ready:
                raise subprocess.TimeoutExpired(self.process.args, timeout)
        return self.process.wait(timeout)


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass  # the group is gone already


def read_text(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return None


class LocalExecutor:
    """Runs steps as local processes. Thread-safe: the engine runs parallel steps from a pool."""

    def __init__(
        self,
        *,
        fork_server: bool = True,
        python: str = sys.executable,
        environ: Mapping[str, str] = os.environ,
        api: LocalStepApi | None = None,
        forks: ForkServer | None = None,
    ) -> None:
        """`api`: the step API the steps report to; without one, the executor serves its own.
        `forks`: the fork server of python3 steps, made (and maybe started) already by
        `python_fork_server` with the same environment; without one, the executor makes its own."""
        self.api = api or LocalStepApi()
        self._owns_api = api is None
        self.python = python
        self.environ = dict(environ)
        self.base_env = base_environment(environ)
        self.forks = forks if forks is not None else python_fork_server(python, self.base_env) if fork_server else None
        # Reports and logs of running steps; one directory for all, as directories are slow to make.
        self.scratch = Path(tempfile.mkdtemp(prefix="millrace-steps-"))
        self._serial = count()
        self._running: dict[str, StepProcess] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.forks is not None:
            self.forks.close()
        if self._owns_api:
            self.api.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def cancel(self, key: str) -> None:
        """Kill the running step with this key, and all it started; its outcome says cancelled."""
        with self._lock:
            process = self._running.get(key)
            if process is None:
                return
            self._cancelled.add(key)
        kill_group(process.pid)

    def run(self, request: StepRequest) -> StepOutcome:
        started = time.monotonic()
        try:
            return redact_outcome(self._run(request, started), self.api.secrets())
        except toolchain.RuntimeMissing as missing:
            return failed(StepError(name="RuntimeMissing", message=str(missing)))
        except go_signature.GoSignatureError as problem:
            return failed(StepError(name="SignatureError", message=str(problem)))
        except Exception as error:  # a broken step or executor fails the step, never the engine
            message = f"the step could not be run: {type(error).__name__}: {error}"
            return failed(StepError(name="ExecutorError", message=message, stack=traceback.format_exc()),
                          duration_s=time.monotonic() - started)

    def _run(self, request: StepRequest, started: float) -> StepOutcome:
        launch = plan(request, self._program(request))
        workdir = Path(request.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        for name, content in launch.files.items():
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)  # imported scripts: u/admin/helper.py
            (workdir / name).write_text(content, encoding="utf-8")
        serial = next(self._serial)
        report, log = self.scratch / f"{serial}.report.json", self.scratch / f"{serial}.log"
        scope = request.scope()
        try:
            env = {**self.base_env, **request.env, **self.api.register_attempt(scope, report)}
            process = self._start(request, launch, env, log)
            with self._lock:
                self._running[request.key] = process
            try:
                returncode, stopped = self._settle(process, request.timeout_s)
            finally:
                with self._lock:
                    self._running.pop(request.key, None)
                    if request.key in self._cancelled:
                        self._cancelled.discard(request.key)
                        stopped = cancelled()
            logs = read_text(log) or ""
            duration = time.monotonic() - started
            if stopped is not None:
                return failed(stopped, logs, duration)
            return interpret(read_text(report), returncode, logs, duration, LANGUAGES[request.language].exit_name)
        finally:
            self.api.release_attempt(scope)
            report.unlink(missing_ok=True)
            log.unlink(missing_ok=True)

    def _program(self, request: StepRequest) -> str:
        row = LANGUAGES[request.language]
        # Python steps (and the SQL wrapper, a Python program) run on the operator's own Python.
        return self.python if row.program == "python3" else toolchain.find(row.program, self.environ, row.install_dirs)

    def _start(self, request: StepRequest, launch: Launch, env: dict[str, str], log: Path) -> StepProcess:
        if self.forks is not None and LANGUAGES[request.language].fork_server:
            return self.forks.spawn(request.workdir, env, str(log))
        with log.open("wb") as output:
            process = subprocess.Popen(
                launch.argv, cwd=request.workdir, env=env, stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return Spawned(process)

    @staticmethod
    def _settle(process: StepProcess, timeout_s: float | None) -> tuple[int, StepError | None]:
        """Wait for the step; past its timeout kill its group. Leftovers die with it either way."""
        try:
            returncode, stopped = process.wait(timeout_s), None
        except subprocess.TimeoutExpired:
            kill_group(process.pid)
            returncode, stopped = process.wait(), timed_out(timeout_s or 0.0)
        kill_group(process.pid)
        return returncode, stopped
