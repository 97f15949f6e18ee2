"""The step API client that the python3 wrapper and `wmill` share. Standard library only.

A step finds the API in its environment: MILLRACE_API_URL (e.g.
http://127.0.0.1:40123) and MILLRACE_TOKEN, a token scoped to its run and step.
"""

import http.client
import json
import os
import time
import urllib.parse
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
    api = urllib.parse.urlsplit(url)
    # http.client, not urllib: no proxy a step's environment names sees the token (the API is the
    # operator's own), and no opener to build in every step process.
    connection = http.client.HTTPSConnection if api.scheme == "https" else http.client.HTTPConnection
    path = f"{api.path.rstrip('/')}/v1/{endpoint}"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if os.environ.get("MILLRACE_POD"):
        # The step's own pod, whose log the step API keeps the end of with a report.
        headers["X-Millrace-Pod"] = os.environ["MILLRACE_POD"]
    # The API may be restarting (an operator upgrade or crash): keep trying for a while
    # rather than lose the step's outcome.
    deadline = time.monotonic() + float(os.environ.get("MILLRACE_API_RETRY_S", "120"))
    pause = 0.2
    while True:
        client = connection(api.hostname or "", api.port)
        try:
            client.request(method, path, body=data, headers=headers)
            response = client.getresponse()
            status, reason, answer = response.status, response.reason, response.read()
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
        else:
            if 200 <= status < 300:
                return json.loads(answer)
            if status not in UNAVAILABLE or time.monotonic() > deadline:
                document = _answer(answer, status, reason)
                raise StepApiError(status, document.get("error", "HTTPError"), document.get("message", f"HTTP Error {status}: {reason}"))
        finally:
            client.close()
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


def call(method: str, endpoint: str, body: Any = None) -> Any:
    """Call /v1/<endpoint> with `body` as JSON (none when None)."""
    return send(method, endpoint, None if body is None else json.dumps(body).encode("utf-8"))
