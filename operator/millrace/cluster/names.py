"""Deterministic Kubernetes names and labels for a run's objects.

A restarted operator that starts the same step attempt again derives the
same Job name and finds the Job it made, so no step runs twice.
"""

from __future__ import annotations

import hashlib
import re

LABEL_FLOW = "millrace.dev/flow"
LABEL_RUN = "millrace.dev/run"
LABEL_STEP = "millrace.dev/step"
LABEL_KIND = "millrace.dev/kind"
LABEL_PARENT = "millrace.dev/parent-run"
# On FlowRuns a Flow's schedule started.
LABEL_SCHEDULED = "millrace.dev/scheduled"
ANNOTATION_STEP_PATH = "millrace.dev/step-path"
ANNOTATION_ATTEMPT = "millrace.dev/attempt"
ANNOTATION_FLOW_PATH = "millrace.dev/flow-path"
ANNOTATION_JOB_CREATED = "millrace.dev/job-created"
_MAX_NAME = 63


def dns_name(*parts: str, limit: int = _MAX_NAME) -> str:
    """A DNS-1123 label made of `parts`, with a hash suffix when it had to be cut or cleaned."""
    raw = "-".join(parts)
    clean = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    if clean == raw and len(clean) <= limit:
        return clean
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{clean[: limit - 9].rstrip('-')}-{digest}"


def path_name(path: str) -> str:
    """The object name of a Windmill path: `f/app/inner` is `f-app-inner`."""
    return re.sub(r"[^a-z0-9-]+", "-", path.lower()).strip("-")[:253]


def job_name(run: str, path: str, attempt: int) -> str:
    return dns_name(run, path.replace("/", "-"), str(attempt))


def child_run_name(run: str, path: str, attempt: int) -> str:
    return dns_name(run, path.replace("/", "-"), str(attempt))


def step_config_name(run: str, path: str, attempt: int) -> str:
    return dns_name(run, path.replace("/", "-"), str(attempt), "step")


def report_name(run: str, path: str, attempt: int) -> str:
    return dns_name(run, path.replace("/", "-"), str(attempt), "report")


def definition_name(run: str) -> str:
    return dns_name(run, "flow")


def shared_claim_name(run: str) -> str:
    return dns_name(run, "shared")


def label_value(value: str) -> str:
    """Label values allow 63 characters of [A-Za-z0-9._-]."""
    return dns_name(value)
