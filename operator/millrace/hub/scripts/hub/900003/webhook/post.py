"""POST a JSON payload to a webhook, optionally signed with HMAC-SHA256; fail on a non-2xx answer."""

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from typing import Any, Optional


def main(url: str, payload: Any, headers: Optional[dict] = None, signing_secret: str = "",
         signature_header: str = "X-Signature-256", timeout_seconds: float = 30.0) -> dict:
    """With a `signing_secret`, `signature_header` carries `sha256=<hex HMAC of the body>`, the
    receiver's proof that the payload came from the secret's holder and was not changed."""
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    sent_headers = {"Content-Type": "application/json", **{str(k): str(v) for k, v in (headers or {}).items()}}
    if signing_secret:
        digest = hmac.new(signing_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        sent_headers[signature_header] = f"sha256={digest}"
    request = urllib.request.Request(url, data=body, headers=sent_headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
            status, text = response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"webhook {url} answered {error.code}: "
                           f"{error.read().decode('utf-8', errors='replace')[:500]}") from None
    return {"status": status, "response": text}
