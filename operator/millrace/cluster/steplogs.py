"""A step's log: read from its pod while the pod exists, and its tail kept with its report.

A step's pod, and with it its log, goes when its Job is deleted (`job_ttl_s`
after the step ended, at once when the run is cancelled). So when a step
reports its outcome, the step API reads the end of its pod's log (the pod the
step names, checked to be one of its Job's, or found by listing them) -- the last
LOG_TAIL_LINES lines, of which at most LOG_TAIL_BYTES are kept -- masks the
secret values in it as it masks the report, and keeps it in the report
ConfigMap under LOG_KEY. `kubectl millrace logs` reads the pod's log while
the pod exists, and that tail after.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException

from .kube import KubeApi

STEP_CONTAINER = "step"
LOG_KEY = "log"
LOG_TAIL_LINES = 1000
LOG_TAIL_BYTES = 64 * 1024
# An object may hold 1 MiB: the tail gives way to a large report, with room left for the metadata.
RECORD_BYTES = 1024 * 1024 - 16 * 1024
# A generated name is at most 63 characters, 5 of them random: the Job's name and its dash must fit in the rest.
POD_NAMED_JOB_MAX = 63 - 5 - 1


def bounded(text: str, limit: int = LOG_TAIL_BYTES) -> str:
    """The end of `text` within `limit` bytes of UTF-8, from the start of a line when one fits."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    tail = data[-limit:]
    newline = tail.find(b"\n")
    if 0 <= newline < len(tail) - 1:
        tail = tail[newline + 1:]
    return tail.decode("utf-8", errors="ignore")  # a character cut at the start is dropped


def beside(tail: str, report: str) -> str:
    """What of `tail` the report's ConfigMap can keep beside `report`."""
    room = min(LOG_TAIL_BYTES, RECORD_BYTES - len(report.encode("utf-8")))
    return bounded(tail, room) if room > 0 else ""


def step_pod(kube: KubeApi, namespace: str, job: str) -> dict[str, Any] | None:
    """The newest pod of the step's Job (a step Job makes one: backoffLimit 0), if any."""
    pods = kube.list_pods(namespace, f"job-name={job}")
    return max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", default=None)


def _decode(chunk: bytes) -> str:
    return chunk.decode("utf-8", errors="replace")  # a step may print bytes that are not UTF-8


def _log_response(kube: KubeApi, namespace: str, pod: str, **query: Any) -> Any:
    """The raw answer (urllib3's response): its bytes are decoded here, not by the client, which fails on bytes
    that are not UTF-8 (the client types the call as returning a str)."""
    return kube.core.read_namespaced_pod_log(pod, namespace, container=STEP_CONTAINER, _preload_content=False, **query)


def pod_log(kube: KubeApi, namespace: str, pod: str, tail_lines: int | None = None) -> str:
    return _decode(_log_response(kube, namespace, pod, tail_lines=tail_lines).data)


def follow_pod_log(kube: KubeApi, namespace: str, pod: str) -> Iterator[str]:
    """The pod's log as it grows, until its container ends."""
    response = _log_response(kube, namespace, pod, follow=True)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span two chunks
    try:
        for chunk in response.stream(4096):
            yield decoder.decode(chunk)
        yield decoder.decode(b"", final=True)
    finally:
        response.release_conn()


def pod_of_job(job: str, pod: str | None) -> bool:
    """Whether `pod` can only be a pod of the Job `job`: the Job controller names its pods after it
    plus 5 random characters. A Job name over 57 characters is cut in its pods' names, so a pod of
    another Job could match: then no name counts."""
    return pod is not None and len(job) <= POD_NAMED_JOB_MAX and re.fullmatch(rf"{re.escape(job)}-[a-z0-9]{{5}}", pod) is not None


def log_tail(kube: KubeApi, namespace: str, job: str, named: str | None = None) -> str | None:
    """The bounded end of the step's log now; None when its pod or its log cannot be read (the
    report is kept all the same). `named`: the pod the step says it runs in, read without listing
    the Job's pods when it can only be one of them (a step can name no other Job's pod)."""
    try:
        if pod_of_job(job, named):
            name = named
        else:
            found = step_pod(kube, namespace, job)
            name = None if found is None else found["metadata"]["name"]
        return None if name is None else bounded(pod_log(kube, namespace, name, LOG_TAIL_LINES))
    except ApiException:
        return None
