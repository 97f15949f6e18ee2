"""The reconciler's phases, against a fake API that records every call:
read without side effects, plan, write the status, then act."""

from __future__ import annotations

import base64
import copy
import types
import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from millrace.cluster import names
from millrace.cluster.faults import refusal
from millrace.cluster.kube import Conflict
from millrace.cluster.jobs import runtime_name
from millrace.cluster.reconcile import ANNOTATION_REFUSED, JOB_KEY, OperatorConfig, RunReconciler
from millrace.expressions import Sandbox
from millrace.runtime.stepapi.tokens import Signer

NS = "ns"
READS = {"get_flowrun", "get_flow", "get_config_map", "list_config_maps", "get_job", "list_pods", "get_claim",
         "get_secret", "list_namespaced_secret"}


class FakeKube:
    """Objects by (kind, name); `calls` lists every call in order; status writes can be made to conflict."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.conflicts = 0
        self.version = 1
        # Secret variables of the namespace (Secret objects as the client returns them); none by default.
        self.secrets: list[Any] = []
        self.core = types.SimpleNamespace(list_namespaced_secret=self._list_secrets)

    def _list_secrets(self, namespace: str, label_selector: str) -> Any:
        self.calls.append(("list_namespaced_secret", label_selector))
        return types.SimpleNamespace(items=self.secrets)

    def put(self, obj: dict[str, Any]) -> None:
        self.objects[(obj["kind"], obj["metadata"]["name"])] = copy.deepcopy(obj)

    def _get(self, kind: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, name))
        return copy.deepcopy(found) if found else None

    def get_flowrun(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_flowrun", name))
        return self._get("FlowRun", name)

    def get_flow(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_flow", name))
        return self._get("Flow", name)

    def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_config_map", name))
        return self._get("ConfigMap", name)

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """As the API answers: what was written as stringData is in data, base64."""
        self.calls.append(("get_secret", name))
        found = self._get("Secret", name)
        if found is not None:
            written = found.pop("stringData", {})
            found["data"] = {**found.get("data", {}),
                             **{k: base64.b64encode(v.encode()).decode() for k, v in written.items()}}
        return found

    def list_config_maps(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self.calls.append(("list_config_maps", selector))
        kinds = ("report", "resume")
        return [copy.deepcopy(o) for (k, _), o in self.objects.items()
                if k == "ConfigMap" and o["metadata"].get("labels", {}).get(names.LABEL_KIND) in kinds]

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_job", name))
        return self._get("Job", name)

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self.calls.append(("list_pods", selector))
        job = selector.removeprefix("job-name=")
        return [copy.deepcopy(o) for (k, _), o in self.objects.items()
                if k == "Pod" and o["metadata"]["labels"].get("job-name") == job]

    def get_claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_claim", name))
        return None

    def replace_flowrun_status(self, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        self.calls.append(("replace_flowrun_status", name))
        if self.conflicts:
            self.conflicts -= 1
            raise Conflict(name)
        stored = self.objects[("FlowRun", name)]
        stored["status"] = copy.deepcopy(status)
        return copy.deepcopy(stored)

    def create(self, obj: dict[str, Any]) -> bool:
        name = obj["metadata"].get("name") or obj["metadata"].get("generateName", "")
        self.calls.append((f"create {obj['kind']}", name))
        if obj["kind"] == "Event" or (obj["kind"], name) in self.objects:
            return obj["kind"] == "Event"
        self.put(obj)
        return True

    def create_owned(self, obj: dict[str, Any], what: str, owner_uid: str, path: str | None = None,
                     attempt: int | None = None) -> str | None:
        if self.create(obj):
            return None
        existing = self._get(obj["kind"], obj["metadata"]["name"])
        assert existing is not None
        return None if names.owned(existing, owner_uid, path, attempt) else names.foreign(obj["kind"], existing, what)

    def create_flowrun(self, obj: dict[str, Any]) -> bool:
        self.calls.append(("create_flowrun", obj["metadata"]["name"]))
        return True

    def annotate_secret(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        self.calls.append(("annotate_secret", name))
        self.objects[("Secret", name)]["metadata"].setdefault("annotations", {}).update(annotations)

    def delete_job(self, namespace: str, name: str) -> None:
        self.calls.append(("delete_job", name))
        job = self.objects.get(("Job", name))
        if job is not None:
            job["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"

    def delete_flowrun(self, namespace: str, name: str) -> None:
        self.calls.append(("delete_flowrun", name))
        self.objects.pop(("FlowRun", name), None)

    def patch_flowrun_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.calls.append(("patch_flowrun_spec", name))

    def annotate_flowrun(self, namespace: str, name: str, annotations: dict[str, str]) -> dict[str, Any]:
        self.calls.append(("annotate_flowrun", name))
        stored = self.objects[("FlowRun", name)]
        stored["metadata"].setdefault("annotations", {}).update(annotations)
        return copy.deepcopy(stored)

    def delete_claim(self, namespace: str, name: str) -> None:
        self.calls.append(("delete_claim", name))

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] not in READS]


def flowrun(name: str = "r") -> dict[str, Any]:
    flow = {"value": {"modules": [{"id": "a", "value": {"type": "rawscript", "language": "python3",
                                                          "content": "def main():\n    return 1\n",
                                                          "input_transforms": {}}}]}}
    return {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun",
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1},
            "spec": {"flow": flow, "args": {}}}


@pytest.fixture
def reconciler() -> tuple[RunReconciler, FakeKube]:
    kube = FakeKube()
    config = OperatorConfig(api_url="http://127.0.0.1:1", signer=Signer(b"k" * 32))
    sandbox = Sandbox()
    yield RunReconciler(kube, config, sandbox, clock=lambda: 1000.0), kube  # type: ignore[arg-type]
    sandbox.close()


def started(reconciler: RunReconciler, kube: FakeKube) -> str:
    """Run `r` through its first pass: step `a` attempt 1 has a Job. Returns the Job's name."""
    kube.put(flowrun())
    reconciler.reconcile(NS, "r")
    job = names.job_name("r", "a", 1)
    assert ("Job", job) in kube.objects
    return job


