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
from millrace.model.run import RunStatus, StepState
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
    status, error = http({"MILLRACE_API_URL": env["MILLRACE_API_URL"]}, "POST", f"resume/{resume_token}", {})
    assert status == 409 and "millrace resume run-1" in error["message"]  # no run of this process waits for it
    status, error = http({"MILLRACE_API_URL": env["MILLRACE_API_URL"]}, "GET", f"approval/{resume_token}")
    assert status == 409 and "millrace resume run-1" in error["message"]


def suspended_at(path: str, attempt: int, phase: str = "Suspended") -> RunStatus:
    step = StepState(phase="Succeeded", attempts=attempt, awaiting_since=1.0)
    return RunStatus(phase=phase, steps={path: step}, suspended_step=path if phase == "Suspended" else None)


def links_of(api: LocalStepApi, tmp_path: Path, run: str) -> tuple[StepScope, dict[str, str]]:
    env, _ = attempt(api, tmp_path, run=run)
    scope = api.server.signer.verify(env["MILLRACE_TOKEN"])
    api.backend.listen(run)
    api.backend.observe(run, RunStatus(phase="Running", steps={"a": StepState(phase="Running", attempts=scope.attempt)}))
    return scope, http(env, "GET", "resume_urls?approver=ann")[1]


def post(url: str, body: Any = None) -> tuple[int, Any]:
    base, _, endpoint = url.partition("/v1/")
    return http({"MILLRACE_API_URL": base}, "POST", endpoint, body if body is not None else {})


def test_a_resume_link_approves_by_post_only_and_counts_once(small_api: LocalStepApi, tmp_path: Path):
    scope, urls = links_of(small_api, tmp_path, "run-once")
    with urllib.request.urlopen(urls["resume"]) as page:  # what a mail scanner's preview fetches
        shown = json.load(page)
    assert (shown["step"], shown["attempt"], shown["action"], shown["approver"]) == ("a", scope.attempt, "resume", "ann")
    with urllib.request.urlopen(urls["approvalPage"]) as page:
        assert json.load(page)["resume"] == urls["resume"]
    assert post(urls["resume"], {"payload": 1}) == (200, {"ok": True})  # early: it waits for the suspension
    assert post(urls["resume"], {"payload": 2}) == (200, {"ok": True})
    assert post(urls["cancel"]) == (200, {"ok": True})  # the same link's twin: still one decision
    small_api.backend.observe("run-once", suspended_at("a", scope.attempt))
    approval = small_api.backend.take_approval("run-once", None)
    assert approval is not None and approval.request.payload == 1 and not approval.cancel
    assert small_api.backend.take_approval("run-once", None) is None


def test_a_link_of_a_finished_run_or_of_an_attempt_retried_since_is_gone(small_api: LocalStepApi, tmp_path: Path):
    scope, urls = links_of(small_api, tmp_path, "run-gone")
    small_api.backend.observe("run-gone", suspended_at("a", scope.attempt + 1))
    status, error = post(urls["resume"])
    assert status == 410 and f"attempt {scope.attempt} of step a" in error["message"]
    small_api.backend.observe("run-gone", suspended_at("a", scope.attempt, phase="Succeeded"))
    status, error = post(urls["cancel"])
    assert status == 410 and "finished" in error["message"]


def test_an_early_approval_for_a_suspension_that_never_came_is_dropped(small_api: LocalStepApi, tmp_path: Path):
    scope, urls = links_of(small_api, tmp_path, "run-retried")
    assert post(urls["resume"])[0] == 200
    small_api.backend.observe("run-retried", suspended_at("a", scope.attempt + 1))  # failed, retried, suspended again
    assert small_api.backend.take_approval("run-retried", None) is None


def test_an_expired_link_is_gone(tmp_path: Path):
    with LocalStepApi(DataStore(tmp_path / "home")) as api:
        api.server.link_lifetime_s = -1.0
        _, urls = links_of(api, tmp_path, "run-late")
        status, error = post(urls["resume"])
        assert status == 410 and "expired" in error["message"]
