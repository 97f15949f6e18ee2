"""Build the Kubernetes objects of one step attempt: pure functions, no I/O.

A step pod gets its attempt's Secret (the step's files: its code and its
arguments, which may hold secret variables' values; its step API token; the
reconciler adds the Job's manifest, kept for recovery) and the namespace's
runtime ConfigMap (the language wrappers and the client SDK, copied in as the
design asks: nothing is installed; one per millrace version and content,
shared by every step), both projected into one read-only volume; it runs
`launch.sh` to lay out its working directory, and reports to the step API over
HTTP. One object per attempt is one write for the operator and one read for
the node. Nothing of the arguments is in the Job: bash's positional arguments
come from a file of the Secret, a program step's from its keys.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..engine.actions import RunStep
from ..model.resources import Runtime
from ..runtime.languages import DEFAULT_IMAGES, LANGUAGES
from ..runtime.launch import REQUIREMENTS_FILE, SDK, WRAPPERS, plan
from ..runtime.program import image as step_image
from ..runtime.protocol import StepRequest
from ..telemetry.context import RunTrace
from . import names
from .policy import POD_SECURITY, StepPolicy, container_security
from .steplogs import STEP_CONTAINER

STEP_ROOT = "/millrace"
WORKDIR = "/work"
# Bash takes its arguments by position: NUL-separated in this file, read into "$@" before the wrapper runs.
BASH_ARGS = ".millrace-args"
BASH_READ_ARGS = f'mapfile -d "" -t args < {BASH_ARGS} && rm -f {BASH_ARGS} && exec bash "$0" "${{args[@]}}"'
TMP = "/tmp"
PYTHON_CACHE = "/cache/python"
KIND_RUNTIME = "runtime"
KIND_STEP = "step"


@dataclass(frozen=True)
class RunMeta:
    """What a step's objects need to know about their run."""

    namespace: str
    run: str
    run_uid: str
    flow: str
    api_url: str
    same_worker: bool = False
    node: str | None = None  # where the run's shared claim is in use, once known
    runtime: Runtime = field(default_factory=Runtime)
    default_images: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_IMAGES))
    policy: StepPolicy = field(default_factory=StepPolicy)
    state_scope: str = ""  # where its steps keep their state (runs/protocol.py StepScope)
    python_cache: dict[str, Any] | None = None  # volume source for installed packages (the chart's steps.pythonCache)
    trace: RunTrace | None = None  # the run's trace context: each step pod gets its attempt's TRACEPARENT


def owner_reference(meta: RunMeta) -> dict[str, Any]:
    return {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "name": meta.run, "uid": meta.run_uid,
            "controller": True, "blockOwnerDeletion": True}


def labels(meta: RunMeta, action: RunStep | None = None) -> dict[str, str]:
    out = {names.LABEL_FLOW: names.label_value(meta.flow), names.LABEL_RUN: names.label_value(meta.run)}
    if action is not None:
        out[names.LABEL_STEP] = names.label_value(action.step_id)
    return out


def _metadata(meta: RunMeta, name: str, action: RunStep, kind: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": meta.namespace,
        "labels": {**labels(meta, action), names.LABEL_KIND: kind},
        "annotations": {names.ANNOTATION_STEP_PATH: action.path, names.ANNOTATION_ATTEMPT: str(action.attempt),
                        names.ANNOTATION_LANGUAGE: action.language},
        "ownerReferences": [owner_reference(meta)],
    }