def test_the_first_pass_writes_the_status_before_it_creates_the_job(reconciler) -> None:
    rec, kube = reconciler
    job = started(rec, kube)
    writes = kube.writes()
    # Phase Pending first, then the run's trace context; then only the attempt's own inputs (keyed by
    # the attempt, harmless if never named) come before the status that plans the Job.
    assert writes[:2] == [("replace_flowrun_status", "r"), ("annotate_flowrun", "r")]
    status_at = writes.index(("replace_flowrun_status", "r"), 2)
    assert writes.index(("create Job", job)) > status_at
    # The pinned definition and the namespace's runtime ConfigMap (once per run), then one object per attempt.
    assert writes[2:status_at] == [("create ConfigMap", names.definition_name("r")), ("create ConfigMap", runtime_name()),
                                   ("create Secret", names.step_secret_name("r", "a", 1))]


def stuck_pod(job: str) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": f"{job}-x", "labels": {"job-name": job}},
            "status": {"phase": "Pending", "containerStatuses": [
                {"state": {"waiting": {"reason": "ErrImagePull", "message": "no such image"}}}]}}


def test_a_stuck_job_is_stopped_only_after_its_failure_is_written(reconciler) -> None:
    rec, kube = reconciler
    job = started(rec, kube)
    kube.put(stuck_pod(job))
    kube.calls.clear()
    kube.conflicts = 1  # someone else wrote the status meanwhile: the pass is read again
    finished, _ = rec.reconcile(NS, "r")
    assert finished
    status = kube.objects[("FlowRun", "r")]["status"]
    # Not JobDeleted: the first, conflicting pass deleted nothing.
    assert status["phase"] == "Failed" and status["error"]["name"] == "ErrImagePull", status
    writes = kube.writes()
    assert writes[0] == ("replace_flowrun_status", "r")  # the conflict, before any side effect
    assert writes.count(("delete_job", job)) == 1
    assert writes.index(("delete_job", job)) > writes.index(("replace_flowrun_status", "r"), 1)


def test_a_job_lost_in_a_crash_is_recreated_once_and_the_run_goes_on(reconciler) -> None:
    rec, kube = reconciler
    job = started(rec, kube)
    # As if the operator had stopped between naming the attempt and creating its Job.
    created = kube.objects.pop(("Job", job))
    secret = kube.objects[("Secret", names.step_secret_name("r", "a", 1))]
    secret["metadata"]["annotations"].pop(names.ANNOTATION_JOB_CREATED)
    kube.calls.clear()
    finished, _ = rec.reconcile(NS, "r")
    assert not finished
    assert kube.writes() == [("create Job", job), ("annotate_secret", names.step_secret_name("r", "a", 1))]
    assert kube.objects[("FlowRun", "r")]["status"]["phase"] == "Running"
    # Made from the manifest the Secret keeps: the Job the first pass made, to the last field.
    assert kube.objects[("Job", job)] == created


