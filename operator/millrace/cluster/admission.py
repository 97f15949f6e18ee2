"""What the validating webhook checks, and the Flow `Ready` condition: pure functions.

A Flow is checked exactly as `millrace validate` checks a manifest file, so
`kubectl apply` rejects it with the same messages. Scripts and flows that
steps reference by path are not resolved here unless a `Library` is given:
the webhook must not depend on the order in which objects are applied, so it
leaves them to the reconciler, which reports them in the Ready condition.

A FlowRun names its flow (`flowRef`) or holds one (`flow`), never both, and
its `args` must match that flow's schema. A FlowRun with `restartFrom` names
its Flow, has no args of its own (it gets the earlier run's), and its step is
a top-level step of that Flow; whether the earlier run may be restarted from
there is the reconciler's to check, which reads that run. The referenced Flow
is read through a lookup function so that this module never talks to the API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..engine.inputs import InputError, check_schema, unknown_args, validate_inputs
from ..engine.library import Library
from ..engine.validate import validate_flow
from ..errors import FlowError, Problem
from ..expressions import Sandbox
from ..schedule.policy import schedule_problems
from ..model.loader import API_VERSION, load_flow_document
from ..model.resources import Condition
from .policy import StepPolicy, runtime_problems, step_image_problems

READY = "Ready"

FlowLookup = Callable[[str], Mapping[str, Any] | None]
"""Flow name -> the Flow object of the FlowRun's namespace, or None when there is none."""


