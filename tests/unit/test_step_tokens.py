"""Step API tokens: signed claims that reach one attempt of one step of one run."""

from __future__ import annotations

import pytest

from millrace.runtime.stepapi.tokens import Claims, Signer, TokenError, TokenExpired, _decode, _encode

CLAIMS = Claims(run="run-1", flow="f", path="loop/2/a", step_id="a", attempt=1)


def test_a_token_carries_its_claims():
    signer = Signer()
    assert signer.verify(signer.issue(CLAIMS)) == CLAIMS


def test_a_token_of_another_shell_is_refused():
    with pytest.raises(TokenError, match="not signed"):
        Signer().verify(Signer().issue(CLAIMS))


def test_a_token_rewritten_for_another_run_is_refused():
    signer = Signer()
    payload, mac = signer.issue(CLAIMS).split(".")
    forged = _encode(_decode(payload).replace(b"run-1", b"run-2"))
    with pytest.raises(TokenError):
        signer.verify(f"{forged}.{mac}")


def test_a_token_for_another_step_names_that_step_only():
    signer = Signer()
    other = signer.verify(signer.issue(CLAIMS.model_copy(update={"path": "b", "step_id": "b"})))
    assert (other.path, other.key) == ("b", "b/1") and other != CLAIMS


@pytest.mark.parametrize("token", ["", "garbage", "a.b", ".", "é.x"])
def test_malformed_tokens_are_refused(token: str):
    with pytest.raises(TokenError):
        Signer().verify(token)


def test_a_token_past_its_expiry_is_refused_whatever_it_claims():
    signer = Signer()
    token = signer.issue(CLAIMS.model_copy(update={"expires_at": 1000.0, "run_uid": "uid-1"}))
    assert signer.verify(token, now=999.0).run_uid == "uid-1"
    with pytest.raises(TokenExpired, match="expired"):
        signer.verify(token, now=1000.0)


def test_a_link_carries_its_own_id_and_use():
    signer = Signer()
    link = CLAIMS.model_copy(update={"use": "resume", "link": "abc", "approver": "ann"})
    assert signer.verify(signer.issue(link)) == link
