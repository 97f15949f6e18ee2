"""`millrace serve`: a flow's webhook on 127.0.0.1, called as a sender would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.local

HELLO = """\
    - id: hello
      value:
        type: rawscript
        language: python3
        content: |
          def main(name: str):
              return f"hello {name}"
        input_transforms:
          name: {type: javascript, expr: flow_input.name}
"""
FLOW = """\
summary: greet
schema: {type: object, properties: {name: {type: string}}, required: [name]}
value:
  modules:
""" + HELLO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    flow = tmp_path / "greet.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    port = free_port()
    env = {**os.environ, "MILLRACE_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "millrace.cli.main", "serve", str(flow), "--port", str(port),
                             "--token", "tok", "--max-body", "1000", "--burst", "4", "--rate", "0.01"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        assert f"POST http://127.0.0.1:{port}/hooks/greet" in banner, banner
        yield f"http://127.0.0.1:{port}/hooks/greet"
    finally:
        proc.terminate()
        proc.wait(10)


def post(url: str, body: bytes, token: str | None = "tok") -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_post_runs_the_flow_and_each_bad_request_is_refused_clearly(served: str) -> None:
    status, outcome = post(f"{served}/wait", b'{"name": "Ada"}')
    assert status == 200 and outcome["status"] == "succeeded" and outcome["result"] == "hello Ada"
    status, refusal = post(served, b'{"name": "Ada"}', token="wrong")
    assert status == 401 and refusal["error"] == "Unauthorized"
    status, refusal = post(served, b'{"nam": "Ada"}')
    assert status == 400 and "field 'name'" in refusal["message"]
    status, refusal = post(served, b'{"name": "' + b"x" * 2000 + b'"}')
    assert status == 413
    # Four requests spent the burst of 4, whatever their answer (the limit is checked first): the fifth waits.
    assert post(served, b'{"name": "Bo"}')[0] == 429


PREPROCESSED = """\
summary: greet from a webhook
schema: {type: object, properties: {name: {type: string}}, required: [name]}
value:
  preprocessor_module:
    id: preprocessor
    value:
      type: rawscript
      language: LANGUAGE
      content: |
BODY
      input_transforms:
        event: {type: static}
  modules:
""" + HELLO
PREPROCESSORS = {
    "python3": "def preprocessor(event):\n    return {'name': event['body']['user'] + ' via ' + event['query']['via']}",
    "bun": "export async function preprocessor(event: any) {\n  return { name: `${event.body.user} via ${event.query.via}` };\n}",
}


@pytest.mark.parametrize("language", sorted(PREPROCESSORS))
def test_the_preprocessor_turns_the_event_into_the_input(tmp_path: Path, language: str) -> None:
    body = "\n".join(f"        {line}" for line in PREPROCESSORS[language].splitlines())
    flow = tmp_path / "greet.yaml"
    flow.write_text(PREPROCESSED.replace("LANGUAGE", language).replace("BODY", body), encoding="utf-8")
    port = free_port()
    env = {**os.environ, "MILLRACE_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "millrace.cli.main", "serve", str(flow), "--port", str(port),
                             "--token", "tok"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None and "POST" in proc.stderr.readline()
        status, outcome = post(f"http://127.0.0.1:{port}/hooks/greet/wait?via=hook", b'{"user": "Ada"}')
        assert status == 200, outcome
        assert outcome["status"] == "succeeded" and outcome["result"] == "hello Ada via hook", outcome
    finally:
        proc.terminate()
        proc.wait(10)