@dataclass(frozen=True)
class Review:
    """The verdict on one object: errors reject it, warnings are shown to the user."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.errors


def flow_problems(name: str, spec: Mapping[str, Any], sandbox: Sandbox,
                  library: Library | None = None, policy: StepPolicy | None = None) -> list[Problem]:
    """Every problem `millrace validate` would report for a Flow with this spec,
    and every `spec.runtime` setting the operator's step policy refuses.

    Without a `library`, references to scripts and flows by path are not
    checked (they may be applied later).
    """
    refused = runtime_problems(name, spec.get("runtime"), policy or StepPolicy())
    manifest = {"apiVersion": API_VERSION, "kind": "Flow", "metadata": {"name": name}, "spec": dict(spec)}
    try:
        loaded = load_flow_document(manifest, name)
    except FlowError as exc:
        return refused + exc.problems
    problems = (validate_flow(loaded, library, sandbox) + schedule_problems(name, spec)
                + step_image_problems(name, loaded.flow, library or Library(), policy or StepPolicy()))
    return refused + problems


def review_flow(name: str, spec: Mapping[str, Any], sandbox: Sandbox, policy: StepPolicy | None = None) -> Review:
    return _review(flow_problems(name, spec, sandbox, policy=policy))


def review_flowrun(name: str, spec: Mapping[str, Any], sandbox: Sandbox, lookup: FlowLookup,
                   policy: StepPolicy | None = None) -> Review:
    ref, inline = spec.get("flowRef"), spec.get("flow")
    if (ref is None) == (inline is None):
        return Review(errors=[f"flowrun '{name}': set exactly one of spec.flowRef (a Flow of this namespace) "
                              "and spec.flow (an inline flow)"])
    args = spec.get("args") or {}
    if spec.get("restartFrom") is not None:
        return _review_restart(name, spec, lookup)
    if inline is not None:
        review = review_flow(name, inline, sandbox, policy)
        if not review.allowed or spec.get("argsSecret"):
            # Args from a Secret are checked by the reconciler, which may read it.
            return review
        return _merge(review, _check_args(name, name, inline, args))
    assert ref is not None  # exactly one of the two is set, checked above
    flow_name = str(ref.get("name", ""))
    flow = lookup(flow_name)
    if flow is None:
        return Review(warnings=[f"flowrun '{name}': flow '{flow_name}' does not exist (yet) in this namespace"])
    if spec.get("argsSecret"):
        return Review()
    return _check_args(name, flow_name, flow.get("spec") or {}, args)


def _review_restart(name: str, spec: Mapping[str, Any], lookup: FlowLookup) -> Review:
    restart = spec["restartFrom"]
    errors = [f"flowrun '{name}': spec.{k}: a restarted run gets the args of the run it restarts, leave it out"
              for k in ("args", "argsSecret", "preprocess") if spec.get(k)]
    if spec.get("flow") is not None:
        errors.append(f"flowrun '{name}': spec.restartFrom restarts a run of the Flow spec.flowRef names: "
                      "it does not go with spec.flow")
    if restart.get("run") == name:
        errors.append(f"flowrun '{name}': spec.restartFrom.run: a run cannot restart itself")
    flow_name = str((spec.get("flowRef") or {}).get("name", ""))
    flow = lookup(flow_name) if spec.get("flowRef") else None
    step = restart.get("step")
    modules = (((flow or {}).get("spec") or {}).get("value") or {}).get("modules")
    # Ids the loader gives modules that have none are left to the reconciler.
    if modules is not None and all(isinstance(m, Mapping) and "id" in m for m in modules):
        if step not in [m["id"] for m in modules]:
            errors.append(f"flow '{flow_name}', step '{step}', field 'spec.restartFrom.step': no such top-level step "
                          "in the flow (a run restarts from a top-level step)")
    return Review(errors=errors)


def flow_ready_condition(name: str, spec: Mapping[str, Any], generation: int | None, sandbox: Sandbox,
                         library: Library | None = None, policy: StepPolicy | None = None) -> Condition:
    """The Flow's Ready condition: False with every error when it cannot run (the caller sets
    lastTransitionTime)."""
    problems = flow_problems(name, spec, sandbox, library, policy)
    errors = [str(p) for p in problems if not p.warning]
    if errors:
        return Condition(type=READY, status="False", reason="Invalid", message="\n".join(errors),
                         observed_generation=generation)
    return Condition(type=READY, status="True", reason="Valid", message="the flow passed validation",
                     observed_generation=generation)


def _check_args(run: str, flow_name: str, flow_spec: Mapping[str, Any], args: Any) -> Review:
    if not isinstance(args, dict):
        return Review(errors=[f"flowrun '{run}': spec.args must be an object"])
    schema = flow_spec.get("schema")
    if not isinstance(schema, dict) or check_schema(schema):
        # An unusable schema is the Flow's problem, reported on the Flow.
        return Review()
    try:
        validate_inputs(schema, args)
    except InputError as exc:
        return Review(errors=[f"flowrun '{run}': args do not match the schema of flow '{flow_name}': {exc}"])
    return Review(warnings=[f"flowrun '{run}': spec.{p.field}: {p.message}" for p in unknown_args(flow_name, schema, args)])


def _review(problems: list[Problem]) -> Review:
    return Review(errors=[str(p) for p in problems if not p.warning],
                  warnings=[str(p) for p in problems if p.warning])


def _merge(a: Review, b: Review) -> Review:
    return Review(errors=a.errors + b.errors, warnings=a.warnings + b.warnings)


def review_flowrun_update(name: str, old: Mapping[str, Any], new: Mapping[str, Any], sandbox: Sandbox,
                          lookup: FlowLookup, policy: StepPolicy | None = None) -> Review:
    """A FlowRun update: its spec is checked only when it changes in a way that matters.

    Metadata (finalizers, labels, annotations) and `spec.cancel` always
    pass: a run must stay cancellable and deletable whatever its flow has
    become since. Once the run started (it has a phase), the rest of its
    spec is fixed: the run pinned its flow and args when it started.
    """
    def meaningful(obj: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in (obj.get("spec") or {}).items() if k != "cancel"}

    before, after = meaningful(old), meaningful(new)
    if before == after:
        return Review()
    if ((old.get("status") or {}).get("phase")):
        changed = sorted(f"spec.{k}" for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        return Review(errors=[f"flowrun '{name}': the spec of a run that started is immutable except spec.cancel "
                              f"(changed: {', '.join(changed)}); create a new FlowRun instead"])
    return review_flowrun(name, new.get("spec") or {}, sandbox, lookup, policy)
