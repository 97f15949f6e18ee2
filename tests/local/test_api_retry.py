"""A step's report survives a step API that is briefly unreachable (an operator restarting)."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "operator" / "millrace" / "runtime" / "sdk"))
import millrace_step_api  # noqa: E402

pytestmark = pytest.mark.local


class Recorder(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        Recorder.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def api_nobody_serves(monkeypatch: pytest.MonkeyPatch, retry_s: float) -> int:
    """Point the client at a free loopback port; return the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MILLRACE_API_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MILLRACE_TOKEN", "t")
    monkeypatch.setenv("MILLRACE_API_RETRY_S", str(retry_s))
    return port


def test_the_report_waits_for_the_api_to_come_back(monkeypatch: pytest.MonkeyPatch) -> None:
    port = api_nobody_serves(monkeypatch, 30)
    server: list[HTTPServer] = []

    def come_back_later() -> None:
        time.sleep(1.0)
        server.append(HTTPServer(("127.0.0.1", port), Recorder))
        server[0].serve_forever(poll_interval=0.05)

    threading.Thread(target=come_back_later, daemon=True).start()
    try:
        assert millrace_step_api.call("POST", "report", {"ok": True, "result": 1}) == {"ok": True}
        assert json.loads(Recorder.received[-1]) == {"ok": True, "result": 1}
    finally:
        if server:
            server[0].shutdown()


def test_without_an_api_it_gives_up_after_the_retry_window(monkeypatch: pytest.MonkeyPatch) -> None:
    api_nobody_serves(monkeypatch, 0.5)
    started = time.monotonic()
    with pytest.raises(OSError):
        millrace_step_api.call("GET", "state")
    assert time.monotonic() - started >= 0.5


def test_a_proxy_in_the_environment_never_sees_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step inherits its user's proxy settings (for package installs); its token goes only to
    the step API."""
    class Proxy(Recorder):
        received: list[bytes] = []

        def do_POST(self) -> None:
            Proxy.received.append(self.headers["Authorization"].encode())
            self.send_error(502)

    api = HTTPServer(("127.0.0.1", 0), Recorder)
    proxy = HTTPServer(("127.0.0.1", 0), Proxy)
    for server in (api, proxy):
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    Recorder.received.clear()
    try:
        monkeypatch.setenv("MILLRACE_API_URL", f"http://127.0.0.1:{api.server_port}")
        monkeypatch.setenv("MILLRACE_TOKEN", "secret-token")
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.server_port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert millrace_step_api.call("POST", "report", {"ok": True}) == {"ok": True}
        assert Recorder.received == [b'{"ok": true}'] and Proxy.received == []
    finally:
        for server in (api, proxy):
            server.shutdown()