def test_a_job_deleted_after_it_was_made_is_not_made_again(reconciler) -> None:
    rec, kube = reconciler
    job = started(rec, kube)
    del kube.objects[("Job", job)]
    kube.calls.clear()
    finished, _ = rec.reconcile(NS, "r")
    assert finished and not any(w[0] == "create Job" for w in kube.writes())
    status = kube.objects[("FlowRun", "r")]["status"]
    assert status["phase"] == "Failed" and status["error"]["name"] == "JobDeleted", status


def test_an_attempt_started_by_an_older_operator_is_judged_by_its_job(reconciler) -> None:
    rec, kube = reconciler
    job = started(rec, kube)
    del kube.objects[("Job", job)]
    # Its Secret keeps neither the manifest nor the annotation: both were on a ConfigMap then.
    secret = kube.objects[("Secret", names.step_secret_name("r", "a", 1))]
    secret["metadata"]["annotations"].pop(names.ANNOTATION_JOB_CREATED)
    del secret["stringData"][JOB_KEY]
    finished, _ = rec.reconcile(NS, "r")
    assert finished and kube.objects[("FlowRun", "r")]["status"]["error"]["name"] == "JobDeleted"


def test_a_secret_put_in_place_of_the_attempts_own_gives_no_job(reconciler) -> None:
    rec, kube = reconciler
    job = started(rec, kube)
    del kube.objects[("Job", job)]
    name = names.step_secret_name("r", "a", 1)
    forged = copy.deepcopy(kube.objects[("Secret", name)])
    forged["metadata"]["ownerReferences"] = []
    forged["metadata"]["annotations"].pop(names.ANNOTATION_JOB_CREATED)
    kube.put(forged)
    kube.calls.clear()
    finished, _ = rec.reconcile(NS, "r")
    assert finished and not any(w[0] == "create Job" for w in kube.writes())
    status = kube.objects[("FlowRun", "r")]["status"]
    assert status["error"]["name"] == "ForeignObject" and f"Secret {NS}/{name}" in status["error"]["message"], status


def test_a_foreign_job_holding_the_name_is_noted_on_the_secret_and_fails_the_attempt(reconciler) -> None:
    rec, kube = reconciler
    kube.put({"kind": "Job", "metadata": {"name": names.job_name("r", "a", 1)}})
    kube.put(flowrun())
    rec.reconcile(NS, "r")
    secret = kube.objects[("Secret", names.step_secret_name("r", "a", 1))]
    assert "is not" in secret["metadata"]["annotations"][ANNOTATION_REFUSED]
    finished, _ = rec.reconcile(NS, "r")
    status = kube.objects[("FlowRun", "r")]["status"]
    assert finished and status["error"]["name"] == "ForeignObject", status


def test_reading_a_run_changes_nothing(reconciler) -> None:
    rec, kube = reconciler
    job = started(rec, kube)
    kube.put(stuck_pod(job))
    obj = kube.get_flowrun(NS, "r")
    from millrace.model.resources import FlowRunStatus

    status = FlowRunStatus.model_validate(obj["status"])
    definition = rec._definition(obj)
    kube.calls.clear()
    reading = rec._read(obj, status, rec._meta(obj, definition), definition, {})
    assert kube.writes() == []
    assert [type(e).__name__ for e in reading.events] == ["StepFinished"]
    assert [type(r).__name__ for r in reading.repairs] == ["StopJob"] and reading.unreadable is None


def api_error(status: int, message: str) -> ApiException:
    exc = ApiException(status=status, reason="refused")
    exc.body = json.dumps({"kind": "Status", "message": message})
    return exc


@pytest.mark.parametrize(("status", "message", "name"), [
    (403, 'secrets "x" is forbidden: exceeded quota: q, requested: secrets=1, used: secrets=1, limited: secrets=1',
     "QuotaExceeded"),
    (413, "Request entity too large: limit is 3145728", "ObjectTooLarge"),
    (422, 'ConfigMap "x" is invalid: []: Too long: must have at most 1048576 bytes', "ObjectTooLarge"),
    (422, 'Job.batch "x" is invalid: spec.template.spec.containers[0].image: Required value', "InvalidObject"),
])
def test_a_refusal_that_will_not_change_is_permanent(status: int, message: str, name: str) -> None:
    refused = refusal(api_error(status, message), "the thing")
    assert refused is not None and refused.name == name
    assert message in refused.message and "the thing" in refused.message


