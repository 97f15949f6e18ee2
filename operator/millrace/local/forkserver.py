"""A warm Python that forks a fresh child for each python3 step.

Starting python3 costs tens of milliseconds; forking a process that has
already imported the step wrapper and the common standard library costs about
one. Each step still gets a process of its own: the server never runs user
code, so nothing one step does can reach the next. A step's environment
reaches os.environ, but what Python reads once at startup (PYTHONPATH, the
hash seed, -X options) is the server's; `random` reseeds itself in each child.

The server speaks one JSON document a line on its stdin and stdout:

    -> {"id": 1, "workdir": "...", "env": {...}, "log": "..."}
    <- {"id": 1, "pid": 4242}      the child runs, leading process group 4242
    <- {"id": 1, "status": 0}      it ended: a returncode as subprocess gives it, -N for signal N

This file runs as a script and imports nothing from millrace, so the server
starts quickly and carries no engine state into the children. The client
half below is what the executor uses.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from types import ModuleType
from typing import Any

# Imported once by the server so that steps find them loaded already. encodings.idna: the codec
# a socket's host name goes through, which every step's report to the step API would import.
PRELOAD = (
    "json", "re", "datetime", "collections", "typing", "dataclasses", "enum", "functools",
    "itertools", "math", "random", "decimal", "pathlib", "base64", "hashlib", "uuid",
    "urllib.parse", "inspect", "traceback", "linecache", "encodings.idna",
)


# --- server: runs as `python3 forkserver.py WRAPPER` ---------------------------------


def serve(wrapper_path: str) -> None:
    wrapper = load_wrapper(wrapper_path)
    for name in PRELOAD:
        importlib.import_module(name)
    gc.freeze()  # children then leave the inherited heap pages shared instead of copying them

    # Keep the protocol on private descriptors; 0, 1 and 2 are the children's to redirect.
    requests, replies = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup byte is written
    selector = selectors.DefaultSelector()
    selector.register(requests, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    private = (requests, replies, wake_read, wake_write, selector.fileno())

    def reply(document: dict[str, Any]) -> None:
        os.write(replies, json.dumps(document).encode() + b"\n")

    children: dict[int, int] = {}  # pid -> request id
    pending = b""
    try:
        while True:
            for key, _ in selector.select():
                if key.fd == wake_read:
                    drain(wake_read)
                    for pid, status in reap():
                        if pid in children:
                            reply({"id": children.pop(pid), "status": status})
                    continue
                data = os.read(requests, 1 << 16)
                if not data:
                    return  # the executor closed us
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    request = json.loads(line)
                    pid = os.fork()
                    if pid == 0:
                        child(wrapper, request, private)
                    set_group(pid)
                    children[pid] = request["id"]
                    reply({"id": request["id"], "pid": pid})
    finally:
        for pid in children:
            kill_group(pid)


def load_wrapper(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("millrace_wrapper", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def reap() -> list[tuple[int, int]]:
    ended: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append((pid, os.waitstatus_to_exitcode(status)))


def set_group(pid: int) -> None:
    # Parent and child both make the child a group leader, whichever runs
    # first: a timeout may kill the group before the child has run a line.
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # already done by the child


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass  # nothing left of it


def child(wrapper: ModuleType, request: dict[str, Any], private: tuple[int, ...]) -> None:
    """Become the step: never returns."""
    code = 1
    try:
        set_group(0)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in private:
            os.close(fd)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.chdir(request["workdir"])
        os.environ.clear()
        os.environ.update(request["env"])
        wrapper.main()
        code = 0
    except BaseException:
        traceback.print_exc()  # a wrapper failure, into the step's log
    finally:
        # What interpreter exit would do: wait for the step's threads, flush its output.
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


# --- client: used by the executor --------------------------------------------------


class ForkServerError(Exception):
    """The fork server went away while a step was starting or running."""


@dataclass
class ForkedChild:
    """A step forked by the server; waits like subprocess.Popen."""

    args: str
    pid: int = 0
    returncode: int | None = None
    started: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float | None = None) -> int:
        if not self.ended.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        if self.returncode is None:
            raise ForkServerError("the fork server exited while the step ran")
        return self.returncode


@dataclass
class Connection:
    """One server process and the children it has not yet reported ended."""

    process: subprocess.Popen[bytes]
    children: dict[int, ForkedChild] = field(default_factory=dict)
    gone: bool = False  # its replies ended: poll() may not say so yet, as the kernel reaps it a little later


class ForkServer:
    """Starts the server on first use, and again if it died; safe to share between threads."""

    def __init__(self, python: str, wrapper: Path, environment: dict[str, str]) -> None:
        self.python = python
        self.wrapper = wrapper
        self.environment = environment
        self._connection: Connection | None = None
        self._ids = count(1)
        self._lock = threading.Lock()

    def spawn(self, workdir: str, env: dict[str, str], log: str) -> ForkedChild:
        child = next(self._ids)
        request = {"id": child, "workdir": workdir, "env": env, "log": log}
        forked = ForkedChild(args=f"python3 step in {workdir}")
        with self._lock:
            connection = self._connected()
            connection.children[child] = forked
            try:
                assert connection.process.stdin is not None
                connection.process.stdin.write(json.dumps(request).encode() + b"\n")
                connection.process.stdin.flush()
            except OSError as error:
                del connection.children[child]
                raise ForkServerError(f"the fork server is gone: {error}") from error
        forked.started.wait()
        if not forked.pid:
            raise ForkServerError("the fork server exited before the step started")
        return forked

    def start(self) -> None:
        """Start the server now rather than at the first step, so that it boots while the caller works."""
        with self._lock:
            self._connected()

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            assert connection.process.stdin is not None
            connection.process.stdin.close()  # the server kills what still runs, then exits
            connection.process.wait()

    def _connected(self) -> Connection:
        if self._connection is None or self._connection.gone or self._connection.process.poll() is not None:
            process = subprocess.Popen(
                [self.python, __file__, str(self.wrapper)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=self.environment,
                start_new_session=True,  # a terminal's Ctrl-C is the engine's to handle, not the server's
            )
            self._connection = Connection(process)
            threading.Thread(target=self._read, args=(self._connection,), daemon=True, name="forkserver").start()
        return self._connection

    def _read(self, connection: Connection) -> None:
        assert connection.process.stdout is not None
        for line in connection.process.stdout:
            document = json.loads(line)
            with self._lock:
                forked = connection.children.get(document["id"])
                if forked is None:
                    continue
                if "pid" in document:
                    forked.pid = document["pid"]
                    forked.started.set()
                else:
                    forked.returncode = document["status"]
                    del connection.children[document["id"]]
                    forked.ended.set()
        # The server is gone: whoever waits on one of its children learns it now.
        with self._lock:
            connection.gone = True
            for forked in connection.children.values():
                forked.started.set()
                forked.ended.set()
            connection.children.clear()


if __name__ == "__main__":
    serve(sys.argv[1])
