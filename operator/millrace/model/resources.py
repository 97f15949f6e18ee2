"""The `Flow` and `FlowRun` custom resources (group millrace.dev, v1alpha1).

`Flow.spec` is the OpenFlow document with Windmill's field names verbatim,
plus Kubernetes-only settings in camelCase beside it (`runtime`,
`schedule`). `FlowRun.status` is the engine's run state (`RunStatus`) plus
what Kubernetes users expect: conditions with observedGeneration.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import KubeModel
from .flow import OpenFlow
from .run import RestartFrom, RunStatus

GROUP = "millrace.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class Toleration(KubeModel):
    model_config = KubeModel.model_config | {"extra": "allow"}

    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None
    toleration_seconds: int | None = None


class SharedStorage(KubeModel):
    """The per-run volume mounted at ./shared when the flow has `same_worker`."""

    size: str = "1Gi"
    storage_class_name: str | None = None
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] = "ReadWriteOnce"


class Runtime(KubeModel):
    """Where and how step pods run."""

    images: dict[str, str] = Field(default_factory=dict, description=(
        "Image per step language (python3, bash, bun, deno, go, postgresql, mysql, duckdb; "
        "program: the containers around a program step's own image)."))
    resources: dict[str, Any] | None = Field(default=None, description="Container resources of every step pod.")
    service_account_name: str | None = Field(default=None, description="A ServiceAccount the operator's step policy allows.")
    node_selector: dict[str, str] | None = None
    tolerations: list[Toleration] | None = None
    security_context: dict[str, Any] | None = Field(
        default=None, description="Container securityContext over the restricted one, within the operator's step policy.")
    shared: SharedStorage = Field(default_factory=SharedStorage)
    active_deadline_seconds: int | None = Field(default=None, description="Upper bound for any one step pod.")


class Schedule(KubeModel):
    """When the operator starts runs of a flow by itself (CronJob's fields and rules)."""

    cron: str = Field(description="Five fields, Windmill's six with seconds first, or @hourly, @daily, ...")
    timezone: str = Field(default="UTC", description="IANA timezone the cron times are wall-clock times of.")
    args: dict[str, Any] = Field(default_factory=dict)
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Allow"
    starting_deadline_seconds: int | None = Field(default=None, ge=0,
                                                  description="A fire time missed by more than this is not started.")
    successful_runs_history_limit: int = Field(default=3, ge=0)
    failed_runs_history_limit: int = Field(default=1, ge=0)
    suspend: bool = False


class SecretKeyRef(KubeModel):
    name: str
    key: str = "token"


class Webhook(KubeModel):
    """Starting the flow by an HTTP POST to the operator (docs/triggers.md, Webhooks)."""

    token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="A Secret labelled millrace.dev/kind=webhook-token holding the bearer token.")
    signed_url: bool = Field(default=False, description="Also accept a signed URL, kept in the Secret <flow>-webhook-url.")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1, le=16 * 1024 * 1024)


class FlowSpec(OpenFlow):
    """OpenFlow, verbatim, plus Kubernetes-only settings."""

    runtime: Runtime | None = None
    schedule: Schedule | None = None
    webhook: Webhook | None = None


class Condition(KubeModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: str | None = None


class ScheduleRecord(KubeModel):
    """What the operator keeps to apply a schedule's rules."""

    cron: str | None = None
    since: str | None = Field(default=None, description="When this cron took effect: no run is started for earlier times.")
    held_back: str | None = Field(default=None, description="Why a due run waits (concurrencyPolicy Forbid).")


class FlowStatus(KubeModel):
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    last_run: str | None = Field(default=None, description="The newest run the schedule started.")
    last_run_phase: str | None = Field(default=None, description="Its phase; Skipped when a trigger found nothing new.")
    last_schedule_time: str | None = None
    next_schedule_time: str | None = None
    schedule: ScheduleRecord | None = None
    webhook_url: str | None = Field(default=None, description="Where a POST starts a run (with the bearer token).")


class FlowRef(KubeModel):
    name: str


class FlowRunSpec(KubeModel):
    flow_ref: FlowRef | None = None
    flow: FlowSpec | None = Field(default=None, description="An inline flow, instead of flowRef.")
    args: dict[str, Any] = Field(default_factory=dict)
    args_secret: str | None = Field(
        default=None, description="A Secret owned by this FlowRun whose `args` key holds more args (JSON): "
                                  "how an inner flow gets args that may hold secret values.")
    cancel: bool = False
    preprocess: bool = Field(default=False, description="args hold a trigger's event for the flow's preprocessor_module "
                                                        "(set by the operator for webhook runs).")
    depth: int = Field(default=0, description="How deep an inner flow's child run is nested (set by the operator).")
    timeout_s: float | None = Field(default=None, description="A bound on every step's timeout (set by the operator "
                                                               "for an inner flow's child run).")
    restart_from: RestartFrom | None = Field(
        default=None, description="Run from this top-level step of an earlier FlowRun of the same Flow, with that "
                                  "run's args and the results of the steps before it (copied into this run's status).")


class FlowRunStatus(RunStatus):
    """The engine's run state, plus Kubernetes conventions."""

    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    flow: str | None = Field(default=None, description="For `kubectl get`: the Flow it runs, or `(inline)` and the "
                                                        "inline flow's summary.")
    current_step: str | None = Field(default=None, description="For `kubectl get`: the step running now.")
    start_time: str | None = Field(default=None, description="For `kubectl get`: startedAt as an RFC 3339 time.")
    duration: str | None = None
    applied_resumes: list[str] = Field(default_factory=list, description="Resume requests already applied.")
    result_ref: str | None = Field(default=None, description="The ConfigMap holding the result when it is larger "
                                                              "than the status keeps (data.report).")
