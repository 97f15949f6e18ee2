"""Hub scripts in the cluster: a `hub/...` path resolves from the labelled scripts of the catalog
namespace the chart's hub.namespace names (its own Role there reads ConfigMaps), then from the
catalog shipped with millrace; a step pod calls an HTTP server this test starts on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .conftest import Operator, fresh_namespace, installed_operator
from .test_operator import flow_manifest, labelled, run_manifest, wait_phase

pytestmark = pytest.mark.cluster

GREET = "hub/777/demo/greet"


@pytest.fixture
def catalog(kube: Any) -> Iterator[str]:
    with fresh_namespace(kube, "hub-catalog") as name:
        yield name


@pytest.fixture
def operator(kube: Any, helm: Any, namespace: str, catalog: str, tmp_path: Path) -> Iterator[Operator]:
    with installed_operator(kube, helm, namespace, tmp_path, {"hub": {"namespace": catalog}}) as op:
        op.stop()  # again with the setting the chart's hub.namespace gives it
        op.start(MILLRACE_HUB_NAMESPACE=catalog)
        yield op


@pytest.fixture
def server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"users": [{"name": "ada"}, {"name": "linus"}], "path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def hub_step(step_id: str, path: str, **inputs: Any) -> dict[str, Any]:
    transforms = {name: {"type": "javascript", "expr": value[3:]} if isinstance(value, str) and value.startswith("js:")
                  else {"type": "static", "value": value} for name, value in inputs.items()}
    return {"id": step_id, "value": {"type": "script", "path": path, "input_transforms": transforms}}


def test_hub_scripts_resolve_from_the_catalog_namespace_then_the_shipped_catalog(
        kube: Any, namespace: str, catalog: str, operator: Operator, server: str) -> None:
    greet = "def main(names: list):\n    return 'hello ' + ' and '.join(names)\n"
    kube.apply(labelled("script", GREET, {"language": "python3", "content": greet}), catalog)
    # The flow's own namespace holds no Hub scripts: this one is never read.
    kube.apply(labelled("script", GREET, {"language": "python3", "content": "def main(names):\n    return 'wrong'\n"}),
               namespace)
    modules = [hub_step("get", "hub/900001/http/request", url=f"{server}/users", query={"team": "core"}),
               hub_step("names", "hub/900002/json/transform", data="js:results.get.body",
                        mapping={"names": "users.*.name", "path": "path"}),
               hub_step("greet", GREET, names="js:results.names.names")]
    kube.apply(flow_manifest("hub", modules), namespace)
    kube.apply(run_manifest("hub-1", "hub"), namespace)
    status = wait_phase(kube, namespace, "hub-1", timeout=180)
    assert status["phase"] == "Succeeded", status
    assert status["result"] == "hello ada and linus"
