"""Input transforms and conditions, evaluated for one step in one scope.

Wraps the expression sandbox so that every failure becomes a step error
naming the field (`input_transforms.x`, `iterator`, `skip_if.expr`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..expressions import EvalContext, ExpressionError, Sandbox
from ..model.flow import JavascriptTransform, StaticTransform
from ..model.run import ErrorInfo

VARIABLE_PREFIX = "$var:"
RESOURCE_PREFIX = "$res:"


class StepFailure(Exception):
    """Raised inside the planner when a step fails before or without running."""

    def __init__(self, error: ErrorInfo) -> None:
        self.error = error
        super().__init__(error.message)


# What `resume`, `resumes` and `approvers` are for every step but the one right after
# an approval (Windmill: worker_flow.rs transform_input always binds them).
NO_APPROVAL: dict[str, Any] = {"resume": None, "resumes": [], "approvers": []}


@dataclass
class Frame:
    """What expressions of one module instance can see, and what its (sub-)flow
    passes down: the nesting depth of inner flows, the tightest timeout of the
    containers around it and the failure module of the flow it belongs to."""

    flow_input: dict[str, Any]
    results: dict[str, Any]
    previous_result: Any
    extra: dict[str, Any] = field(default_factory=dict)
    approval: dict[str, Any] = field(default_factory=lambda: dict(NO_APPROVAL))
    depth: int = 0
    timeout_s: float | None = None
    failure_module: Any = None
    # The attempt count a step first begun here starts from (above every attempt of a loop run before).
    base_attempt: int = 0
    # The suspension before this module was refused: the module fails with it without running.
    refused: ErrorInfo | None = None


@dataclass
class Evaluator:
    sandbox: Sandbox
    variables: Mapping[str, Any] = field(default_factory=dict)
    resources: Mapping[str, Any] = field(default_factory=dict)

    def transform(
        self, transform: Any, frame: Frame, path: str, field_name: str,
        params: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
    ) -> Any:
        if isinstance(transform, StaticTransform):
            return self._static(transform.value, path, field_name)
        if isinstance(transform, JavascriptTransform):
            return self.expression(transform.expr, frame, path, field_name, params=params, extra=extra)
        raise StepFailure(ErrorInfo(name="InputTransformError", message=f"{field_name}: unknown transform {transform!r}", step_id=path))

    def truthy(
        self, expr: str, frame: Frame, path: str, field_name: str, extra: dict[str, Any] | None = None
    ) -> bool:
        return _js_truthy(self.expression(expr, frame, path, field_name, extra=extra))

    def expression(
        self,
        expr: str,
        frame: Frame,
        path: str,
        field_name: str,
        params: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Any:
        ctx = EvalContext(
            flow_input=frame.flow_input,
            results=frame.results,
            previous_result=frame.previous_result,
            params=params,
            variables=self.variables,
            resources=self.resources,
            extra={**frame.approval, **frame.extra, **(extra or {})},
        )
        try:
            return self.sandbox.evaluate(expr, ctx)
        except ExpressionError as exc:
            raise StepFailure(ErrorInfo(name=type(exc).__name__, message=f"{field_name}: {exc}", step_id=path)) from None

    def _static(self, value: Any, path: str, field_name: str) -> Any:
        # Windmill writes references to variables and resources as static strings.
        if isinstance(value, str):
            for prefix, store, kind in ((VARIABLE_PREFIX, self.variables, "variable"), (RESOURCE_PREFIX, self.resources, "resource")):
                if value.startswith(prefix):
                    ref = value[len(prefix):]
                    if ref not in store:
                        raise StepFailure(ErrorInfo(name="NotFound", message=f"{field_name}: {kind} '{ref}' not found", step_id=path))
                    return store[ref]
        return value


def _js_truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON value (empty arrays and objects are truthy)."""
    if isinstance(value, (list, dict)):
        return True
    if isinstance(value, float) and value != value:
        return False
    return bool(value)
