"""Show a run's steps live in the terminal.

On a terminal, a table of the top-level steps is redrawn in place on every
change (phase, duration, loop progress). Elsewhere (a pipe, CI logs) each
change is printed once as a line.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ..model.flow import FlowModule, OpenFlow
from ..model.run import RunStatus, StepState
from ..model.times import format_duration

SYMBOLS = {"Pending": "·", "Running": "▶", "Succeeded": "✓", "Failed": "✗", "Skipped": "↷"}


def _duration(st: StepState, now: float) -> str:
    if st.started_at is None:
        return ""
    end = st.finished_at if st.finished_at is not None else now
    return format_duration(end - st.started_at)


def loop_progress(st: StepState) -> str:
    """How far a loop is ("3/10 iterations", "iteration 4"); "" for any other step."""
    if st.type == "forloopflow" and st.items is not None:
        # Finished iterations are compacted into the loop's progress as they end.
        return f"{st.loop.finished if st.loop else 0}/{len(st.items)} iterations"
    if st.type == "forloopflow" and st.loop is not None:  # ended: its items are dropped
        return f"{st.loop.finished} iterations"
    if st.type == "whileloopflow":
        return f"iteration {st.started}"
    return ""


class Progress:
    """Receives every new state of a run and renders the changes."""

    def __init__(self, flow_name: str, flow: OpenFlow, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.flow_name = flow_name
        self.flow = flow
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._drawn = 0
        self._seen: dict[str, str] = {}

    def update(self, run_id: str, state: RunStatus) -> None:
        if self.live:
            self._redraw(run_id, state)
        else:
            self._lines(state)

    def _row(self, module: FlowModule, state: RunStatus, now: float) -> str:
        st = state.steps.get(module.id)
        if st is None:
            return f"  {SYMBOLS['Pending']} {module.id:<24} pending"
        detail = loop_progress(st)
        if st.phase == "Running" and not detail:
            inner = [p for p, s in state.steps.items() if p.startswith(module.id + "/") and s.phase == "Running"]
            detail = ", ".join(inner[:3])
        if st.phase == "Failed" and st.error:
            detail = f"{st.error.name}: {st.error.message.splitlines()[0] if st.error.message else ''}"
        phase = st.phase.lower()
        return f"  {SYMBOLS[st.phase]} {module.id:<24} {phase:<9} {_duration(st, now):>8}  {detail}".rstrip()

    def _redraw(self, run_id: str, state: RunStatus) -> None:
        now = time.time()
        lines = [f"{self.flow_name} · run {run_id} · {state.phase.lower()}"]
        lines += [self._row(m, state, now) for m in self.flow.value.modules]
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F")
        for line in lines:
            self.stream.write(f"\x1b[2K{line}\n")
        self.stream.flush()
        self._drawn = len(lines)

    def _lines(self, state: RunStatus) -> None:
        now = time.time()
        changed = [(path, st) for path, st in state.steps.items() if self._seen.get(path) != st.phase]
        # What ended comes before what started; a step before the container that ended with it.
        changed.sort(key=lambda item: (item[1].phase == "Running", -item[0].count("/")))
        for path, st in changed:
            self._seen[path] = st.phase
            if st.phase == "Running" and not st.runs_script:
                continue
            line = f"{SYMBOLS[st.phase]} {path} {st.phase.lower()}"
            if st.phase in ("Succeeded", "Failed"):
                line += f" ({_duration(st, now)})"
            if st.phase == "Failed" and st.error:
                line += f": {st.error.name}: {st.error.message.splitlines()[0] if st.error.message else ''}"
            self.stream.write(line + "\n")
        self.stream.flush()
