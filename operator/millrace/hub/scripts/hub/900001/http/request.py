"""Send an HTTP request; return its status, headers and body (parsed when the response is JSON)."""

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional


def main(url: str, method: str = "GET", headers: Optional[dict] = None, query: Optional[dict] = None,
         body: Any = None, timeout_seconds: float = 30.0, fail_on_error_status: bool = True) -> dict:
    """`body`: a string is sent as it is, any other value as JSON (Content-Type application/json
    unless `headers` names one). A status of 400 or more fails the step unless `fail_on_error_status` is false."""
    sent_headers = {str(k): str(v) for k, v in (headers or {}).items()}
    if query:
        url += ("&" if urllib.parse.urlsplit(url).query else "?") + urllib.parse.urlencode(query, doseq=True)
    data = None
    if body is not None:
        if isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = json.dumps(body).encode("utf-8")
            if not any(k.lower() == "content-type" for k in sent_headers):
                sent_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=sent_headers, method=method.upper())
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
            status, response_headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, response_headers, raw = error.code, error.headers, error.read()
    text = raw.decode(response_headers.get_content_charset() or "utf-8", errors="replace")
    if status >= 400 and fail_on_error_status:
        raise RuntimeError(f"{method.upper()} {url} answered {status}: {text[:500]}")
    parsed: Any = text
    if response_headers.get_content_type().endswith("json") and text:
        parsed = json.loads(text)
    return {"status": status, "headers": dict(response_headers.items()), "body": parsed}
