"""Step tokens: HMAC-SHA256 signed claims naming one attempt of one step of one run.

The server derives everything a call may touch from the claims, never from
the URL, so a token reaches only its own run and step. A token may carry an
expiry (`expires_at`, seconds since the epoch): past it, it is refused
whatever the backend would say. Whether its attempt still runs is the
backend's to check, on every call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Literal

from pydantic import ValidationError

from ..protocol import StepScope


class TokenError(Exception):
    """A token that was not issued by this signer, or was altered."""


class TokenExpired(TokenError):
    """A genuine token past its expiry."""


class Claims(StepScope):
    """What a token grants. `use` keeps a resume link from acting as a step token and back."""

    use: Literal["step", "resume", "cancel"] = "step"
    approver: str | None = None
    # The run's uid: a run deleted and made again under the same name is another run.
    run_uid: str | None = None
    expires_at: float | None = None
    # A resume or cancel link's own id: however often it is used, it counts once.
    link: str | None = None


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Issues and checks tokens with one secret, made fresh for each shell unless given."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def _mac(self, payload: str) -> str:
        return _encode(hmac.new(self._secret, payload.encode("utf-8"), hashlib.sha256).digest())

    def sign(self, text: str) -> str:
        """A MAC of `text` with the shell's secret (signed webhook URLs)."""
        return self._mac(text)

    def issue(self, claims: Claims) -> str:
        payload = _encode(claims.model_dump_json().encode("utf-8"))
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str, now: float | None = None) -> Claims:
        payload, dot, mac = token.partition(".")
        if not dot or not hmac.compare_digest(mac, self._mac(payload)):
            raise TokenError("the token is not signed by this step API")
        try:
            claims = Claims.model_validate_json(_decode(payload))
        except (ValueError, ValidationError) as problem:
            raise TokenError(f"the token's claims are unreadable: {problem}") from None
        if claims.expires_at is not None and (time.time() if now is None else now) >= claims.expires_at:
            raise TokenExpired(f"the {claims.use} token for {claims.key} of run {claims.run} has expired")
        return claims
