"""examples/new-items-watcher.yaml on its schedule against a feed served on 127.0.0.1 by the test."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cli_shell import EXAMPLES, Shell

pytestmark = pytest.mark.local


@pytest.fixture
def feed() -> Iterator[str]:
    """A feed that gains an item at its third request: new, nothing new, new again."""
    requests = {"n": 0}

    class Feed(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the base class's name
            requests["n"] += 1
            items = [{"id": 1, "title": "one"}, {"id": 2, "title": "two"}]
            if requests["n"] >= 3:
                items.append({"id": 3, "title": "three"})
            body = json.dumps(items).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/items.json"
    server.shutdown()


def test_each_new_item_is_handled_once_across_scheduled_runs(shell: Shell, feed: str) -> None:
    done = shell("schedule", EXAMPLES / "new-items-watcher.yaml", "--cron", "* * * * * *", "--max-runs", "3",
                 "--arg", f"feed={feed}", "--output", "json")
    assert done.code == 0, done.err
    runs = [json.loads(line) for line in done.out.splitlines() if line.strip()]
    assert [r["status"] for r in runs] == ["succeeded", "skipped", "succeeded"]
    assert runs[0]["result"] == ["new: one", "new: two"]
    assert runs[1]["result"] == []
    assert runs[2]["result"] == ["new: three"]
