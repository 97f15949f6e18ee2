"""Trust in the cluster, identity part: no run takes another's objects, a step writes only
what millrace made for steps, and tokens and links are worth something only while what
they were issued for lasts."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from millrace.cluster.names import job_name, report_name, step_secret_name

from .conftest import Operator, millrace_cli
from .test_operator import flow_manifest, operator, python_step, run_manifest, wait_phase

pytestmark = pytest.mark.cluster
__all__ = ["operator"]  # the fixture, imported for the tests below


def call(url: str, method: str = "GET", body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refusal:
        with refusal:
            return refusal.code, json.load(refusal)


def test_runs_whose_names_and_steps_spell_alike_each_run_their_own_step(kube: Any, namespace: str,
                                                                        operator: Operator) -> None:
    kube.apply(flow_manifest("first", [python_step("report-send", "def main():\n    return 'from daily'\n")]), namespace)
    kube.apply(flow_manifest("second", [python_step("send", "def main():\n    return 'its own'\n")]), namespace)
    kube.apply(run_manifest("daily", "first"), namespace)
    assert wait_phase(kube, namespace, "daily")["result"] == "from daily"
    kube.apply(run_manifest("daily-report", "second"), namespace)
    status = wait_phase(kube, namespace, "daily-report")
    assert status["phase"] == "Succeeded" and status["result"] == "its own", status
    assert job_name("daily", "report-send", 1) != job_name("daily-report", "send", 1)
    assert kube.get("job", job_name("daily-report", "send", 1), namespace) is not None


def test_an_object_squatting_on_an_attempts_name_is_never_adopted(kube: Any, namespace: str, operator: Operator) -> None:
    kube.apply(flow_manifest("plain", [python_step("a", "def main():\n    return 'ran'\n")]), namespace)
    squat = step_secret_name("squat-1", "a", 1)
    kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": squat}, "stringData": {"x": "y"}}, namespace)
    kube.apply(run_manifest("squat-1", "plain"), namespace)
    status = wait_phase(kube, namespace, "squat-1")
    assert status["phase"] == "Failed" and status["error"]["name"] == "ForeignObject", status
    assert f"Secret {namespace}/{squat}" in status["error"]["message"]
    assert kube.get("secret", squat, namespace)["data"] == {"x": "eQ=="}  # left alone
    assert kube.get("job", job_name("squat-1", "a", 1), namespace) is None


def test_a_report_the_run_does_not_own_is_not_taken_for_its_steps_outcome(kube: Any, namespace: str,
                                                                          operator: Operator) -> None:
    kube.apply(flow_manifest("slow", [python_step("a", "import time\n\ndef main():\n    time.sleep(1)\n    return 'real'\n")]),
               namespace)
    forged = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": report_name("forged-1", "a", 1),
                           "labels": {"millrace.dev/run": "forged-1", "millrace.dev/kind": "report"}},
              "data": {"report": json.dumps({"ok": True, "result": "forged"})}}
    kube.apply(forged, namespace)
    kube.apply(run_manifest("forged-1", "slow"), namespace)
    status = wait_phase(kube, namespace, "forged-1")
    assert status["phase"] == "Failed" and status["error"]["name"] == "ForeignObject", status
    assert status["steps"]["a"].get("result") != "forged"


WRITER = '''
import wmill
from millrace_step_api import StepApiError

def main():
    answers = {}
    wmill.set_variable("millrace-signing-key", "attacker-chosen", is_secret=True)
    wmill.set_variable("f/app/greeting", "changed")
    try:
        wmill.set_variable("f/app/greeting", "a secret", is_secret=True)
        answers["secret-into-configmap"] = "written"
    except StepApiError as refusal:
        answers["secret-into-configmap"] = refusal.status
    wmill.set_variable("f/a-b", "dash")
    wmill.set_variable("f/a/b", "slash")
    # A secret read back is masked in the result, so the step says whether it saw its own value.
    return {**answers, "own": wmill.get_variable("millrace-signing-key") == "attacker-chosen",
            "dash": wmill.get_variable("f/a-b"), "slash": wmill.get_variable("f/a/b")}
'''


def test_a_step_cannot_replace_the_signing_key_or_anything_it_was_not_given(kube: Any, namespace: str,
                                                                           operator: Operator) -> None:
    key = kube.get("secret", "millrace-signing-key", namespace)
    assert key is not None
    greeting = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "greeting", "labels": {"millrace.dev/kind": "variable"},
                             "annotations": {"millrace.dev/path": "f/app/greeting"}},
                "data": {"value": "hello"}}
    kube.apply(greeting, namespace)
    kube.apply(flow_manifest("writer", [python_step("write", WRITER)]), namespace)
    kube.apply(run_manifest("writer-1", "writer"), namespace)
    status = wait_phase(kube, namespace, "writer-1")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == {"secret-into-configmap": 409, "own": True, "dash": "dash", "slash": "slash"}
    after = kube.get("secret", "millrace-signing-key", namespace)
    assert after["data"] == key["data"] and after["metadata"].get("labels") == key["metadata"].get("labels")
    # The step's variable is an object of its own, labelled; the given one was updated in place.
    made = [s for s in kube.list("secrets", namespace, "millrace.dev/kind=variable")
            if s["metadata"]["annotations"]["millrace.dev/path"] == "millrace-signing-key"]
    assert len(made) == 1 and made[0]["metadata"]["name"] != "millrace-signing-key"
    assert kube.get("configmap", "greeting", namespace)["data"]["value"] == "changed"


def test_a_step_token_is_void_once_its_attempt_ended_and_once_its_run_is_gone(kube: Any, namespace: str,
                                                                             operator: Operator) -> None:
    leak = python_step("leak", "import os\n\ndef main():\n    return os.environ['MILLRACE_TOKEN']\n")
    kube.apply(flow_manifest("leaky", [leak]), namespace)
    kube.apply(run_manifest("leaky-1", "leaky"), namespace)
    status = wait_phase(kube, namespace, "leaky-1")
    assert status["phase"] == "Succeeded", status
    token, api = status["result"], f"http://127.0.0.1:{operator.port}/v1"
    code, error = call(f"{api}/state", token=token)
    assert code == 403 and "not running" in error["message"], error
    assert call(f"{api}/variables/f/x", "PUT", {"value": "v"}, token=token)[0] == 403
    kube.kubectl("delete", "flowrun", "leaky-1", "-n", namespace)
    code, error = call(f"{api}/state", token=token)
    assert code == 403 and "does not exist" in error["message"], error


def test_resume_links_approve_by_post_once_for_their_suspension_and_are_gone_after(kube: Any, namespace: str,
                                                                                  operator: Operator) -> None:
    ask = python_step("ask", "import wmill\n\ndef main():\n    return wmill.get_resume_urls(approver='carol')\n")
    ask["suspend"] = {"required_events": 2, "timeout": 600}
    after = python_step("after", "def main(rs, who):\n    return {'rs': rs, 'who': who}\n", rs="resumes", who="approvers")
    kube.apply(flow_manifest("twice", [ask, after]), namespace)
    kube.apply(run_manifest("twice-1", "twice"), namespace)
    links = wait_phase(kube, namespace, "twice-1", phases=("Suspended",))["steps"]["ask"]["result"]
    code, shown = call(links["resume"])  # what a mail scanner's preview fetches
    assert code == 200 and (shown["step"], shown["attempt"], shown["action"]) == ("ask", 1, "resume"), shown
    assert call(links["resume"], "POST", {"payload": "first"}) == (200, {"ok": True})
    assert call(links["resume"], "POST", {"payload": "again"}) == (200, {"ok": True})
    kube.wait_for(lambda: len((kube.get("flowrun", "twice-1", namespace)["status"]["steps"]["ask"].get("resumes") or [])) == 1,
                  what="the link's approval counted")
    done = millrace_cli(kube, "resume", "twice-1", "-n", namespace, "--payload", '"second"', "--approver", "dan")
    assert done.returncode == 0, done.stderr
    status = wait_phase(kube, namespace, "twice-1")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == {"rs": ["first", "second"], "who": ["carol", "dan"]}
    for url, method in ((links["resume"], "POST"), (links["cancel"], "POST"), (links["approvalPage"], "GET")):
        code, error = call(url, method, {} if method == "POST" else None)
        assert code == 410 and error["error"] == "Gone" and "finished" in error["message"], (url, code, error)


# The step approves its own coming suspension through its link before it reports.
SELF_APPROVING = ("import json, urllib.request\nimport wmill\n\ndef main():\n"
                  "    url = wmill.get_resume_urls(approver='ann')['resume']\n"
                  "    body = json.dumps({'payload': {'ok': True}}).encode()\n"
                  "    urllib.request.urlopen(urllib.request.Request(url, data=body, method='POST')).read()\n"
                  "    return 'asked'\n")


def test_an_approval_sent_before_the_suspend_lets_the_run_go_on_as_locally(kube: Any, namespace: str,
                                                                          operator: Operator) -> None:
    ask = python_step("ask", SELF_APPROVING)
    ask["suspend"] = {"required_events": 1, "timeout": 600}
    after = python_step("after", "def main(r, who):\n    return {'r': r, 'who': who}\n", r="resume", who="approvers")
    kube.apply(flow_manifest("early", [ask, after]), namespace)
    kube.apply(run_manifest("early-1", "early"), namespace)
    status = wait_phase(kube, namespace, "early-1")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == {"r": {"ok": True}, "who": ["ann"]}