@pytest.mark.parametrize("status", [500, 503, 504, 429, 403])
def test_server_errors_throttling_and_plain_forbidden_are_retried(status: int) -> None:
    # A 403 without a quota is RBAC: fixed by an administrator, then retrying works.
    assert refusal(api_error(status, "etcdserver: leader changed" if status >= 500 else "no"), "x") is None
    assert refusal(TimeoutError("read timed out"), "x") is None


def quota_on(kube: FakeKube, kind: str) -> None:
    """Every create of `kind` is refused by a ResourceQuota."""
    create = kube.create

    def refusing(obj: dict[str, Any]) -> bool:
        if obj["kind"] == kind:
            raise api_error(403, f"exceeded quota: q, requested: {kind}=1, used: 0, limited: 0")
        return create(obj)

    kube.create = refusing  # type: ignore[method-assign]


def test_inputs_refused_by_a_quota_fail_the_step_before_the_status_names_a_job(reconciler) -> None:
    rec, kube = reconciler
    kube.put(flowrun())
    quota_on(kube, "Secret")
    finished, _ = rec.reconcile(NS, "r")
    assert finished
    status = kube.objects[("FlowRun", "r")]["status"]
    assert status["phase"] == "Failed" and status["error"]["name"] == "QuotaExceeded", status
    assert "exceeded quota" in status["error"]["message"]
    assert not [k for k in kube.objects if k[0] == "Job"]


def test_a_job_refused_by_a_quota_is_recorded_as_the_attempts_failure(reconciler) -> None:
    rec, kube = reconciler
    kube.put(flowrun())
    quota_on(kube, "Job")
    rec.reconcile(NS, "r")
    assert ("ConfigMap", names.report_name("r", "a", 1)) in kube.objects
    finished, _ = rec.reconcile(NS, "r")  # the report's event wakes the run
    assert finished
    status = kube.objects[("FlowRun", "r")]["status"]
    assert status["phase"] == "Failed" and status["error"]["name"] == "QuotaExceeded", status


def test_an_unreadable_resume_record_fails_the_run_clearly(reconciler) -> None:
    rec, kube = reconciler
    run = flowrun()
    # A module follows the suspended one: Windmill waits as it pushes the next module.
    run["spec"]["flow"]["value"]["modules"].insert(0, {"id": "wait", "value": {"type": "identity"},
                                                       "suspend": {"required_events": 1, "timeout": 3600}})
    kube.put(run)
    rec.reconcile(NS, "r")
    assert kube.objects[("FlowRun", "r")]["status"]["phase"] == "Suspended"
    kube.put({"kind": "ConfigMap", "metadata": {"name": "r-resume-bad", "labels": {names.LABEL_KIND: "resume"},
                                                   "ownerReferences": [{"uid": "uid-r", "controller": True}]},
              "data": {"request": "{not json"}})
    finished, _ = rec.reconcile(NS, "r")
    assert finished
    status = kube.objects[("FlowRun", "r")]["status"]
    assert status["phase"] == "Failed" and status["error"]["name"] == "InvalidResume", status
    assert "resume record r-resume-bad is unreadable" in status["error"]["message"]


def test_the_reconciler_refuses_a_flow_the_webhook_would_refuse(reconciler) -> None:
    rec, kube = reconciler
    run = flowrun()
    modules = run["spec"]["flow"]["value"]["modules"]
    modules.append(copy.deepcopy(modules[0]))  # two steps with one id
    kube.put(run)
    finished, _ = rec.reconcile(NS, "r")
    assert finished
    status = kube.objects[("FlowRun", "r")]["status"]
    assert status["phase"] == "Failed" and status["error"]["name"] == "InvalidFlow"
    assert "duplicate step id 'a'" in status["error"]["message"]
    assert not [k for k in kube.objects if k[0] == "Job"]


