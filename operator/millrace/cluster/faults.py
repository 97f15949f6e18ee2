"""Which API answers will not change by asking again.

A refusal that stays (a quota, an object too large or invalid) fails the
step or run it concerns, with the API's own message; anything else (5xx,
timeouts, a dropped connection, a 429) is retried with backoff by the
worker pool. This is kopf's split between permanent and temporary errors,
decided by the answer rather than by the handler.
"""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from ..runtime.protocol import StepError


def _message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return str(exc.body or exc.reason or exc.status)
    return str(body.get("message") if isinstance(body, dict) else body)


def refusal(exc: BaseException, what: str) -> StepError | None:
    """The error to fail with when the API refused `what` for good; None when trying again may help."""
    if not isinstance(exc, ApiException):
        return None
    message = _message(exc)
    if exc.status == 403 and "quota" in message.lower():
        name = "QuotaExceeded"
    elif exc.status == 413 or "request is too large" in message or "Too long" in message:
        name = "ObjectTooLarge"
    elif exc.status == 422:
        name = "InvalidObject"
    elif exc.status == 400:
        name = "Refused"
    else:
        return None
    return StepError(name=name, message=f"the Kubernetes API refused {what} ({exc.status}): {message}")
