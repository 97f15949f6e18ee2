"""Deterministic, injective Kubernetes names and labels for a run's objects.

Every name is a readable prefix plus a hash of the structured identity it
stands for (run, step path, attempt, kind...), so two different identities
never share a name however their parts are spelled: run `daily` + step
`report-send` and run `daily-report` + step `send` differ, as do step
`x-1-b` and loop path `x/1/b`. A restarted operator that starts the same step
attempt again derives the same name and finds the object it made, so no step
runs twice.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

LABEL_FLOW = "millrace.dev/flow"
LABEL_RUN = "millrace.dev/run"
LABEL_STEP = "millrace.dev/step"
LABEL_KIND = "millrace.dev/kind"
LABEL_PARENT = "millrace.dev/parent-run"
# On FlowRuns a Flow's schedule started.
LABEL_SCHEDULED = "millrace.dev/scheduled"
ANNOTATION_STEP_PATH = "millrace.dev/step-path"
ANNOTATION_ATTEMPT = "millrace.dev/attempt"
# The runtime language of a step Job (runtime/languages.py): how its exit-code error names the process.
ANNOTATION_LANGUAGE = "millrace.dev/language"
ANNOTATION_FLOW_PATH = "millrace.dev/flow-path"
ANNOTATION_JOB_CREATED = "millrace.dev/job-created"
# On FlowRuns: the W3C trace context the run's spans belong to (docs/operations.md, "Tracing").
ANNOTATION_TRACEPARENT = "millrace.dev/traceparent"
_MAX_NAME = 63
_DIGEST = 12  # hex characters: 48 bits of the identity's sha256


def _clean(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def identity_name(*identity: str | int, limit: int = _MAX_NAME) -> str:
    """A DNS-1123 label for `identity`: its parts, readable and cut to fit, then a hash of the exact parts.

    The hash covers the JSON list of the parts, so no choice of separators in
    the parts can make two identities meet."""
    digest = hashlib.sha256(json.dumps(list(identity)).encode("utf-8")).hexdigest()[:_DIGEST]
    prefix = _clean("-".join(str(part) for part in identity))[: limit - _DIGEST - 1].rstrip("-")
    return f"{prefix}-{digest}" if prefix else digest


def path_name(path: str) -> str:
    """The Flow object an inner flow step's Windmill path names: `f/app/inner` is the Flow `f-app-inner`."""
    return re.sub(r"[^a-z0-9-]+", "-", path.lower()).strip("-")[:253]


def job_name(run: str, path: str, attempt: int) -> str:
    return identity_name(run, path, attempt, "job")


def child_run_name(run: str, path: str, attempt: int) -> str:
    return identity_name(run, path, attempt, "flow")


def step_secret_name(run: str, path: str, attempt: int) -> str:
    return identity_name(run, path, attempt, "step")


def report_name(run: str, path: str, attempt: int) -> str:
    return identity_name(run, path, attempt, "report")


def definition_name(run: str) -> str:
    return identity_name(run, "definition")


def shared_claim_name(run: str) -> str:
    return identity_name(run, "shared")


def state_name(flow: str, step_id: str, scope: str = "") -> str:
    return identity_name("state", flow, scope, step_id) if scope else identity_name("state", flow, step_id)


def data_name(kind: str, path: str) -> str:
    """The object a step creates for a variable or resource at a Windmill path."""
    return identity_name(kind, path)


def label_value(value: str) -> str:
    """Label values allow 63 characters of [A-Za-z0-9._-]: the value itself when it fits.

    Labels only select; what an object is for is checked on its owner and
    annotations (see `owned`)."""
    if len(value) <= _MAX_NAME and re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)?[A-Za-z0-9]", value):
        return value
    return identity_name(value)


def owned(obj: dict[str, Any], owner_uid: str, path: str | None = None, attempt: int | None = None) -> bool:
    """Whether `obj` is controlled by the object with `owner_uid` and, when given, annotated for this attempt."""
    meta = obj.get("metadata") or {}
    if not any(ref.get("uid") == owner_uid and ref.get("controller") for ref in meta.get("ownerReferences") or []):
        return False
    annotations = meta.get("annotations") or {}
    if path is not None and annotations.get(ANNOTATION_STEP_PATH) != path:
        return False
    return attempt is None or annotations.get(ANNOTATION_ATTEMPT) == str(attempt)


def foreign(kind: str, obj: dict[str, Any], what: str) -> str:
    """The error for an object that has this attempt's name but is not this attempt's."""
    meta = obj.get("metadata") or {}
    return (f"{kind} {meta.get('namespace', '')}/{meta.get('name', '')} exists but is not {what}'s "
            "(another owner or other annotations): it is left alone, remove it or rename the run")