def test_a_resume_payload_that_does_not_fit_the_form_is_refused_and_the_run_keeps_waiting(reconciler) -> None:
    """As `millrace resume` refuses it locally (engine/resume_form.py, shared by both shells)."""
    rec, kube = reconciler
    run = flowrun()
    run["spec"]["flow"]["value"]["modules"] = [{
        "id": "wait", "value": {"type": "identity"},
        "suspend": {"required_events": 1, "timeout": 3600, "resume_form": {"schema": {
            "type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}}},
        {"id": "after", "value": {"type": "identity"}}]  # Windmill waits as it pushes the next module
    kube.put(run)
    rec.reconcile(NS, "r")

    def resume(name: str, payload: Any) -> None:
        kube.put({"kind": "ConfigMap", "metadata": {"name": name, "labels": {names.LABEL_KIND: "resume"},
                                                    "creationTimestamp": name,
                                                    "ownerReferences": [{"uid": "uid-r", "controller": True}]},
                  "data": {"request": json.dumps({"payload": payload, "approver": "ann"})}})

    resume("r-resume-1", {"ok": "yes"})
    kube.calls.clear()
    assert rec.reconcile(NS, "r")[0] is False
    status = kube.objects[("FlowRun", "r")]["status"]
    assert status["phase"] == "Suspended" and status["appliedResumes"] == ["r-resume-1"]
    assert [c for c in kube.calls if c == ("create Event", "r.")]  # a ResumeRefused warning
    resume("r-resume-2", {"ok": True})
    assert rec.reconcile(NS, "r")[0] is True
    assert kube.objects[("FlowRun", "r")]["status"]["phase"] == "Succeeded"


def test_a_finished_run_is_deleted_once_its_retention_is_over_and_not_looked_at_before() -> None:
    kube = FakeKube()
    now = [1000.0]
    config = OperatorConfig(api_url="http://127.0.0.1:1", signer=Signer(b"k" * 32), retention_s=60)
    with Sandbox() as sandbox:
        rec = RunReconciler(kube, config, sandbox, clock=lambda: now[0])  # type: ignore[arg-type]
        run = flowrun()
        run["spec"]["flow"]["value"]["modules"][0] = {"id": "nothing", "value": {"type": "identity"}}
        kube.put(run)
        assert rec.reconcile(NS, "r") == (True, 1060.0)  # finished: only its retention wakes it
        now[0] = 1030.0
        assert rec.reconcile(NS, "r") == (True, 1060.0)
        assert ("delete_flowrun", "r") not in kube.calls
        now[0] = 1061.0
        assert rec.reconcile(NS, "r") == (True, None)
        assert ("delete_flowrun", "r") in kube.calls


def test_an_inner_flows_run_is_not_deleted_on_its_own() -> None:
    kube = FakeKube()
    config = OperatorConfig(api_url="http://127.0.0.1:1", signer=Signer(b"k" * 32), retention_s=0)
    with Sandbox() as sandbox:
        rec = RunReconciler(kube, config, sandbox, clock=lambda: 1000.0)  # type: ignore[arg-type]
        run = flowrun()
        run["metadata"]["labels"] = {names.LABEL_PARENT: "parent"}
        run["spec"]["flow"]["value"]["modules"][0] = {"id": "nothing", "value": {"type": "identity"}}
        kube.put(run)
        assert rec.reconcile(NS, "r") == (True, None)
        assert ("delete_flowrun", "r") not in kube.calls


def _secret_variable(value: str) -> Any:
    encoded = base64.b64encode(value.encode()).decode()
    return types.SimpleNamespace(data={"value": encoded})


def test_secrets_are_listed_only_by_a_pass_that_masks_or_unmasks(reconciler) -> None:
    rec, kube = reconciler
    kube.secrets = [_secret_variable("hunter2")]
    started(rec, kube)
    assert kube.calls.count(("list_namespaced_secret", "millrace.dev/kind=variable")) == 1  # it wrote the status
    kube.calls.clear()
    rec.reconcile(NS, "r")  # nothing new (the Job runs): nothing written, nothing to mask
    assert not kube.writes() and not any(c[0] == "list_namespaced_secret" for c in kube.calls)
    # The step reports a result holding the secret: the pass that records it lists the secrets, once.
    report = names.report_name("r", "a", 1)
    kube.put({"kind": "ConfigMap", "metadata": {
        "name": report, "namespace": NS, "labels": {names.LABEL_RUN: "r", names.LABEL_KIND: "report"},
        "annotations": {names.ANNOTATION_STEP_PATH: "a", names.ANNOTATION_ATTEMPT: "1"},
        "ownerReferences": [{"uid": "uid-r", "controller": True}]},
        "data": {"report": json.dumps({"ok": True, "result": "token hunter2"})}})
    kube.calls.clear()
    assert rec.reconcile(NS, "r")[0]
    assert [c for c in kube.calls if c[0] == "list_namespaced_secret"] == [("list_namespaced_secret",
                                                                          "millrace.dev/kind=variable")]
    status = kube.objects[("FlowRun", "r")]["status"]
    assert status["phase"] == "Succeeded" and "hunter2" not in json.dumps(status), status
