"""Every field of an OpenFlow document is honoured, refused or warned about.

The field sets follow Windmill's own types (windmill-types flows.rs:
FlowValue, FlowModule, FlowModuleValue, Branch, Retry, Suspend, StopAfterIf,
InputTransform), which accept more than openflow.openapi.yaml lists. Windmill
itself drops unknown keys; here a misspelt key inside a nested object
(`retry: {constant: {atempts: 3}}`) is an error, since it would silently
turn an option off. Unknown keys on a module, a module value or the flow are
warnings: the Windmill editor and CLI write many of them (COSMETIC_FIELDS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel

from ..model.base import OpenFlowModel
from ..model.flow import (
    BranchAll,
    BranchAllBranch,
    FlowModule,
    JavascriptTransform,
    OpenFlow,
    RawScript,
    ResumeForm,
    StaticTransform,
    WhileloopFlow,
)

Report = Callable[[str, str | None, str | None], None]
"""(message, step, field) -> None: how a check reports one problem."""

# Written by Windmill's editor or CLI, with no effect on what a run computes.
COSMETIC_FIELDS = frozenset({"summary", "description", "notes", "positions", "ws_error_handler_muted", "path",
                             "visible_to_runner_only", "on_behalf_of_email", "on_behalf_of", "tag", "assets",
                             "hash", "tag_override", "is_trigger", "discovered", "ws_specific", "edited_by",
                             "edited_at", "archived", "extra_perms", "draft_only", "dedicated_worker",
                             "chat_input_enabled", "has_preprocessor", "labels", "preserve_step_tags"})

# A transform's type decides which of `value` and `expr` counts; Windmill reads
# both keys for either type (UntaggedInputTransform) and ignores the other one,
# which its editor leaves behind when a transform's type is switched.
_EDITOR_LEFTOVERS: dict[type[BaseModel], frozenset[str]] = {
    StaticTransform: frozenset({"expr"}),
    JavascriptTransform: frozenset({"value"}),
}

# Options that affect scheduling, caching or placement only: accepted, not honoured.
IGNORED_MODULE_OPTIONS = ("cache_ttl", "cache_ignore_s3_path", "priority", "delete_after_use", "delete_after_secs",
                          "debouncing")
IGNORED_FLOW_OPTIONS = ("concurrent_limit", "concurrency_key", "concurrency_time_window_s", "debounce_key",
                        "debounce_delay_s", "max_total_debouncing_time", "max_total_debounces_amount",
                        "debounce_args_to_accumulate", "cache_ttl", "priority")
IGNORED_RAWSCRIPT_OPTIONS = ("concurrent_limit", "concurrency_time_window_s", "custom_concurrency_key")
# Options that change what a run does, and are not implemented.
UNSUPPORTED_MODULE_OPTIONS = ("pass_flow_input_directly", "apply_preprocessor")
UNSUPPORTED_SUSPEND_OPTIONS = ("user_auth_required", "user_groups_required", "self_approval_disabled")
UNSUPPORTED_FLOW_OPTIONS = ("skip_expr", "flow_env")
# Known on the Flow object around the OpenFlow document, and not honoured.
_IGNORED_TOP_LEVEL = ("timeout",)
# Module options written one level too deep, inside `value`, where Windmill ignores them.
_MISPLACED_IN_VALUE = {name: f"'{name}' belongs on the module, beside 'value'" for name in
                       ("timeout", "retry", "sleep", "suspend", "skip_if", "mock", "continue_on_error",
                        "cache_ttl", "stop_after_if")}
_MISPLACED_IN_VALUE["skip_if_stopped"] = "'skip_if_stopped' belongs in the module's 'stop_after_if'"

NOT_HONOURED = "is accepted but not honoured by millrace"


def is_set(value: Any) -> bool:
    """Whether an option asks for something: Windmill writes null, false, 0 and '' for 'not set'."""
    return value not in (None, False, 0, "", [], {})


def check_flow_fields(flow: OpenFlow, error: Report, warn: Report) -> None:
    """The flow's own fields: unsupported, not honoured, unknown."""
    value = flow.value
    for option in UNSUPPORTED_FLOW_OPTIONS:
        if is_set(getattr(value, option)):
            error(f"'{option}' is not supported yet", None, f"value.{option}")
    for option in IGNORED_FLOW_OPTIONS:
        if is_set(getattr(value, option)):
            warn(f"'{option}' {NOT_HONOURED}", None, f"value.{option}")
    _loose_extras(flow, None, "", warn)
    _loose_extras(value, None, "value", warn)


