"""Webhook requests: who may start a flow, how large and how often, and what the run's input is."""

from __future__ import annotations

import json
from typing import Any

import pytest

from millrace.runtime.stepapi.tokens import Signer
from millrace.triggers.server import HookTarget, TriggerServer
from millrace.triggers.webhook import (HookPolicy, HookRequest, RateLimit, Refused, authorize, check_size,
                                       flow_input, signed_url_signature)

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer", "default": 1}},
          "required": ["name"]}
POLICY = HookPolicy(flow="greet", schema=SCHEMA, token="s3cret", signature="abc")


def request(body: Any = None, headers: dict[str, str] | None = None, query: dict[str, str] | None = None) -> HookRequest:
    raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    return HookRequest(query=query or {}, headers=headers or {}, body=raw)


def refused(fn: Any, *args: Any) -> Refused:
    with pytest.raises(Refused) as info:
        fn(*args)
    return info.value


def test_a_bearer_token_or_the_signed_url_authorizes() -> None:
    authorize(request(headers={"authorization": "Bearer s3cret"}), POLICY)
    authorize(request(query={"sig": "abc"}), POLICY)
    for bad in (request(), request(headers={"authorization": "Bearer nope"}), request(query={"sig": "abd"})):
        assert refused(authorize, bad, POLICY).status == 401


def test_signed_urls_name_one_flow_of_one_namespace() -> None:
    sign = Signer(b"k" * 32).sign
    one = signed_url_signature(sign, "flows", "greet")
    assert one == signed_url_signature(sign, "flows", "greet")
    assert one != signed_url_signature(sign, "flows", "greet2") != signed_url_signature(sign, "other", "greet")
    assert one != signed_url_signature(Signer(b"j" * 32).sign, "flows", "greet")


def test_the_body_is_the_input_checked_against_the_schema_with_defaults() -> None:
    assert flow_input(request({"name": "Ada"}), POLICY) == {"name": "Ada", "n": 1}
    missing = refused(flow_input, request({"nme": "Ada"}), POLICY)
    assert missing.status == 400 and "field 'name'" in str(missing) and "flow 'greet'" in str(missing)
    assert refused(flow_input, request(b"{not json"), POLICY).status == 400
    assert refused(flow_input, request([1, 2]), POLICY).status == 400


def test_with_a_preprocessor_the_input_is_windmills_trigger_event() -> None:
    policy = HookPolicy(flow="greet", schema=SCHEMA, token="t", preprocessor=True)
    got = flow_input(request(b"plain text", headers={"x-a": "1"}, query={"q": "2"}), policy)
    assert got == {"event": {"kind": "webhook", "body": None, "raw_string": "plain text",
                             "query": {"q": "2"}, "headers": {"x-a": "1"}}}
    assert flow_input(request({"a": 1}), policy)["event"]["body"] == {"a": 1}


def test_bodies_over_the_limit_are_refused_before_they_are_read() -> None:
    small = HookPolicy(flow="greet", schema=None, token="t", max_body=10)
    assert refused(check_size, 11, small).status == 413
    check_size(10, small)
    assert refused(flow_input, request(b"x" * 11), small).status == 413


def test_the_rate_limit_is_a_bucket_per_flow() -> None:
    limit = RateLimit(per_second=1.0, burst=2)
    assert [limit.allow("a", 0.0) for _ in range(3)] == [True, True, False]
    assert limit.allow("b", 0.0)
    assert not limit.allow("a", 0.5) and limit.allow("a", 1.6)


def test_the_server_routes_and_refuses_in_order() -> None:
    started: list[dict[str, Any]] = []
    hook = HookTarget(policy=POLICY, start=lambda args: started.append(args) or f"run-{len(started)}",
                      wait=lambda run: {"run": run, "status": "succeeded"})
    server = TriggerServer(lambda flow: hook if flow == "greet" else None, limit=RateLimit(per_second=0.0, burst=3))
    auth = {"authorization": "Bearer s3cret"}

    def call(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, Any]:
        h = {**(headers or {}), "content-length": str(len(body))}
        try:
            return server.handle(method, path, h, lambda n: body[:n])
        except Refused as exc:
            return exc.status, str(exc)

    assert call("POST", "/hooks/greet", b'{"name": "Ada"}', auth) == (202, {"run": "run-1"})
    assert call("POST", "/hooks/greet/wait", b'{"name": "Bo"}', auth) == (200, {"run": "run-2", "status": "succeeded"})
    assert call("POST", "/hooks/nope", b"{}", auth)[0] == 404
    assert call("GET", "/hooks/greet")[0] == 405
    assert call("POST", "/hooks/greet", b'{"name": "C"}')[0] == 401
    assert call("POST", "/hooks/greet", b'{"name": "C"}', auth)[0] == 429
    assert started == [{"name": "Ada", "n": 1}, {"name": "Bo", "n": 1}]
    server.close()


def test_the_credential_is_not_part_of_the_event() -> None:
    policy = HookPolicy(flow="greet", schema=None, token="t", signature="s", preprocessor=True)
    got = flow_input(request({}, headers={"authorization": "Bearer t", "cookie": "c", "x-b": "2"},
                             query={"sig": "s", "page": "3"}), policy)
    assert got["event"]["headers"] == {"x-b": "2"} and got["event"]["query"] == {"page": "3"}