def _bundle(root: Path, prefix: str) -> dict[str, str]:
    """Every file below `root`, keyed by its path in the pod (under `prefix`)."""
    return {f"{prefix}/{p.relative_to(root)}": p.read_text(encoding="utf-8")
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def _key(path: str) -> str:
    # ConfigMap and Secret keys allow [-._a-zA-Z0-9]: the pod path is restored by the volume's items.
    return path.replace("/", "..")


@functools.cache
def runtime_files() -> dict[str, str]:
    """The wrappers and the SDK, keyed by their path in the pod."""
    return {**_bundle(WRAPPERS, "wrappers"), **_bundle(SDK, "sdk")}


@functools.cache
def runtime_name() -> str:
    """The runtime ConfigMap's name: injective over the version and the exact files, so a
    step never mounts another version's wrappers, and an upgrade never changes a mounted one."""
    digest = hashlib.sha256(json.dumps(runtime_files(), sort_keys=True).encode("utf-8")).hexdigest()
    return names.identity_name("millrace-runtime", __version__, digest)


def runtime_config_map(namespace: str) -> dict[str, Any]:
    """Shared by every run of the namespace, so owned by none: deleting a run must not take it
    from the others. Steps cannot write it: the step API writes only variables, resources and
    states, and the pod mounts it read-only."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": runtime_name(), "namespace": namespace,
                     "labels": {names.LABEL_KIND: KIND_RUNTIME, "app.kubernetes.io/managed-by": "millrace",
                                "app.kubernetes.io/version": __version__}},
        "data": {_key(path): content for path, content in runtime_files().items()},
    }


def step_objects(meta: RunMeta, action: RunStep, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Secret and Job of one attempt."""
    secret_name = names.step_secret_name(meta.run, action.path, action.attempt)
    request = StepRequest(key=action.key, language=action.language, code=action.code, args=action.args,
                          workdir=WORKDIR, timeout_s=action.timeout_s, entrypoint=action.entrypoint,
                          lock=action.lock, modules=action.modules, script_path=action.script_path)
    runtime_language = action.language
    launch = plan(request, LANGUAGES[runtime_language].program, wrappers=Path(STEP_ROOT) / "wrappers", sdk=Path(STEP_ROOT) / "sdk")
    argv = launch.argv
    files = {f"files/{name}": content for name, content in launch.files.items()}
    arguments: dict[str, str] = {}
    if runtime_language == "bash":
        program, wrapper, *positional = argv
        files[f"files/{BASH_ARGS}"] = "".join(f"{arg}\0" for arg in positional)
        argv = [program, "-c", BASH_READ_ARGS, wrapper]
    elif runtime_language == "program":
        # The command runs in an init container of its own image; the main container only reports.
        program, wrapper, *positional = argv
        arguments = {_program_arg(n): arg for n, arg in enumerate(positional, 1)}
        argv = [program, wrapper]
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(meta, secret_name, action, KIND_STEP),
        "type": "Opaque",
        "stringData": {"token": token, **{_key(path): content for path, content in files.items()}, **arguments},
    }
    command = ["sh", f"{STEP_ROOT}/wrappers/launch.sh", STEP_ROOT, *argv]
    job = _job(meta, action, secret_name, sorted(files), command, runtime_language,
               installs=REQUIREMENTS_FILE in launch.files)
    if runtime_language == "program":
        _run_program_first(job, action, secret_name, command[:-len(argv)], len(arguments))
    return secret, job


def _program_arg(position: int) -> str:
    return f"arg-{position}"