def check_module_fields(module: FlowModule, path: str, error: Report, warn: Report) -> None:
    """One module's fields (not its children): unknown nested keys, unsupported and ignored options."""
    for option in UNSUPPORTED_MODULE_OPTIONS:
        if is_set(getattr(module, option)) or is_set(getattr(module.value, option, None)):
            where = option if is_set(getattr(module, option)) else f"value.{option}"
            error(f"'{option}' is not supported yet", path, where)
    for option in IGNORED_MODULE_OPTIONS:
        if is_set(getattr(module, option)):
            warn(f"'{option}' {NOT_HONOURED}", path, option)
    suspend = module.suspend
    if suspend is not None:
        for option in UNSUPPORTED_SUSPEND_OPTIONS:
            if is_set(getattr(suspend, option)):
                error(f"'suspend.{option}' is not supported yet: anyone with the run's resume URL or the CLI "
                      "can approve", path, f"suspend.{option}")
        if suspend.hide_cancel:
            warn(f"'suspend.hide_cancel' {NOT_HONOURED}: the run can still be cancelled", path, "suspend.hide_cancel")
    exponential = module.retry.exponential if module.retry else None
    if exponential is not None and exponential.attempts > 0 and exponential.seconds == 0:
        # Windmill refuses such a flow when it is saved (flows.rs validate_retry).
        error("an exponential retry needs 'seconds' greater than 0: a base of 0 would retry at once",
              path, "retry.exponential.seconds")
    _loose_extras(module, path, "", warn)
    _loose_extras(module.value, path, "value", warn)
    for fld, nested in _nested_models(module):
        _strict_extras(nested, path, fld, error, warn)
    _value_fields(module, path, warn)


def _value_fields(module: FlowModule, path: str, warn: Report) -> None:
    value = module.value
    if isinstance(value, RawScript):
        for option in IGNORED_RAWSCRIPT_OPTIONS:
            if is_set(getattr(value, option)):
                warn(f"'{option}' {NOT_HONOURED}: steps are not limited in how many run at once",
                     path, f"value.{option}")
        if is_set(value.lock) and value.language != "python3":
            # Python steps install from it (runtime/requirements.py); bun and deno resolve imports themselves.
            warn(f"'lock' {NOT_HONOURED} for {value.language} steps: the runtime resolves the imported "
                 "packages itself, not the pinned versions", path, "value.lock")
    elif isinstance(value, WhileloopFlow):
        # Windmill's while loop has no parallel mode: its FlowModuleValue::WhileloopFlow drops both keys.
        for option in ("parallel", "parallelism"):
            if is_set(getattr(value, option)):
                warn(f"'{option}' has no effect on a while loop (in Windmill either): iterations run one "
                     "after another", path, f"value.{option}")
    elif isinstance(value, BranchAll):
        for i, branch in enumerate(value.branches):
            _branchall_branch(branch, value.parallel, path, f"value.branches[{i}]", warn)


def _branchall_branch(branch: BranchAllBranch, parallel: bool, path: str, fld: str, warn: Report) -> None:
    # Windmill reads only the branchall's own `parallel` (push_next_flow_job, BranchAll); a
    # branch's flag says something only when it disagrees with that.
    if branch.parallel is not None and branch.parallel != parallel:
        warn(f"a branch's 'parallel' has no effect (in Windmill either): the branchall's own 'parallel' "
             f"({str(parallel).lower()}) decides", path, f"{fld}.parallel")
    if branch.expr:
        warn("a branch's 'expr' has no effect on a branchall (in Windmill either): every branch runs; "
             "use a branchone to choose", path, f"{fld}.expr")


def _nested_models(module: FlowModule) -> Iterator[tuple[str, OpenFlowModel]]:
    """Every object nested in a module, with its field path, child modules excluded."""
    for name in type(module).model_fields:
        if name != "value":
            yield from _walk(getattr(module, name), name)
    value = module.value
    for name in type(value).model_fields:
        if name not in ("modules", "default"):
            yield from _walk(getattr(value, name), f"value.{name}")


def _walk(node: Any, fld: str) -> Iterator[tuple[str, OpenFlowModel]]:
    if isinstance(node, FlowModule):
        return
    if isinstance(node, OpenFlowModel):
        yield fld, node
        for name in type(node).model_fields:
            if name != "modules":
                yield from _walk(getattr(node, name), f"{fld}.{_alias(node, name)}")
    elif isinstance(node, dict):
        for key, item in node.items():
            yield from _walk(item, f"{fld}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _walk(item, f"{fld}[{i}]")


def _alias(model: BaseModel, name: str) -> str:
    return type(model).model_fields[name].alias or name


def _known(model: BaseModel) -> list[str]:
    return sorted(_alias(model, name) for name in type(model).model_fields)


def _strict_extras(model: OpenFlowModel, path: str, fld: str, error: Report, warn: Report) -> None:
    leftovers = _EDITOR_LEFTOVERS.get(type(model), frozenset())
    for extra in sorted(set(model.model_extra or {}) - leftovers):
        message = f"unknown field (known: {', '.join(_known(model))})"
        if isinstance(model, ResumeForm):
            # Windmill keeps resume_form as free JSON and its approval page reads only `schema`.
            warn(f"unknown field has no effect (in Windmill either): only 'schema' is read; "
                 f"did you mean '{fld}.schema.{extra}'?", path, f"{fld}.{extra}")
        else:
            error(message, path, f"{fld}.{extra}")


def _loose_extras(model: BaseModel, path: str | None, prefix: str, warn: Report) -> None:
    for extra in sorted((model.model_extra or {}).keys()):
        if extra in COSMETIC_FIELDS:
            continue
        fld = f"{prefix}.{extra}" if prefix else extra
        if isinstance(model, OpenFlow) and extra in _IGNORED_TOP_LEVEL:
            warn(f"'{extra}' {NOT_HONOURED}", path, fld)
        elif prefix == "value" and path is not None and extra in _MISPLACED_IN_VALUE:
            warn(f"unknown field '{extra}' is ignored (in Windmill too): {_MISPLACED_IN_VALUE[extra]}", path, fld)
        else:
            warn(f"unknown field '{extra}' is ignored", path, fld)

