"""The step API client that the python3 wrapper and `wmill` share. Standard library only.

A step finds the API in its environment: MILLRACE_API_URL (e.g.
http://127.0.0.1:40123) and MILLRACE_TOKEN, a token scoped to its run and step.
"""

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional


UNAVAILABLE = (502, 503, 504)


class StepApiError(Exception):
    """The step API refused a call; `error` is its machine name (NotFound, Conflict, ...)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.status = status
        self.error = error


def quoted(path: str) -> str:
    """A variable or resource path as a URL path, its slashes kept."""
    return urllib.parse.quote(path, safe="/")


def _answer(data: bytes, status: int, reason: str) -> Any:
    """An error answer's JSON document; one that is not JSON (a proxy's error page) becomes a message."""
    try:
        document = json.loads(data or b"{}")
    except ValueError:
        return {"error": "HTTPError", "message": f"{status} {reason}: not JSON: {data[:200].decode('utf-8', 'replace')}"}
    return document if isinstance(document, dict) else {"error": "HTTPError", "message": f"{status} {reason}: {document!r}"}


def send(method: str, endpoint: str, data: Optional[bytes] = None) -> Any:
    """Call /v1/<endpoint> with a JSON body already encoded; the answer's JSON document."""
    url, token = os.environ.get("MILLRACE_API_URL"), os.environ.get("MILLRACE_TOKEN")
    if not url or not token:
        raise StepApiError(0, "NoStepApi", "MILLRACE_API_URL and MILLRACE_TOKEN are not set: not inside a millrace step")
    request = urllib.request.Request(f"{url}/v1/{endpoint}", data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    if os.environ.get("MILLRACE_POD"):
        # The step's own pod, whose log the step API keeps the end of with a report.
        request.add_header("X-Millrace-Pod", os.environ["MILLRACE_POD"])
    # The API may be restarting (an operator upgrade or crash): keep trying for a while
    # rather than lose the step's outcome.
    deadline = time.monotonic() + float(os.environ.get("MILLRACE_API_RETRY_S", "120"))
    pause = 0.2
    while True:
        try:
            with urllib.request.urlopen(request) as response:
                return json.load(response)
        except urllib.error.HTTPError as refusal:
            with refusal:
                document = _answer(refusal.read(), refusal.code, str(refusal.reason))
            if refusal.code not in UNAVAILABLE or time.monotonic() > deadline:
                raise StepApiError(refusal.code, document.get("error", "HTTPError"), document.get("message", str(refusal))) from None
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


def call(method: str, endpoint: str, body: Any = None) -> Any:
    """Call /v1/<endpoint> with `body` as JSON (none when None)."""
    return send(method, endpoint, None if body is None else json.dumps(body).encode("utf-8"))
