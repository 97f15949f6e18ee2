"""What a Job tells us when its step ended without reporting.

A step that reported is read from its report. One whose process exited
non-zero without reporting fails as Windmill words it (runtime/outcome.py
exit_error, the end of the pod's log quoted), as it does locally. Any other
(killed for memory, evicted, its image never pulled, past its deadline, its
Job deleted) fails with the Kubernetes reason in its error.

Reading is free of side effects: a Job that will never get anywhere is
reported as to be stopped, and the reconciler stops it only after the
status that records the failure is written.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from kubernetes.client.exceptions import ApiException

from ..model.times import parse_time
from ..runtime.languages import LANGUAGES
from ..runtime.outcome import exit_error
from ..runtime.protocol import StepError, StepOutcome
from . import names
from .kube import KubeApi
from .steplogs import LOG_TAIL_LINES, STEP_CONTAINER, pod_log

# Container states that will not get better by waiting.
STUCK_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                           "CreateContainerError"})


class JobVerdict(NamedTuple):
    outcome: StepOutcome | None  # None while the step may still report
    stop: bool = False  # the Job is stuck: delete it once the outcome is recorded


def _failed(name: str, message: str, stop: bool = False) -> JobVerdict:
    return JobVerdict(StepOutcome(ok=False, error=StepError(name=name, message=message)), stop)


def job_outcome(kube: KubeApi, namespace: str, job: dict[str, Any] | None, now: float,
                claim_timeout_s: float) -> JobVerdict:
    """What a step whose report is missing has come to, read without changing anything."""
    if job is None:
        return _failed("JobDeleted", "the step's Job was deleted before the step reported")
    if job["metadata"].get("deletionTimestamp"):
        return _failed("JobDeleted", f"Job {job['metadata']['name']} is being deleted")
    conditions = {c["type"]: c for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
    pods = kube.list_pods(namespace, f"job-name={job['metadata']['name']}")
    pod_reason = _pod_reason(pods)
    if "Failed" in conditions:
        cond = conditions["Failed"]
        exited = None if cond.get("reason") == "DeadlineExceeded" else _exit_error(kube, namespace, job, pods)
        if exited is not None:
            return JobVerdict(StepOutcome(ok=False, error=exited))
        detail = f": {pod_reason}" if pod_reason else ""
        return _failed(cond.get("reason") or "JobFailed", f"{cond.get('message') or 'the Job failed'}{detail}")
    if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
        # Exit code 0 but no report: the wrapper never reached the step API.
        return _failed("NoReport", f"the step's pod ended without reporting an outcome{': ' + pod_reason if pod_reason else ''}")
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in STUCK_REASONS:
                return _failed(waiting["reason"], waiting.get("message") or waiting["reason"], stop=True)
        unbound = _unbound_claim(kube, namespace, pod, now, claim_timeout_s)
        if unbound:
            return _failed("VolumeNotBound", unbound, stop=True)
    return JobVerdict(None)


def _exit_error(kube: KubeApi, namespace: str, job: dict[str, Any], pods: list[dict[str, Any]]) -> StepError | None:
    """Windmill's exit-code error for a step process that exited non-zero by itself (not killed by a
    signal nor for memory), quoting the end of its log (read through the API: a termination message
    from the log would copy it into the Pod's status unmasked)."""
    language: Any = (job["metadata"].get("annotations") or {}).get(names.ANNOTATION_LANGUAGE)
    row = LANGUAGES.get(language)
    if row is None or row.exit_name is None:
        return None
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or {}
            code = term.get("exitCode") or 0
            if cs.get("name") != STEP_CONTAINER or term.get("reason") != "Error" or not 0 < code < 128:
                continue
            try:
                # exit_error quotes the last characters of it: the kept tail's line bound is plenty.
                log = pod_log(kube, namespace, pod["metadata"]["name"], tail_lines=LOG_TAIL_LINES)
            except ApiException:
                log = ""
            return exit_error(row.exit_name, code, log)
    return None


def _unbound_claim(kube: KubeApi, namespace: str, pod: dict[str, Any], now: float, timeout_s: float) -> str | None:
    """Why a pending pod's claim has not been bound for longer than `timeout_s`, if so."""
    if (pod.get("status") or {}).get("phase") != "Pending":
        return None
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        claim_ref = volume.get("persistentVolumeClaim")
        if not claim_ref:
            continue
        claim = kube.get_claim(namespace, claim_ref["claimName"])
        if claim is None or (claim.get("status") or {}).get("phase") == "Bound":
            continue
        created = parse_time(claim["metadata"]["creationTimestamp"]) or now
        if now - created > timeout_s:
            storage_class = claim["spec"].get("storageClassName") or "the default storage class"
            return (f"PersistentVolumeClaim {claim_ref['claimName']} ({storage_class}) is not bound after "
                    f"{int(now - created)} s: check that the storage class exists and can provision it")
    return None


def _pod_reason(pods: list[dict[str, Any]]) -> str:
    for pod in pods:
        status = pod.get("status") or {}
        for cs in status.get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated")
            if term:
                parts = [term.get("reason") or "", f"exit code {term.get('exitCode')}"]
                if term.get("message"):
                    parts.append(term["message"].strip()[-2000:])
                return ", ".join(p for p in parts if p)
        if status.get("reason"):
            return f"{status['reason']}: {status.get('message', '')}".strip()
    return ""
