"""The Windmill OpenFlow document as pydantic models, field names verbatim.

The shapes follow Windmill's openflow.openapi.yaml. Every option that can
change a run's outcome is modelled explicitly; whether the engine supports
it is decided by `millrace.engine.validate`, never by silently dropping it.
"""

from __future__ import annotations

from typing import Annotated, Any, Iterator, Literal, Union

from pydantic import Field

from .base import OpenFlowModel


class StaticTransform(OpenFlowModel):
    type: Literal["static"]
    value: Any = None


class JavascriptTransform(OpenFlowModel):
    type: Literal["javascript"]
    expr: str


InputTransform = Annotated[
    Union[StaticTransform, JavascriptTransform], Field(discriminator="type")
]


class StopAfterIf(OpenFlowModel):
    expr: str
    skip_if_stopped: bool | None = None
    error_message: str | None = None
    error_include_result: bool = False


class SkipIf(OpenFlowModel):
    expr: str


class ConstantRetry(OpenFlowModel):
    attempts: int = 0
    seconds: float = 0


class ExponentialRetry(OpenFlowModel):
    attempts: int = 0
    multiplier: float = 1
    seconds: float = 0
    random_factor: float | None = Field(default=None, ge=0, le=100)


class RetryIf(OpenFlowModel):
    expr: str


class Retry(OpenFlowModel):
    constant: ConstantRetry | None = None
    exponential: ExponentialRetry | None = None
    retry_if: RetryIf | None = None


class ResumeForm(OpenFlowModel):
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


class Suspend(OpenFlowModel):
    required_events: int | None = None
    timeout: int | None = None
    resume_form: ResumeForm | None = None
    user_auth_required: bool | None = None
    user_groups_required: InputTransform | None = None
    self_approval_disabled: bool | None = None
    hide_cancel: bool | None = None
    continue_on_disapprove_timeout: bool | None = None
    # How Windmill's approval page looks: presentation only.
    skin: str | None = None


class Mock(OpenFlowModel):
    enabled: bool | None = None
    return_value: Any = None


class RawScript(OpenFlowModel):
    type: Literal["rawscript"]
    content: str | None = None
    language: str
    input_transforms: dict[str, InputTransform] = Field(default_factory=dict)
    path: str | None = None
    lock: str | None = None
    tag: str | None = None
    is_trigger: bool | None = None
    concurrent_limit: float | None = None
    concurrency_time_window_s: float | None = None
    custom_concurrency_key: str | None = None


class PathScript(OpenFlowModel):
    type: Literal["script"]
    path: str
    input_transforms: dict[str, InputTransform] = Field(default_factory=dict)
    hash: str | None = None
    tag_override: str | None = None
    is_trigger: bool | None = None
    pass_flow_input_directly: bool | None = None


class PathFlow(OpenFlowModel):
    type: Literal["flow"]
    path: str
    input_transforms: dict[str, InputTransform] = Field(default_factory=dict)
    pass_flow_input_directly: bool | None = None


class ForloopFlow(OpenFlowModel):
    type: Literal["forloopflow"]
    modules: list[FlowModule]
    iterator: InputTransform
    skip_failures: bool = False
    parallel: bool = False
    parallelism: InputTransform | int | None = None


class WhileloopFlow(OpenFlowModel):
    type: Literal["whileloopflow"]
    modules: list[FlowModule]
    skip_failures: bool = False
    parallel: bool = False
    parallelism: InputTransform | int | None = None


class BranchOneBranch(OpenFlowModel):
    expr: str
    modules: list[FlowModule]
    summary: str | None = None
    # Windmill keeps one branch shape for both branch kinds; on a branchone these do nothing.
    skip_failure: bool | None = None
    parallel: bool | None = None


class BranchOne(OpenFlowModel):
    type: Literal["branchone"]
    branches: list[BranchOneBranch]
    default: list[FlowModule] = Field(default_factory=list)


class BranchAllBranch(OpenFlowModel):
    modules: list[FlowModule]
    skip_failure: bool = False
    summary: str | None = None
    parallel: bool | None = None
    # Windmill keeps one branch shape for both branch kinds; a branchall runs every branch.
    expr: str | None = None


class BranchAll(OpenFlowModel):
    type: Literal["branchall"]
    branches: list[BranchAllBranch]
    # Windmill's default (flows.rs FlowModuleValue::BranchAll): parallel.
    parallel: bool = True


class Identity(OpenFlowModel):
    type: Literal["identity"]
    flow: bool | None = None


class AiAgent(OpenFlowModel):
    type: Literal["aiagent"]
    input_transforms: dict[str, InputTransform] = Field(default_factory=dict)
    tools: list[Any] = Field(default_factory=list)
    parallel: bool | None = None


ModuleValue = Annotated[
    Union[
        RawScript,
        PathScript,
        PathFlow,
        ForloopFlow,
        WhileloopFlow,
        BranchOne,
        BranchAll,
        Identity,
        AiAgent,
    ],
    Field(discriminator="type"),
]

LoopValue = ForloopFlow | WhileloopFlow
ScriptValue = RawScript | PathScript


class FlowModule(OpenFlowModel):
    id: str
    value: ModuleValue
    summary: str | None = None
    stop_after_if: StopAfterIf | None = None
    stop_after_all_iters_if: StopAfterIf | None = None
    skip_if: SkipIf | None = None
    sleep: InputTransform | None = None
    cache_ttl: float | None = None
    timeout: InputTransform | int | None = None
    delete_after_use: bool | None = None
    mock: Mock | None = None
    suspend: Suspend | None = None
    priority: float | None = None
    continue_on_error: bool | None = None
    retry: Retry | None = None
    cache_ignore_s3_path: bool | None = None
    delete_after_secs: int | None = None
    pass_flow_input_directly: bool | None = None
    apply_preprocessor: bool | None = None
    debouncing: dict[str, Any] | None = None


class FlowValue(OpenFlowModel):
    modules: list[FlowModule]
    failure_module: FlowModule | None = None
    preprocessor_module: FlowModule | None = None
    same_worker: bool | None = None
    concurrent_limit: float | None = None
    concurrency_key: str | None = None
    concurrency_time_window_s: float | None = None
    debounce_key: str | None = None
    debounce_delay_s: float | None = None
    max_total_debouncing_time: float | None = None
    max_total_debounces_amount: int | None = None
    debounce_args_to_accumulate: list[str] | None = None
    skip_expr: str | None = None
    cache_ttl: float | None = None
    flow_env: dict[str, str] | None = None
    priority: float | None = None
    early_return: str | None = None


class OpenFlow(OpenFlowModel):
    summary: str = ""
    description: str | None = None
    value: FlowValue
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


for _model in (ForloopFlow, WhileloopFlow, BranchOneBranch, BranchOne, BranchAllBranch):
    _model.model_rebuild()


def walk_modules(modules: list[FlowModule], extra: FlowModule | None = None) -> Iterator[FlowModule]:
    """Every module of a flow, nested ones included, then `extra` (the failure module)."""
    for module in [*modules, *([extra] if extra else [])]:
        yield module
        value = module.value
        for attr in ("modules", "default"):
            yield from walk_modules(getattr(value, attr, None) or [])
        for branch in getattr(value, "branches", None) or []:
            yield from walk_modules(branch.modules)


KUBERNETES_ONLY_FIELDS = ("runtime", "schedule", "webhook")


def openflow_of(spec: dict[str, Any]) -> dict[str, Any]:
    """The OpenFlow document of a Flow spec: its Kubernetes-only settings left out."""
    return {k: v for k, v in spec.items() if k not in KUBERNETES_ONLY_FIELDS}
