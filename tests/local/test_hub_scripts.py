"""The Hub scripts shipped with millrace (operator/millrace/hub), run by `millrace run` against an
HTTP server each test starts on 127.0.0.1: no request leaves the machine."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cli_shell import Shell

pytestmark = pytest.mark.local

REQUEST, TRANSFORM = "hub/900001/http/request", "hub/900002/json/transform"
WEBHOOK, SLACK = "hub/900003/webhook/post", "hub/900004/slack/send_to_incoming_webhook"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """Answers every request with `status`, `body` and `content_type`; keeps what it received."""

    url: str = ""
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    received: list[Received] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.received.append(Received(self.command, self.path, dict(self.headers.items()), self.rfile.read(length)))
            self.send_response(state.status)
            self.send_header("Content-Type", state.content_type)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def hub_step(step_id: str, path: str, **inputs: Any) -> dict[str, Any]:
    transforms = {name: ({"type": "javascript", "expr": value[3:]} if isinstance(value, str) and value.startswith("js:")
                         else {"type": "static", "value": value}) for name, value in inputs.items()}
    return {"id": step_id, "value": {"type": "script", "path": path, "input_transforms": transforms}}


def run(shell: Shell, *steps: dict[str, Any], args: dict[str, Any] | None = None, scripts: Path | None = None) -> dict[str, Any]:
    flow = shell.flow("hub", json.dumps({"summary": "hub", "value": {"modules": list(steps)}, "schema": {}}))
    extra = []
    if args:
        inputs = shell.flow("hub-args", json.dumps(args))
        extra = ["--args-file", str(inputs)]
    return shell.run(flow, *extra, *(["--scripts", str(scripts)] if scripts else []))


def test_http_request_then_json_transform(shell: Shell, server: Server) -> None:
    server.body = json.dumps({"items": [{"id": 7, "name": "a"}, {"id": 9, "name": "b"}], "total": 2}).encode()
    outcome = run(shell,
                  hub_step("get", REQUEST, url=f"{server.url}/items", query={"page": 2, "tag": ["x", "y"]},
                           headers={"Authorization": "Bearer t0ken"}),
                  hub_step("pick", TRANSFORM, data="js:results.get.body",
                           mapping={"ids": "items.*.id", "first": "items.0.name", "total": "total", "gone": "nope.x"}))
    assert outcome["phase"] == "Succeeded", outcome
    assert outcome["result"] == {"ids": [7, 9], "first": "a", "total": 2, "gone": None}
    [got] = server.received
    assert (got.method, got.path, got.headers["Authorization"]) == ("GET", "/items?page=2&tag=x&tag=y", "Bearer t0ken")


def test_http_request_sends_json_and_reports_error_statuses(shell: Shell, server: Server) -> None:
    server.status, server.body, server.content_type = 404, b"no such thing", "text/plain"
    failed = run(shell, hub_step("post", REQUEST, url=f"{server.url}/things", method="post", body={"n": 1}))
    assert failed["phase"] == "Failed"
    assert f"POST {server.url}/things answered 404: no such thing" in failed["error"]["message"]
    assert (server.received[0].body, server.received[0].headers["Content-Type"]) == (b'{"n": 1}', "application/json")
    kept = run(shell, hub_step("post", REQUEST, url=f"{server.url}/things", method="PUT", body="plain",
                               fail_on_error_status=False))
    assert kept["phase"] == "Succeeded", kept
    assert (kept["result"]["status"], kept["result"]["body"]) == (404, "no such thing")
    assert (server.received[1].method, server.received[1].body) == ("PUT", b"plain")


def test_json_transform_strict_names_the_path_that_finds_nothing(shell: Shell) -> None:
    outcome = run(shell, hub_step("pick", TRANSFORM, data={"a": [1]}, mapping={"x": "a.5"}, strict=True))
    assert outcome["phase"] == "Failed"
    assert "path 'a.5' (for 'x') finds nothing in the data" in outcome["error"]["message"]


def test_webhook_post_signs_the_body_it_sends(shell: Shell, server: Server) -> None:
    server.body, server.content_type = b"accepted", "text/plain"
    outcome = run(shell, hub_step("hook", WEBHOOK, url=f"{server.url}/hook", payload="js:flow_input",
                                  signing_secret="s3cret", headers={"X-Source": "millrace"}),
                  args={"event": "deploy", "ok": True})
    assert outcome["phase"] == "Succeeded", outcome
    assert outcome["result"] == {"status": 200, "response": "accepted"}
    [got] = server.received
    assert json.loads(got.body) == {"event": "deploy", "ok": True} and got.headers["X-Source"] == "millrace"
    expected = hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-Signature-256"] == f"sha256={expected}"
    server.status, server.body = 500, b"down"
    failed = run(shell, hub_step("hook", WEBHOOK, url=f"{server.url}/hook", payload=[1]))
    assert failed["phase"] == "Failed" and f"webhook {server.url}/hook answered 500: down" in failed["error"]["message"]
    assert "X-Signature-256" not in server.received[1].headers


def test_slack_incoming_webhook_message_and_refusal(shell: Shell, server: Server) -> None:
    server.body, server.content_type = b"ok", "text/html"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*deployed*"}}]
    outcome = run(shell, hub_step("notify", SLACK, webhook_url=f"{server.url}/services/T/B/X", text="deployed",
                                  blocks=blocks, thread_ts="1700000000.000100"))
    assert outcome["phase"] == "Succeeded", outcome
    sent = {"text": "deployed", "unfurl_links": False, "blocks": blocks, "thread_ts": "1700000000.000100"}
    assert outcome["result"] == {"ok": True, "sent": sent}
    assert json.loads(server.received[0].body) == sent
    # Slack answers a refused message with a 400 and a reason as plain text.
    server.status, server.body = 400, b"invalid_blocks"
    failed = run(shell, hub_step("notify", SLACK, webhook_url=f"{server.url}/services/T/B/X", text="x", blocks=[{}]))
    assert failed["phase"] == "Failed"
    assert "the webhook refused the message: invalid_blocks" in failed["error"]["message"]


def test_a_hub_path_resolves_in_the_scripts_folder_too_and_an_unknown_one_is_refused(shell: Shell, tmp_path: Path) -> None:
    own = tmp_path / "catalog" / "hub" / "19700" / "slack"
    own.mkdir(parents=True)
    (own / "send_message_to_channel.py").write_text("def main(text: str):\n    return f'sent {text}'\n", encoding="utf-8")
    outcome = run(shell, hub_step("s", "hub/19700/slack/send_message_to_channel", text="hi"), scripts=tmp_path / "catalog")
    assert outcome["phase"] == "Succeeded" and outcome["result"] == "sent hi", outcome
    missing = run(shell, hub_step("s", "hub/1/none/such"))
    assert missing["status"] == "invalid" and missing["errors"] == [
        {"flow": "hub", "step": "s", "field": "value.path", "message": "script 'hub/1/none/such' was not found: "
         "a Hub path resolves from the --scripts folders and the catalog shipped with millrace "
         "(in the cluster: the chart's hub.namespace, then the shipped catalog)"}]
