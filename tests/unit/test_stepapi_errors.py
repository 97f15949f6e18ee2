"""Whatever a step API backend raises, the step gets a JSON error body (never a dropped connection)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from millrace.runtime.stepapi.server import StepApiServer
from millrace.runtime.stepapi.tokens import Claims, Signer


class BrokenBackend:
    def authorize(self, claims: Any) -> None:
        return None

    def get_variable(self, claims: Any, path: str) -> str:
        raise RuntimeError("the store is unreachable\nsecond line")


def test_an_unexpected_backend_error_is_a_json_500() -> None:
    signer = Signer(b"k" * 32)
    server = StepApiServer(BrokenBackend(), signer=signer).start()  # type: ignore[arg-type]
    try:
        token = signer.issue(Claims(run="ns/r", flow="f", path="a", step_id="a", attempt=1))
        request = urllib.request.Request(f"{server.url}/v1/variables/f/x", headers={"Authorization": f"Bearer {token}"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 500
        body = json.loads(caught.value.read())
        assert body["error"] == "BackendError"
        assert body["message"] == "the step API's backend failed: RuntimeError: the store is unreachable"
    finally:
        server.close()


def test_the_python_sdk_reports_an_answer_that_is_not_json(monkeypatch: pytest.MonkeyPatch) -> None:
    import http.server
    import importlib.util
    import threading
    from pathlib import Path

    import millrace.runtime as runtime

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>502 Bad Gateway</html>"
            self.send_response(502)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spec = importlib.util.spec_from_file_location("sdk_under_test", Path(runtime.__file__).parent / "sdk" / "millrace_step_api.py")
    sdk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sdk)
    monkeypatch.setenv("MILLRACE_API_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("MILLRACE_TOKEN", "t")
    monkeypatch.setenv("MILLRACE_API_RETRY_S", "0")
    try:
        with pytest.raises(sdk.StepApiError) as caught:
            sdk.send("GET", "state")
        assert caught.value.status == 502
        assert "not JSON: <html>502 Bad Gateway</html>" in str(caught.value)
    finally:
        server.shutdown()
