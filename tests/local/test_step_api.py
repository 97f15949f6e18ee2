"""The step API over real HTTP on 127.0.0.1: reports, refusals, the data calls."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from millrace.local.datastore import DataStore
from millrace.runtime.stepapi.models import Variable
from millrace.local.stepapi import LocalStepApi
from millrace.runtime.protocol import StepScope
from millrace.runtime.stepapi.tokens import Claims, Signer

pytestmark = pytest.mark.local
attempts = count(1)


@pytest.fixture
def small_api(tmp_path: Path) -> Iterator[LocalStepApi]:
    with LocalStepApi(DataStore(tmp_path / "home"), max_body=1024) as api:
        yield api


def attempt(api: LocalStepApi, tmp_path: Path, run: str = "run-1") -> tuple[dict[str, str], Path]:
    scope = StepScope(run=run, flow="flow", path="a", step_id="a", attempt=next(attempts))
    result_file = tmp_path / f"{scope.attempt}.json"
    return api.register_attempt(scope, result_file), result_file


def http(env: dict[str, str], method: str, endpoint: str, body: Any = None, token: str | None = None,
         data: bytes | None = None) -> tuple[int, Any]:
    data = data if data is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{env['MILLRACE_API_URL']}/v1/{endpoint}", data=data, method=method)
    if token is not None or "MILLRACE_TOKEN" in env:
        request.add_header("Authorization", f"Bearer {token if token is not None else env['MILLRACE_TOKEN']}")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as refusal:
        with refusal:
            return refusal.code, json.load(refusal)


def test_a_report_lands_in_the_attempts_result_file_once(small_api: LocalStepApi, tmp_path: Path):
    env, result_file = attempt(small_api, tmp_path)
    assert http(env, "POST", "report", {"ok": True, "result": 7}) == (200, {"ok": True})
    assert json.loads(result_file.read_text())["result"] == 7
    status, error = http(env, "POST", "report", {"ok": True, "result": 8})
    assert status == 409 and error["error"] == "Conflict" and "already" in error["message"]
    assert json.loads(result_file.read_text())["result"] == 7


def test_oversized_bodies_are_refused_with_the_limit(small_api: LocalStepApi, tmp_path: Path):
    env, result_file = attempt(small_api, tmp_path)
    status, error = http(env, "POST", "report", {"ok": True, "result": "x" * 2000})
    assert status == 413 and error["detail"]["limit"] == 1024 and "1024 bytes" in error["message"]
    assert not result_file.exists()


def test_tokens_that_are_missing_foreign_or_ended_are_refused(small_api: LocalStepApi, tmp_path: Path):
    env, _ = attempt(small_api, tmp_path)
    status, error = http({"MILLRACE_API_URL": env["MILLRACE_API_URL"]}, "GET", "state")
    assert status == 401 and "Bearer" in error["message"]
    foreign = Signer().issue(Claims(run="run-1", flow="flow", path="a", step_id="a", attempt=1))
    assert http(env, "GET", "state", token=foreign)[0] == 403
    scope = StepScope(run="run-9", flow="flow", path="a", step_id="a", attempt=1)
    ended = small_api.register_attempt(scope, tmp_path / "ended.json")
    small_api.release_attempt(scope)
    status, error = http(ended, "POST", "report", {"ok": True})
    assert status == 403 and "not running" in error["message"]


def test_bad_requests_say_what_is_wrong(small_api: LocalStepApi, tmp_path: Path):
    env, _ = attempt(small_api, tmp_path)
    assert http(env, "GET", "nowhere")[0] == 404
    assert http(env, "GET", "report")[0] == 400
    status, error = http(env, "POST", "report", data=b"{not json")
    assert status == 400 and "StepReport" in error["message"]
    status, error = http(env, "GET", "variables/u/nobody/x")
    assert status == 404 and "u/nobody/x" in error["message"]
    assert http(env, "PUT", "variables/../x", {"value": "v"})[0] in (400, 404)


def test_data_calls_are_scoped_to_the_tokens_run_and_step(small_api: LocalStepApi, tmp_path: Path):
    env, _ = attempt(small_api, tmp_path)
    other_run, _ = attempt(small_api, tmp_path, run="run-2")
    assert http(env, "PUT", "flow_user_state/k", {"value": [1]})[0] == 200
    assert http(env, "GET", "flow_user_state/k")[1] == {"value": [1]}
    assert http(other_run, "GET", "flow_user_state/k")[1] == {"value": None}
    assert http(env, "PUT", "state", {"value": {"n": 1}})[0] == 200
    assert http(other_run, "GET", "state")[1] == {"value": {"n": 1}}  # same flow and step: state outlives runs
    assert http(env, "PUT", "variables/u/a/v", {"value": "s", "is_secret": True})[0] == 200
    assert small_api.backend.store.get_variable("u/a/v") == Variable(value="s", is_secret=True)
    assert http(env, "PUT", "resources/f/r", {"value": {"a": 1}, "resource_type": "t"})[0] == 200
    assert http(other_run, "GET", "resources/f/r")[1] == {"value": {"a": 1}}


def test_resume_links_are_signed_for_their_use_only(small_api: LocalStepApi, tmp_path: Path):
    env, _ = attempt(small_api, tmp_path)
    status, urls = http(env, "GET", "resume_urls?approver=ann")
    assert status == 200 and set(urls) == {"approvalPage", "resume", "cancel"}
    resume_token = urls["resume"].rsplit("/", 1)[1]
    assert http(env, "GET", "state", token=resume_token)[0] == 403  # a link is not a step token
    with urllib.request.urlopen(urls["approvalPage"]) as page:
        assert json.load(page)["approver"] == "ann"
    status, error = http({"MILLRACE_API_URL": env["MILLRACE_API_URL"]}, "POST", f"resume/{resume_token}", {})
    assert status == 409 and "millrace resume run-1" in error["message"]
