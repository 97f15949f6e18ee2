"""The operator's step policy: what a flow's `spec.runtime` may ask of its pods."""

from __future__ import annotations

import pytest

from millrace.cluster.admission import review_flow, review_flowrun
from millrace.cluster.policy import StepPolicy, policy_from_environment, runtime_problems
from millrace.expressions import Sandbox


def fields(runtime: dict, policy: StepPolicy | None = None) -> list[str]:
    return [str(p.field) for p in runtime_problems("f", runtime, policy or StepPolicy())]


def test_by_default_only_the_default_service_account_and_no_privilege() -> None:
    assert fields({}) == [] and fields({"serviceAccountName": "default"}) == []
    assert fields({"serviceAccountName": "millrace"}) == ["spec.runtime.serviceAccountName"]
    assert fields({"securityContext": {"privileged": True}}) == ["spec.runtime.securityContext.privileged"]
    assert fields({"securityContext": {"runAsUser": 0, "runAsNonRoot": False}}) == [
        "spec.runtime.securityContext.runAsNonRoot", "spec.runtime.securityContext.runAsUser"]
    assert fields({"securityContext": {"allowPrivilegeEscalation": True, "readOnlyRootFilesystem": False}}) == [
        "spec.runtime.securityContext.allowPrivilegeEscalation", "spec.runtime.securityContext.readOnlyRootFilesystem"]
    assert fields({"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}) == ["spec.runtime.securityContext.capabilities.add"]
    assert fields({"securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}) == ["spec.runtime.securityContext.capabilities.drop"]
    assert fields({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}) == [
        "spec.runtime.securityContext.seccompProfile.type"]
    assert fields({"securityContext": {"seLinuxOptions": {"level": "s0"}}}) == ["spec.runtime.securityContext.seLinuxOptions"]


def test_harmless_settings_pass() -> None:
    assert fields({"images": {"python3": "my/python:1"}, "securityContext": {"runAsUser": 1000, "runAsGroup": 1000,
                                                                           "readOnlyRootFilesystem": True}}) == []


def test_the_policy_allows_what_it_lists() -> None:
    policy = StepPolicy.model_validate({"serviceAccounts": ["default", "steps"], "images": ["registry.local/*"],
                                        "privileged": True, "root": True, "capabilities": ["NET_ADMIN"]})
    assert fields({"serviceAccountName": "steps", "images": {"bash": "registry.local/bash:5"},
                   "securityContext": {"privileged": True, "runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}}},
                  policy) == []
    assert fields({"images": {"bash": "docker.io/bash:5"}}, policy) == ["spec.runtime.images.bash"]


def test_the_message_names_flow_field_and_what_is_allowed() -> None:
    [problem] = runtime_problems("nightly", {"serviceAccountName": "millrace"}, StepPolicy())
    assert str(problem) == ("flow 'nightly', field 'spec.runtime.serviceAccountName': \"millrace\" is not allowed "
                            "by the operator policy (allowed: default)")


def test_the_webhook_refuses_flows_and_inline_flowruns_asking_for_more() -> None:
    spec = {"summary": "s", "value": {"modules": []}, "runtime": {"securityContext": {"privileged": True}}}
    with Sandbox() as sandbox:
        review = review_flow("priv", spec, sandbox)
        assert not review.allowed and "spec.runtime.securityContext.privileged" in review.errors[0]
        run = review_flowrun("priv-1", {"flow": spec}, sandbox, lambda name: None)
        assert not run.allowed and "not allowed by the operator policy" in run.errors[0]
        assert review_flow("priv", spec, sandbox, StepPolicy(privileged=True)).allowed


def test_the_policy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MILLRACE_STEP_POLICY", '{"serviceAccounts": ["a"], "root": true}')
    assert policy_from_environment() == StepPolicy(service_accounts=["a"], root=True)
    monkeypatch.setenv("MILLRACE_STEP_POLICY", '{"serviceAcounts": ["a"]}')
    with pytest.raises(SystemExit, match="not a valid step policy"):
        policy_from_environment()


def test_a_program_steps_own_image_is_checked_against_the_policy() -> None:
    step = {"id": "tool", "value": {"type": "rawscript", "language": "bash", "input_transforms": {},
                                    "content": "# sandbox docker.io/evil/miner:1\nmine\n"}}
    spec = {"summary": "s", "value": {"modules": [step]}}
    with Sandbox() as sandbox:
        review = review_flow("tools", spec, sandbox, StepPolicy(images=["registry.example.com/*"]))
        assert review.errors == ["flow 'tools', step 'tool', field 'value.content': image \"docker.io/evil/miner:1\" "
                                 "(# sandbox) is not allowed by the operator policy (allowed: registry.example.com/*)"]
        assert review_flow("tools", spec, sandbox, StepPolicy(images=["docker.io/evil/*"])).allowed
