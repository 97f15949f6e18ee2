"""What `get` and `describe` print, made from FlowRun objects: pure, no cluster."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from ...local.progress import loop_progress
from ...model.resources import FlowRunStatus
from ...model.run import StepState
from ...model.times import format_duration as took
from .errors import PluginError
from .times import age, epoch, rfc3339, span

RESULT_SHOWN = 500  # characters of a result `describe` prints
# The annotation on a FlowRun made by `retry`: the run it retries.
RETRY_OF = "millrace.dev/retry-of"


def status_of(obj: dict[str, Any]) -> FlowRunStatus:
    """The run state a FlowRun's status holds."""
    try:
        return FlowRunStatus.model_validate(obj.get("status") or {})
    except ValidationError as exc:
        raise PluginError(f"flowrun/{obj['metadata']['name']}: its status cannot be read by this kubectl millrace "
                          f"(an operator of another version?): {exc.errors()[0]['msg']} at "
                          f"{'.'.join(str(p) for p in exc.errors()[0]['loc'])}") from None


def flow_of(obj: dict[str, Any]) -> str:
    spec = obj.get("spec") or {}
    return str((spec.get("flowRef") or {}).get("name") or "(inline)")


def current_steps(status: FlowRunStatus) -> str:
    """The step the run waits at, or the script steps running now."""
    if status.suspended_step:
        return status.suspended_step
    running = [p for p, st in status.steps.items() if st.phase == "Running" and st.runs_script]
    if not running:
        return ""
    return running[0] + (f" (+{len(running) - 1})" if len(running) > 1 else "")


def _run_row(obj: dict[str, Any], now: float) -> list[str]:
    status = status_of(obj)
    created = epoch(obj["metadata"].get("creationTimestamp"))
    took_s = span(status.started_at, status.finished_at, now)
    return [obj["metadata"]["name"], flow_of(obj), status.phase, current_steps(status) or "-",
            took(took_s) if took_s is not None else "-", age(now - created) if created is not None else "-"]


def columns(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns three spaces apart, as kubectl prints them."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]


def runs_table(objs: list[dict[str, Any]], now: float) -> list[str]:
    ordered = sorted(objs, key=lambda o: (o["metadata"].get("creationTimestamp") or "", o["metadata"]["name"]))
    return columns(["NAME", "FLOW", "PHASE", "STEP", "DURATION", "AGE"], [_run_row(o, now) for o in ordered])


def step_tree(steps: dict[str, StepState]) -> list[tuple[int, str, str]]:
    """(depth, label, path) of every step, each under the step that contains it, in the order they began.
    A step's label is its path below its container: `3/inner` is iteration 3's `inner`."""
    children: dict[str, list[str]] = {}
    for path in steps:
        parts = path.split("/")
        parent = next(("/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1) if "/".join(parts[:i]) in steps), "")
        children.setdefault(parent, []).append(path)
    out: list[tuple[int, str, str]] = []

    def visit(parent: str, depth: int) -> None:
        for path in children.get(parent, []):
            out.append((depth, path[len(parent) + 1:] if parent else path, path))
            visit(path, depth + 1)

    visit("", 0)
    return out


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _detail(st: StepState, status: FlowRunStatus, path: str) -> str:
    if st.phase == "Failed" and st.error:
        return f"{st.error.name}: {_first_line(st.error.message)}"
    if status.suspended_step == path:
        return "waiting for approval"
    progress = loop_progress(st)
    if st.loop and st.loop.failure is not None:
        progress += f", iteration {st.loop.failure_index} failed: {st.loop.failure.name}"
    return progress


def _error_lines(st: StepState, indent: str) -> list[str]:
    """What a failed step's detail does not show: the rest of its message and its stack."""
    if st.phase != "Failed" or st.error is None:
        return []
    rest = st.error.message.splitlines()[1:] + st.error.stack.rstrip().splitlines()
    return [f"{indent}{line}" for line in rest]


def steps_table(status: FlowRunStatus, now: float) -> list[str]:
    rows: list[list[str]] = []
    after: dict[int, list[str]] = {}
    for depth, label, path in step_tree(status.steps):
        st = status.steps[path]
        took_s = span(st.started_at, st.finished_at, now)
        rows.append(["  " * depth + label, st.phase.lower(), took(took_s) if took_s is not None else "",
                     str(st.attempts), _detail(st, status, path)])
        after[len(rows)] = _error_lines(st, "  " * (depth + 2))
    lines = columns(["STEP", "PHASE", "DURATION", "ATTEMPTS", "DETAIL"], rows)
    out = [lines[0]]
    for i, line in enumerate(lines[1:], start=1):
        out += [line, *after.get(i, [])]
    return out


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= RESULT_SHOWN else text[:RESULT_SHOWN] + f"... ({len(text)} characters)"


def describe(obj: dict[str, Any], now: float, result: Any = None) -> list[str]:
    """The run, then its step tree. `result` is the run's result when it is kept beside the status."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    status = status_of(obj)
    took_s = span(status.started_at, status.finished_at, now)
    started = epoch(status.started_at)
    fields: list[tuple[str, str]] = [
        ("Name", meta["name"]), ("Namespace", meta["namespace"]), ("Flow", flow_of(obj)), ("Phase", status.phase)]
    restart = spec.get("restartFrom")
    if restart:
        fields.append(("Restarts", f"flowrun/{restart.get('run')} from step {restart.get('step')}"))
    retry_of = (meta.get("annotations") or {}).get(RETRY_OF)
    if retry_of:
        fields.append(("Retry of", f"flowrun/{retry_of}"))
    if started is not None:
        fields.append(("Started", rfc3339(started)))
    if took_s is not None:
        fields.append(("Duration", took(took_s) + ("" if status.terminal else " so far")))
    fields.append(("Args", _shown(status.args if status.args else spec.get("args") or {})))
    if status.suspended_step:
        fields.append(("Waiting", f"at step {status.suspended_step} for approval"))
    if status.error is not None:
        where = f" in step {status.error.step_id}" if status.error.step_id else ""
        fields.append(("Error", f"{status.error.name}{where}: {_first_line(status.error.message)}"))
    if status.terminal and status.phase == "Succeeded":
        fields.append(("Result", _shown(result if status.result_ref else status.result)))
    width = max(len(name) for name, _ in fields) + 2
    lines = [f"{name + ':':<{width}}{value}" for name, value in fields]
    if not status.steps:
        return [*lines, "Steps:", "  (none started yet)"]
    return [*lines, "Steps:", *("  " + line for line in steps_table(status, now))]

