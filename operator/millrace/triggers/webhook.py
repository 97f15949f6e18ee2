"""What a webhook request means for a flow: pure checks, no I/O.

A request is authenticated with a bearer token (the Flow names the Secret
holding it) or a signed URL, limited in size and rate, and turned into the
flow's input: the JSON body itself, or, for a flow with a
`preprocessor_module`, Windmill's trigger event (`kind`, `body`,
`raw_string`, `query`, `headers`) that the preprocessor maps to the input.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..engine.inputs import InputError, validate_inputs

DEFAULT_MAX_BODY = 1024 * 1024
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class Refused(Exception):
    """An HTTP refusal: its status and a message for the caller."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class HookRequest:
    query: Mapping[str, str]
    headers: Mapping[str, str]  # names in lower case
    body: bytes


@dataclass(frozen=True)
class HookPolicy:
    flow: str
    schema: dict[str, Any] | None
    token: str | None = None          # expected bearer token; None: only signed URLs
    signature: str | None = None      # expected `sig` query value of the signed URL
    preprocessor: bool = False
    max_body: int = DEFAULT_MAX_BODY


def signed_url_signature(sign: Callable[[str], str], namespace: str, flow: str) -> str:
    """The `sig` of a Flow's signed webhook URL: it names one Flow of one namespace."""
    return sign(f"webhook\0{namespace}\0{flow}")


def check_size(declared_length: int | None, policy: HookPolicy) -> None:
    """Before the body is read: a declared length over the limit is refused unread."""
    if declared_length is not None and declared_length > policy.max_body:
        raise Refused(413, f"the body is {declared_length} bytes; flow '{policy.flow}' accepts at most {policy.max_body}")


def authorize(request: HookRequest, policy: HookPolicy) -> None:
    given = request.headers.get("authorization", "")
    bearer = given[7:].strip() if given.lower().startswith("bearer ") else None
    if policy.token and bearer is not None and hmac.compare_digest(bearer, policy.token):
        return
    sig = request.query.get("sig")
    if policy.signature and sig is not None and hmac.compare_digest(sig, policy.signature):
        return
    raise Refused(401, f"a valid bearer token or signed URL is needed to start flow '{policy.flow}'")


def flow_input(request: HookRequest, policy: HookPolicy) -> dict[str, Any]:
    """The run's input: the trigger event for a preprocessor, else the body checked against the schema."""
    if len(request.body) > policy.max_body:
        raise Refused(413, f"the body is over {policy.max_body} bytes")
    text = request.body.decode("utf-8", errors="replace") if request.body else ""
    try:
        body: Any = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        if not policy.preprocessor:
            raise Refused(400, f"the body is not JSON: {exc.msg} at line {exc.lineno}") from None
        body = None
    if policy.preprocessor:
        # The credential that let the request in is not the preprocessor's to see (nor kept in the run).
        headers = {k: v for k, v in request.headers.items() if k not in CREDENTIAL_HEADERS}
        query = {k: v for k, v in request.query.items() if k != "sig"}
        return {"event": {"kind": "webhook", "body": body, "raw_string": text or None, "query": query, "headers": headers}}
    if not isinstance(body, dict):
        raise Refused(400, f"the body must be a JSON object of flow '{policy.flow}' inputs")
    try:
        return validate_inputs(policy.schema, body)
    except InputError as exc:
        where = f"field '{exc.field}': " if exc.field else ""
        raise Refused(400, f"flow '{policy.flow}', {where}{exc}") from None


@dataclass
class RateLimit:
    """A token bucket per key: `burst` requests at once, refilled at `per_second`."""

    per_second: float = 5.0
    burst: int = 20
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)

    def allow(self, key: str, now: float) -> bool:
        tokens, at = self.buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.per_second)
        allowed = tokens >= 1.0
        self.buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        return allowed
