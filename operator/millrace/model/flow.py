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
    type: Literal["static"] = Field(description="static: the value as written.")
    value: Any = Field(default=None, description="The argument's value.")


class JavascriptTransform(OpenFlowModel):
    type: Literal["javascript"] = Field(description="javascript: the value of a JavaScript expression.")
    expr: str = Field(description="JavaScript over flow_input, results, previous_result, iter...")


InputTransform = Annotated[
    Union[StaticTransform, JavascriptTransform], Field(discriminator="type")
]


class StopAfterIf(OpenFlowModel):
    expr: str = Field(description="JavaScript: true stops the flow (or loop) after this step.")
    skip_if_stopped: bool | None = Field(default=None, description="Mark the stopped flow as skipped.")
    error_message: str | None = Field(default=None, description="Fail the flow with this message instead of ending it as a success.")
    error_include_result: bool = Field(default=False, description="Put the step's result in the error's result.")


class SkipIf(OpenFlowModel):
    expr: str = Field(description="JavaScript: true skips the step (its result is the previous result).")


class ConstantRetry(OpenFlowModel):
    attempts: int = Field(default=0, description="Retries after a failure.")
    seconds: float = Field(default=0, description="Wait before each retry.")


class ExponentialRetry(OpenFlowModel):
    attempts: int = Field(default=0, description="Retries after the constant ones.")
    multiplier: float = Field(default=1, description="The wait is multiplier * seconds ** n after failure n.")
    seconds: float = Field(default=0, description="The base of the exponential wait.")
    random_factor: float | None = Field(default=None, ge=0, le=100, description="Jitter: up to this percentage of the wait, 0-100.")


class RetryIf(OpenFlowModel):
    expr: str = Field(description="JavaScript over result (the error object): true retries.")


class Retry(OpenFlowModel):
    constant: ConstantRetry | None = Field(default=None, description="Retries with a fixed wait, first.")
    exponential: ExponentialRetry | None = Field(default=None, description="Retries with a growing wait, after the constant ones.")
    retry_if: RetryIf | None = Field(default=None, description="JavaScript over result (the error): false stops retrying.")


class ResumeForm(OpenFlowModel):
    schema_: dict[str, Any] | None = Field(default=None, alias="schema", description="JSON schema the resume payload must satisfy.")


class Suspend(OpenFlowModel):
    required_events: int | None = Field(default=None, description="Approvals needed before the flow goes on (0: no suspension).")
    timeout: int | None = Field(default=None, description="Seconds to wait for the approvals (default 1800), then the step fails.")
    resume_form: ResumeForm | None = Field(default=None, description="The form of the resume payload.")
    user_auth_required: bool | None = Field(default=None, description="Only signed-in users may approve.")
    user_groups_required: InputTransform | None = Field(default=None, description="Groups whose members may approve.")
    self_approval_disabled: bool | None = Field(default=None, description="The user who started the run may not approve it.")
    hide_cancel: bool | None = Field(default=None, description="Windmill's approval page shows no cancel button.")
    continue_on_disapprove_timeout: bool | None = Field(default=None, description="Go on after a disapproval or timeout, with the error as resume.")
    # How Windmill's approval page looks: presentation only.
    skin: str | None = Field(default=None, description="How Windmill's approval page looks (presentation only).")


class Mock(OpenFlowModel):
    enabled: bool | None = Field(default=None, description="Do not run the step: return return_value.")
    return_value: Any = Field(default=None, description="The mocked step's result.")


class RawScript(OpenFlowModel):
    type: Literal["rawscript"] = Field(description="rawscript: a script written inline.")
    content: str | None = Field(default=None, description="The script's code.")
    language: str = Field(description="python3, bash, bun, deno, go, postgresql, mysql, duckdb...")
    input_transforms: dict[str, InputTransform] = Field(default_factory=dict, description="Argument name -> how its value is computed: {type: static, value} or {type: javascript, expr}.")
    path: str | None = Field(default=None, description="The script's Windmill path, for reference.")
    lock: str | None = Field(default=None, description="Windmill's lock of the script's dependencies.")
    tag: str | None = Field(default=None, description="Windmill worker tag.")
    is_trigger: bool | None = Field(default=None, description="Windmill: the script is a trigger script (keeps state between runs).")
    concurrent_limit: float | None = Field(default=None, description="Windmill: at most this many runs of the script at once.")
    concurrency_time_window_s: float | None = Field(default=None, description="Windmill: the window concurrent_limit counts in.")
    custom_concurrency_key: str | None = Field(default=None, description="Windmill: the key concurrent_limit counts by.")


