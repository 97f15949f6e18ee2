"""The webhook endpoint over HTTP, the same in both shells (standard library only).

    POST /hooks/<flow>        start a run: 202 {"run": id}
    POST /hooks/<flow>/wait   start a run and answer when it ends: 200 {"run", "status", "result", "error"}

Refusals are JSON `{"error", "message"}`: 401 without a valid token or
signature, 404 for a flow with no webhook, 405 for other methods, 413 over
the size limit (refused before the body is read), 429 over the rate limit,
400 for a body that is not JSON or fails the flow's schema (naming the field).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from .webhook import HookPolicy, HookRequest, RateLimit, Refused, authorize, check_size, flow_input

PREFIX = "/hooks/"


@dataclass
class HookTarget:
    """A flow that can be started by webhook, as a shell provides it."""

    policy: HookPolicy
    start: Callable[[dict[str, Any]], str]
    # Waits for a run started by `start` and returns its outcome document; None where not offered.
    wait: Callable[[str], dict[str, Any]] | None = None


Resolve = Callable[[str], HookTarget | None]


class TriggerServer:
    def __init__(self, resolve: Resolve, *, host: str = "127.0.0.1", port: int = 0,
                 limit: RateLimit | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.resolve = resolve
        self.limit = limit or RateLimit()
        self.clock = clock
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer((host, port), _handler(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, name="webhooks", daemon=True)

    @property
    def url(self) -> str:
        host, port = cast("tuple[str, int]", self._http.server_address[:2])  # an IP socket's: (host, port, ...)
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a serve loop that must be running
            self._http.shutdown()
        self._http.server_close()

    def handle(self, method: str, target: str, headers: dict[str, str], read_body: Callable[[int], bytes]) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(target)
        if not parts.path.startswith(PREFIX):
            raise Refused(404, "no such endpoint")
        rest = unquote(parts.path[len(PREFIX):]).strip("/")
        wait = rest.endswith("/wait")
        flow = rest[: -len("/wait")] if wait else rest
        hook = self.resolve(flow)
        if hook is None:
            raise Refused(404, f"flow '{flow}' has no webhook")
        if method != "POST":
            raise Refused(405, "start a flow with POST")
        with self._lock:
            allowed = self.limit.allow(flow, self.clock())
        if not allowed:
            raise Refused(429, f"too many requests for flow '{flow}': try again shortly")
        query = dict(parse_qsl(parts.query))
        authorize(HookRequest(query=query, headers=headers, body=b""), hook.policy)
        declared = headers.get("content-length")
        length = int(declared) if declared and declared.isdigit() else 0
        check_size(length, hook.policy)
        args = flow_input(HookRequest(query=query, headers=headers, body=read_body(length)), hook.policy)
        run = hook.start(args)
        if not wait:
            return 202, {"run": run}
        if hook.wait is None:
            raise Refused(404, "this endpoint does not wait for runs: poll the run instead")
        return 200, hook.wait(run)


def _handler(server: TriggerServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                status, document = server.handle(self.command, self.path, headers, self.rfile.read)
            except Refused as exc:
                status, document = exc.status, {"error": _ERRORS.get(exc.status, "Error"), "message": str(exc)}
                # A refused body may be unread: the connection cannot carry another request.
                self.close_connection = True
            body = json.dumps(document, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

    return Handler


_ERRORS = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed",
           413: "PayloadTooLarge", 429: "TooManyRequests"}
