"""Restart a run from a step: the steps before it keep an earlier run's recorded results.

Windmill's restart (windmill-queue jobs.rs `restarted_flows_resolution`):
only top-level steps count; every top-level step before STEP must have
succeeded in the earlier run, and is carried over as it is (its result, and
so the `previous_result` of the step after it); STEP and everything after it
run again; the failure module is not carried over; the new run gets the
earlier run's inputs. Windmill resolves the step in the flow the new run
uses (a given `flow_version` may differ from the earlier run's): so does
millrace, with the flow the new run is given. Windmill's
`branch_or_iteration_n` (restart a sequential loop or branch-all at one of
its iterations) is not supported: STEP names a whole top-level step.

Pure: the shells read the earlier run's state (with its offloaded values put
back) and give it here; what comes back is the state the new run starts
from, carrying its own copy of every reused value.
"""

from __future__ import annotations

from ..errors import Problem
from ..model.flow import OpenFlow, walk_modules
from ..model.run import RestartFrom, RunStatus, StepState

# Copies keep no reference to the earlier run's records (ConfigMaps in a cluster): the new run keeps its own.
_REFS = {"result_ref": None, "items_ref": None, "result_parts": None}
_ENDED = ("Succeeded", "Skipped")


class RestartError(Exception):
    """A restart that cannot be done, located by flow, step and field."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def restarted(flow_name: str, flow: OpenFlow, source_flow: str, source: RunStatus, restart: RestartFrom,
              fields: tuple[str, str] = ("restartFrom.run", "restartFrom.step")) -> RunStatus:
    """The state a run of `flow` starts from when it restarts `source` (a run of `source_flow`) at
    `restart.step`. RestartError names the field of the run or of the step (`fields`) when it cannot."""
    step = restart.step

    def refuse(message: str, which: str) -> RestartError:
        return RestartError(Problem(flow_name, message, step=step if which == "step" else None,
                                    field=fields[0] if which == "run" else fields[1]))

    if source_flow != flow_name:
        raise refuse(f"run '{restart.run}' is a run of flow '{source_flow}', not of this flow", "run")
    if not source.terminal:
        raise refuse(f"run '{restart.run}' has not ended ({source.phase.lower()}): restart a run that ended", "run")
    modules = flow.value.modules
    ids = [m.id for m in modules]
    if step not in ids:
        raise refuse(_unknown(flow, step), "step")
    position = ids.index(step)
    for module in modules[:position]:
        st = source.steps.get(module.id)
        if st is None:
            raise refuse(f"run '{restart.run}' never reached step '{module.id}', which comes before it", "step")
        failed_on = st.phase == "Failed" and st.final and module.continue_on_error and not st.stopped
        if st.phase not in _ENDED and not failed_on:
            raise refuse(f"step '{module.id}' before it did not succeed in run '{restart.run}' ({st.phase.lower()}): "
                         f"restart from '{module.id}' or before", "step")
        if st.stopped:
            raise refuse(f"run '{restart.run}' stopped early after step '{module.id}' (stop_after_if), "
                         "so nothing after it ran", "step")
        if st.type != module.value.type:
            raise refuse(f"step '{module.id}' is a {module.value.type} step in this flow but was a {st.type} step "
                         f"in run '{restart.run}': its recorded result does not fit", "step")
    if step not in source.steps:
        raise refuse(f"run '{restart.run}' never reached step '{step}'", "step")
    reused = set(ids[:position])
    steps = {path: st for path, st in source.steps.items() if path.split("/", 1)[0] in reused}
    for path, st in steps.items():
        if st.result_ref and st.result is None:
            raise refuse(f"the result of step '{path}' in run '{restart.run}' is kept in {st.result_ref}, "
                         "which could not be read", "run")
    steps = {path: _copy(st) for path, st in steps.items()}
    return RunStatus(args=dict(source.args), steps=steps, restarted_from=restart)


def _unknown(flow: OpenFlow, step: str) -> str:
    """Why `step` cannot be restarted from: nested in a top-level step, or not in the flow at all."""
    for top in flow.value.modules:
        if any(m.id == step for m in walk_modules([top])):
            return (f"step '{step}' is inside step '{top.id}': a run restarts from a top-level step "
                    f"(restart from '{top.id}')")
    if flow.value.failure_module is not None and flow.value.failure_module.id == step:
        return "the failure module is not a step to restart from: it runs again when the restarted run fails"
    return "no such top-level step in the flow"


def _copy(st: StepState) -> StepState:
    loop = st.loop.model_copy(update={"chunk_refs": {}, "pending_refs": {}}) if st.loop is not None else None
    return st.model_copy(update={**_REFS, "loop": loop}, deep=True)