class PathScript(OpenFlowModel):
    type: Literal["script"] = Field(description="script: a workspace script, by path.")
    path: str = Field(description="The script's Windmill path (u/..., f/...).")
    input_transforms: dict[str, InputTransform] = Field(default_factory=dict, description="Argument name -> how its value is computed: {type: static, value} or {type: javascript, expr}.")
    hash: str | None = Field(default=None, description="A version of the script, by hash.")
    tag_override: str | None = Field(default=None, description="Windmill worker tag instead of the script's.")
    is_trigger: bool | None = Field(default=None, description="Windmill: the script is a trigger script (keeps state between runs).")
    pass_flow_input_directly: bool | None = Field(default=None, description="Pass the flow's input to the step as its arguments, unchanged.")


class PathFlow(OpenFlowModel):
    type: Literal["flow"] = Field(description="flow: an inner flow, by path (the Flow named after it).")
    path: str = Field(description="The inner flow's Windmill path: f/a/b is the Flow f-a-b.")
    input_transforms: dict[str, InputTransform] = Field(default_factory=dict, description="Argument name -> how its value is computed: {type: static, value} or {type: javascript, expr}.")
    pass_flow_input_directly: bool | None = Field(default=None, description="Pass the flow's input to the step as its arguments, unchanged.")


class ForloopFlow(OpenFlowModel):
    type: Literal["forloopflow"] = Field(description="forloopflow: the steps once per item of the iterator.")
    modules: list[FlowModule] = Field(description="The steps, in order.")
    iterator: InputTransform = Field(description="The items: {type: javascript, expr} or {type: static, value}.")
    # Windmill's defaults (flows.rs, FlowModuleValue's deserializer): a for loop skips
    # failures unless told not to, a while loop does not.
    skip_failures: bool = Field(default=True, description="A failed iteration gives its error as its result instead of failing the loop.")
    parallel: bool = Field(default=False, description="Run the parts (iterations, branches) in parallel.")
    parallelism: InputTransform | int | None = Field(default=None, description="At most this many iterations at once (a number or a transform).")


class WhileloopFlow(OpenFlowModel):
    type: Literal["whileloopflow"] = Field(description="whileloopflow: the steps again until a stop_after_if ends the loop.")
    modules: list[FlowModule] = Field(description="The steps, in order.")
    skip_failures: bool = Field(default=False, description="A failed iteration gives its error as its result instead of failing the loop.")
    parallel: bool = Field(default=False, description="Run the parts (iterations, branches) in parallel.")
    parallelism: InputTransform | int | None = Field(default=None, description="At most this many iterations at once (a number or a transform).")


class BranchOneBranch(OpenFlowModel):
    expr: str = Field(description="JavaScript: the first branch whose expression is true runs.")
    modules: list[FlowModule] = Field(description="The steps, in order.")
    summary: str | None = Field(default=None, description="A short title.")
    # Windmill keeps one branch shape for both branch kinds; on a branchone these do nothing.
    skip_failure: bool | None = Field(default=None, description="Ignored on branchone (one branch shape serves both kinds).")
    parallel: bool | None = Field(default=None, description="Ignored on branchone (one branch shape serves both kinds).")


class BranchOne(OpenFlowModel):
    type: Literal["branchone"] = Field(description="branchone: the first branch whose expr is true, else default.")
    branches: list[BranchOneBranch] = Field(description="Tried in order.")
    default: list[FlowModule] = Field(default_factory=list, description="The steps when no branch's expr is true.")


class BranchAllBranch(OpenFlowModel):
    modules: list[FlowModule] = Field(description="The steps, in order.")
    # Windmill's default (flows.rs Branch, serde default_true): a failed branch keeps its error.
    skip_failure: bool = Field(default=True, description="A failed branch gives its error as its result instead of failing.")
    summary: str | None = Field(default=None, description="A short title.")
    parallel: bool | None = Field(default=None, description="Ignored per branch: the branchall's parallel decides.")
    # Windmill keeps one branch shape for both branch kinds; a branchall runs every branch.
    expr: str | None = Field(default=None, description="Ignored on branchall: every branch runs.")


class BranchAll(OpenFlowModel):
    type: Literal["branchall"] = Field(description="branchall: every branch; the result is the list of their results.")
    branches: list[BranchAllBranch] = Field(description="All of them run.")
    # Windmill's default (flows.rs FlowModuleValue::BranchAll): parallel.
    parallel: bool = Field(default=True, description="Run the parts (iterations, branches) in parallel.")


class Identity(OpenFlowModel):
    type: Literal["identity"] = Field(description="identity: passes the previous result on.")
    flow: bool | None = Field(default=None, description="Windmill: marks an identity step standing for a flow.")


