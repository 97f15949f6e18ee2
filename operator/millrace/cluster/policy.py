"""Which pod settings flows may ask for: the operator's policy, and the check.

A Flow (or a FlowRun's inline flow) may name a ServiceAccount, images and a
container securityContext in `spec.runtime`. Whoever may write a flow must
not get more than the operator allows, so each of those settings is checked
against the policy from the operator's configuration (the chart's
`stepPolicy` values). The check is pure: the webhook and the reconciler both
call it, and both refuse with the same message.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError

from ..engine.library import Library
from ..errors import FlowError, Problem
from ..model.base import KubeModel
from ..model.flow import OpenFlow, PathScript, RawScript, walk_modules
from ..model.resources import Runtime
from ..runtime import program

POLICY_ENV = "MILLRACE_STEP_POLICY"
# Restricted Pod Security Standard: what every step pod runs with unless the policy allows more.
POD_SECURITY: dict[str, Any] = {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                      "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
# The securityContext fields a flow may set at all; anything else (seLinuxOptions, procMount, ...) is refused.
_KNOWN = frozenset({"runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation",
                    "privileged", "capabilities", "seccompProfile"})


class StepPolicy(KubeModel):
    """What flows may ask of their step pods. The defaults are the restricted Pod Security Standard."""

    service_accounts: list[str] = Field(default_factory=lambda: ["default"],
                                        description="ServiceAccounts of the run's namespace a flow may name.")
    mount_service_account_token: bool = Field(default=False, description="Mount the ServiceAccount's token in step pods.")
    images: list[str] = Field(default_factory=lambda: ["*"], description="Image patterns (fnmatch) a flow may name.")
    privileged: bool = False
    root: bool = Field(default=False, description="Allow runAsUser/runAsGroup 0 and runAsNonRoot false.")
    privilege_escalation: bool = False
    writable_root_filesystem: bool = False
    capabilities: list[str] = Field(default_factory=list, description="Capabilities a flow may add.")


def policy_from_environment() -> StepPolicy:
    """The policy the chart passes as JSON in MILLRACE_STEP_POLICY; the defaults when unset."""
    raw = os.environ.get(POLICY_ENV)
    try:
        return StepPolicy.model_validate(json.loads(raw)) if raw else StepPolicy()
    except (ValueError, ValidationError) as exc:
        raise SystemExit(f"{POLICY_ENV} is not a valid step policy: {exc}") from None


def container_security(runtime: Runtime) -> dict[str, Any]:
    """The container securityContext of a step: the restricted one with the flow's (checked) settings over it."""
    asked = runtime.security_context or {}
    merged = {**CONTAINER_SECURITY, **asked}
    # Capabilities given without `drop` still drop ALL: only what the policy let through is added.
    merged["capabilities"] = {"drop": ["ALL"], **(asked.get("capabilities") or {})}
    return merged


def runtime_problems(flow: str, runtime: Mapping[str, Any] | None, policy: StepPolicy) -> list[Problem]:
    """Every setting of `spec.runtime` that the policy does not allow, each naming its field."""
    if not runtime:
        return []
    try:
        settings = Runtime.model_validate(runtime)
    except ValidationError:
        return []  # the schema check reports a malformed runtime
    problems: list[Problem] = []

    def refuse(field: str, value: Any, allowed: Any) -> None:
        problems.append(Problem(flow, f"{json.dumps(value)} is not allowed by the operator policy (allowed: {allowed})",
                                field=f"spec.runtime.{field}"))

    account = settings.service_account_name
    if account is not None and account not in policy.service_accounts:
        refuse("serviceAccountName", account, ", ".join(policy.service_accounts) or "none")
    for language, image in sorted(settings.images.items()):
        if not any(fnmatch.fnmatchcase(image, pattern) for pattern in policy.images):
            refuse(f"images.{language}", image, ", ".join(policy.images) or "none")
    security = settings.security_context or {}
    for key in sorted(set(security) - _KNOWN):
        refuse(f"securityContext.{key}", security[key], "only " + ", ".join(sorted(_KNOWN)))
    checks = [
        ("privileged", security.get("privileged") is True, policy.privileged),
        ("allowPrivilegeEscalation", security.get("allowPrivilegeEscalation") is True, policy.privilege_escalation),
        ("readOnlyRootFilesystem", security.get("readOnlyRootFilesystem") is False, policy.writable_root_filesystem),
        ("runAsNonRoot", security.get("runAsNonRoot") is False, policy.root),
        ("runAsUser", security.get("runAsUser") == 0, policy.root),
        ("runAsGroup", security.get("runAsGroup") == 0, policy.root),
    ]
    for key, asks, allowed in checks:
        if asks and not allowed:
            refuse(f"securityContext.{key}", security[key], "false" if key != "readOnlyRootFilesystem" else "true")
    seccomp = (security.get("seccompProfile") or {}).get("type")
    if seccomp is not None and seccomp not in ("RuntimeDefault", "Localhost"):
        refuse("securityContext.seccompProfile.type", seccomp, "RuntimeDefault, Localhost")
    capabilities = security.get("capabilities") or {}
    added = [c for c in capabilities.get("add") or [] if c not in policy.capabilities]
    if added:
        refuse("securityContext.capabilities.add", added, ", ".join(policy.capabilities) or "none")
    if "ALL" not in (capabilities.get("drop") or ["ALL"]):
        refuse("securityContext.capabilities.drop", capabilities["drop"], '["ALL"]')
    return problems


def step_image_problems(flow: str, openflow: OpenFlow, library: Library, policy: StepPolicy) -> list[Problem]:
    """The images of program steps (`# sandbox <image>`, runtime/program.py) that the policy does not allow:
    a step's own image is checked as the images of `spec.runtime` are."""
    problems: list[Problem] = []
    for module in walk_modules(openflow.value.modules, openflow.value.failure_module):
        value = module.value
        script = library.scripts.get(value.path) if isinstance(value, PathScript) else None
        code = value.content if isinstance(value, RawScript) else script.content if script else None
        image = program.image(code) if code is not None else None
        if image is not None and not any(fnmatch.fnmatchcase(image, pattern) for pattern in policy.images):
            problems.append(Problem(flow, f"image {json.dumps(image)} (# sandbox) is not allowed by the operator "
                                          f"policy (allowed: {', '.join(policy.images) or 'none'})",
                                    step=module.id, field="value.content" if script is None else "value.path"))
    return problems


def check_runtime(flow: str, runtime: Mapping[str, Any] | None, policy: StepPolicy) -> None:
    """Raise FlowError when the flow's runtime asks for more than the policy allows."""
    problems = runtime_problems(flow, runtime, policy)
    if problems:
        raise FlowError(problems)
