"""One step on its own, as Windmill's per-step preview runs it: which attempt to start, and with what.

Pure: the flow inputs and the earlier steps' results are given. The step's
input transforms see `flow_input` = the inputs (with the schema's defaults;
a step inside a loop reads `flow_input.iter` only if the inputs hold one),
`results.<id>` = the given results (a step not given reads as null, as in a
run), and `previous_result` = the given result of the step before it in its
sequence, or the inputs for the first step of a sequence (as a run's first
step sees them). Only a script step (inline or by path) can be previewed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import FlowError, Problem
from ..model.flow import FlowModule, OpenFlow, PathScript, RawScript, walk_modules
from .actions import RunStep
from .evaluate import Evaluator, Frame, StepFailure
from .inputs import InputError, validate_inputs
from .library import Library
from .walker import script_code


def _sequences(flow: OpenFlow) -> Iterator[list[FlowModule]]:
    """Every sequence of modules: the flow's, its failure and preprocessor modules, loop bodies, branches."""
    value = flow.value
    yield value.modules
    yield from ([m] for m in (value.failure_module, value.preprocessor_module) if m is not None)
    for module in walk_modules(value.modules, value.failure_module):
        for attr in ("modules", "default"):
            inner = getattr(module.value, attr, None)
            if inner:
                yield inner
        for branch in getattr(module.value, "branches", None) or []:
            yield branch.modules


def find_step(name: str, flow: OpenFlow, step_id: str) -> tuple[FlowModule, FlowModule | None]:
    """The step and the step before it in its sequence (None for a first step); FlowError when there is none."""
    for sequence in _sequences(flow):
        for index, module in enumerate(sequence):
            if module.id == step_id:
                return module, sequence[index - 1] if index else None
    raise FlowError.single(name, "the flow has no step with this id", step=step_id)


def preview_action(name: str, flow: OpenFlow, library: Library, evaluator: Evaluator, step_id: str,
                   inputs: dict[str, Any], results: dict[str, Any]) -> RunStep:
    """The attempt that previews `step_id`; FlowError naming flow, step and field when it cannot start."""
    module, before = find_step(name, flow, step_id)
    if not isinstance(module.value, (RawScript, PathScript)):
        raise FlowError([Problem(name, f"only a script step can be previewed, not a '{module.value.type}' module",
                                 step=step_id, field="value.type")])
    try:
        flow_input = validate_inputs(flow.schema_, inputs)
    except InputError as exc:
        raise FlowError([Problem(name, str(exc), field=f"args.{exc.field}" if exc.field else "args")]) from None
    previous = results.get(before.id) if before is not None else flow_input
    frame = Frame(flow_input=flow_input, results=dict(results), previous_result=previous)
    try:
        script = script_code(module, library, step_id)
        args = {key: evaluator.transform(transform, frame, step_id, f"input_transforms.{key}", params={})
                for key, transform in module.value.input_transforms.items()}
        timeout = module.timeout
        if timeout is not None and not isinstance(timeout, (int, float)):
            timeout = evaluator.transform(timeout, frame, step_id, "timeout")
    except StepFailure as failure:
        raise FlowError([Problem(name, f"{failure.error.name}: {failure.error.message}", step=step_id)]) from None
    if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)):
        raise FlowError([Problem(name, f"must be a number, got {timeout!r}", step=step_id, field="timeout")])
    return RunStep(path=step_id, attempt=1, step_id=step_id, args=args,
                   timeout_s=float(timeout) if timeout is not None else None, **script.request_fields())