class AiAgent(OpenFlowModel):
    type: Literal["aiagent"] = Field(description="aiagent: a Windmill AI agent step (not supported here; validation says so).")
    input_transforms: dict[str, InputTransform] = Field(default_factory=dict, description="Argument name -> how its value is computed: {type: static, value} or {type: javascript, expr}.")
    tools: list[Any] = Field(default_factory=list, description="The agent's tools.")
    parallel: bool | None = Field(default=None, description="Run the parts (iterations, branches) in parallel.")


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
    id: str = Field(description="The step's id, unique in the flow: results.<id>; no '/'.")
    value: ModuleValue = Field(description="What the step is: rawscript, script, flow, forloopflow, whileloopflow, branchone, branchall, identity.")
    summary: str | None = Field(default=None, description="A short title.")
    stop_after_if: StopAfterIf | None = Field(default=None, description="End the flow (or loop iteration) after this step when expr is true.")
    stop_after_all_iters_if: StopAfterIf | None = Field(default=None, description="On loops and branchall: tested once with the array of results.")
    skip_if: SkipIf | None = Field(default=None, description="Skip the step when expr is true.")
    sleep: InputTransform | None = Field(default=None, description="Seconds to wait after the step (a transform that sees its result).")
    cache_ttl: float | None = Field(default=None, description="Windmill: seconds a result is cached.")
    timeout: InputTransform | int | None = Field(default=None, description="Seconds the step may run (a number or a transform); bounds every step inside a container.")
    delete_after_use: bool | None = Field(default=None, description="Windmill: drop the step's result once the flow no longer needs it.")
    mock: Mock | None = Field(default=None, description="Return a fixed result instead of running the step.")
    suspend: Suspend | None = Field(default=None, description="Wait for approvals after the step.")
    priority: float | None = Field(default=None, description="Windmill: queue priority.")
    continue_on_error: bool | None = Field(default=None, description="A failure becomes the step's result ({error: ...}) and the flow goes on.")
    retry: Retry | None = Field(default=None, description="Run the step again after a failure.")
    cache_ignore_s3_path: bool | None = Field(default=None, description="Windmill: leave S3 paths out of the cache key.")
    delete_after_secs: int | None = Field(default=None, description="Windmill: delete the step's logs and result after this many seconds.")
    pass_flow_input_directly: bool | None = Field(default=None, description="Pass the flow's input to the step as its arguments, unchanged.")
    apply_preprocessor: bool | None = Field(default=None, description="Windmill: run the inner flow's preprocessor.")
    debouncing: dict[str, Any] | None = Field(default=None, description="Windmill: debounce settings of the step.")


class FlowValue(OpenFlowModel):
    modules: list[FlowModule] = Field(description="The steps, in order.")
    failure_module: FlowModule | None = Field(default=None, description="The step run when the flow fails; it sees the error.")
    preprocessor_module: FlowModule | None = Field(default=None, description="The step that turns a trigger's event into the flow input.")
    same_worker: bool | None = Field(default=None, description="Steps share a ./shared directory (a volume per run in the cluster).")
    concurrent_limit: float | None = Field(default=None, description="Windmill: at most this many runs of the flow at once.")
    concurrency_key: str | None = Field(default=None, description="Windmill: the key concurrent_limit counts by.")
    concurrency_time_window_s: float | None = Field(default=None, description="Windmill: the window concurrent_limit counts in.")
    debounce_key: str | None = Field(default=None, description="Windmill: runs with the same key are debounced.")
    debounce_delay_s: float | None = Field(default=None, description="Windmill: seconds a debounced run waits.")
    max_total_debouncing_time: float | None = Field(default=None, description="Windmill: the longest a run is debounced.")
    max_total_debounces_amount: int | None = Field(default=None, description="Windmill: the most runs merged by debouncing.")
    debounce_args_to_accumulate: list[str] | None = Field(default=None, description="Windmill: arguments debouncing collects into lists.")
    skip_expr: str | None = Field(default=None, description="JavaScript over flow_input: true skips the whole run.")
    cache_ttl: float | None = Field(default=None, description="Windmill: seconds the flow's result is cached.")
    flow_env: dict[str, str] | None = Field(default=None, description="Environment variables of every step.")
    priority: float | None = Field(default=None, description="Windmill: queue priority.")
    early_return: str | None = Field(default=None, description="A step id: the run's result as soon as that step ends.")


class OpenFlow(OpenFlowModel):
    summary: str = Field(default="", description="A short title of the flow.")
    description: str | None = Field(default=None, description="What the flow does.")
    value: FlowValue = Field(description="The flow's steps and flow-wide settings.")
    schema_: dict[str, Any] | None = Field(default=None, alias="schema", description="JSON schema of the flow input (its args).")


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
