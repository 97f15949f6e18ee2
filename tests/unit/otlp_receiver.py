"""An OTLP/HTTP receiver for tests: a real HTTP server on 127.0.0.1 that keeps what it is sent."""

from __future__ import annotations

import http.server
import json
from typing import Any


class Receiver(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP receiver: keeps every request's path, headers and JSON body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spans(self) -> list[dict[str, Any]]:
        return [span for _, _, body in self.requests for rs in body["resourceSpans"]
                for ss in rs["scopeSpans"] for span in ss["spans"]]