def _run_program_first(job: dict[str, Any], action: RunStep, secret_name: str, prepare: list[str], count: int) -> None:
    """A program step's pod: an init container lays out the working directory (in the reporting
    container's image, which has the tools launch.sh uses), the next runs the command in the step's
    own image with only its /bin/sh (wrappers/program-run.sh), then the main container reports."""
    pod = job["spec"]["template"]["spec"]
    step = pod["containers"][0]
    image = step_image(action.code)
    assert image is not None, "a program step names its image"
    arguments = [{"name": f"MILLRACE_ARG_{n}", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": _program_arg(n)}}}
                 for n in range(1, count + 1)]
    pod["initContainers"] = [
        {**step, "name": "prepare", "command": [*prepare, "true"]},
        {**step, "name": "program", "image": image, "command": ["/bin/sh", f"{STEP_ROOT}/wrappers/program-run.sh"],
         "env": [*step["env"], {"name": "MILLRACE_ARGC", "value": str(count)}, *arguments]},
    ]


def _job(meta: RunMeta, action: RunStep, secret_name: str, files: list[str], command: list[str],
         language: str, installs: bool = False) -> dict[str, Any]:
    runtime = meta.runtime
    deadline = attempt_deadline(action.timeout_s, runtime.active_deadline_seconds)
    env = [
        # A step keeps trying to reach the step API (to report) as long as its attempt may run.
        {"name": "MILLRACE_API_RETRY_S", "value": str(deadline or REPORT_RETRY_FOREVER_S)},
        {"name": "MILLRACE_API_URL", "value": meta.api_url},
        {"name": "MILLRACE_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "token"}}},
        {"name": "MILLRACE_RUN_ID", "value": meta.run},
        {"name": "MILLRACE_FLOW", "value": meta.flow},
        {"name": "MILLRACE_STEP_PATH", "value": action.path},
        # Sent with the report: the step API reads the end of this pod's log without listing the Job's pods.
        {"name": "MILLRACE_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "WM_FLOW_STEP_ID", "value": action.step_id},
        *([{"name": "TRACEPARENT", "value": meta.trace.step(action.path, action.attempt).traceparent}] if meta.trace else []),
        {"name": "HOME", "value": WORKDIR},
        {"name": "TMPDIR", "value": TMP},
    ]
    mounts = [{"name": "step", "mountPath": STEP_ROOT, "readOnly": True}, {"name": "work", "mountPath": WORKDIR},
              {"name": "tmp", "mountPath": TMP}]
    # Only the listed files of the Secret: its token and the operator's copy of the Job stay out of the step's directory.
    sources = [{"secret": {"name": secret_name, "items": [{"key": _key(p), "path": p} for p in files]}},
               {"configMap": {"name": runtime_name(), "items": [{"key": _key(p), "path": p} for p in sorted(runtime_files())]}}]
    volumes: list[dict[str, Any]] = [
        {"name": "step", "projected": {"sources": sources}},
        {"name": "work", "emptyDir": {}},
        # The root filesystem is read-only: temporary files go here.
        {"name": "tmp", "emptyDir": {}},
    ]
    if installs and meta.python_cache:
        # Without it the packages go to the pod's /tmp (sdk/millrace_packages.py), installed anew each time.
        env.append({"name": "MILLRACE_PYTHON_CACHE", "value": PYTHON_CACHE})
        mounts.append({"name": "python-cache", "mountPath": PYTHON_CACHE})
        volumes.append({"name": "python-cache", **meta.python_cache})
    if meta.same_worker:
        mounts.append({"name": "shared", "mountPath": f"{WORKDIR}/shared"})
        volumes.append({"name": "shared", "persistentVolumeClaim": {"claimName": names.shared_claim_name(meta.run)}})
    container: dict[str, Any] = {
        "name": STEP_CONTAINER,
        "image": runtime.images.get(language) or meta.default_images.get(language, DEFAULT_IMAGES[language]),
        "command": command,
        "workingDir": WORKDIR,
        "env": env,
        "volumeMounts": mounts,
        "securityContext": container_security(runtime),
        # Not FallbackToLogsOnError: the log tail (a traceback may quote a secret) would be copied into the Pod's status.
        "terminationMessagePolicy": "File",
    }
    if runtime.resources:
        container["resources"] = runtime.resources
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": meta.policy.mount_service_account_token,
        "securityContext": POD_SECURITY,
        "containers": [container],
        "volumes": volumes,
    }
    if runtime.service_account_name:
        pod["serviceAccountName"] = runtime.service_account_name
    if runtime.node_selector:
        pod["nodeSelector"] = runtime.node_selector
    if runtime.tolerations:
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in runtime.tolerations]
    if meta.same_worker and runtime.shared.access_mode == "ReadWriteOnce":
        pod["affinity"] = same_node_affinity(meta)
    spec: dict[str, Any] = {"backoffLimit": 0, "template": {"metadata": {"labels": labels(meta, action)}, "spec": pod}}
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    name = names.job_name(meta.run, action.path, action.attempt)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _metadata(meta, name, action, "step"), "spec": spec}


# An attempt without a deadline may wait for the operator as long as it takes (a year).
REPORT_RETRY_FOREVER_S = 365 * 24 * 3600


def same_node_affinity(meta: RunMeta) -> dict[str, Any]:
    """A ReadWriteOnce claim is attached to one node at a time, so a run's pods
    share a node: pods created together join each other (pod affinity; the
    first goes anywhere), and once the claim's node is known they go there."""
    affinity: dict[str, Any] = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchLabels": {names.LABEL_RUN: names.label_value(meta.run)}},
        "topologyKey": "kubernetes.io/hostname"}]}}
    if meta.node:
        affinity["nodeAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": [meta.node]}]}]}}
    return affinity


def attempt_deadline(timeout_s: float | None, limit: int | None) -> int | None:
    """Seconds an attempt may run (its Job's activeDeadlineSeconds; the step token lives a little longer)."""
    values = [v for v in (math.ceil(timeout_s) if timeout_s else None, limit) if v]
    return min(values) if values else None


def shared_claim(meta: RunMeta) -> dict[str, Any]:
    shared = meta.runtime.shared
    spec: dict[str, Any] = {"accessModes": [shared.access_mode], "resources": {"requests": {"storage": shared.size}}}
    if shared.storage_class_name:
        spec["storageClassName"] = shared.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": names.shared_claim_name(meta.run), "namespace": meta.namespace,
                     "labels": labels(meta), "ownerReferences": [owner_reference(meta)]},
        "spec": spec,
    }
