"""What every benchmark shares: timing rounds, the report section, machine facts.

House rule: speed is a ratio against a baseline measured in the same run. The
machine is small (2 cores) and shared, so each figure is the best of N rounds
with the median beside it: the best is the least disturbed by neighbours, the
median shows how noisy the run was.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The benchmarks import the package from the tree, whether or not it is installed.
sys.path.insert(0, str(REPO / "operator"))

ROUNDS = 5


@dataclass(frozen=True)
class Timing:
    best: float
    median: float
    rounds: int


def measure(fn: Callable[[], None], rounds: int = ROUNDS, warm_up: bool = True) -> Timing:
    """Best and median wall time of `fn` over `rounds` calls, after one untimed call."""
    if warm_up:
        fn()  # fork server, page cache, compiled expressions: what a second run finds ready
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return Timing(min(times), statistics.median(times), rounds)


@dataclass
class Section:
    """One table of docs/benchmarks.md, with how it was measured and its targets."""

    key: str  # the --only name and the marker in the document
    title: str
    how: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)  # "met: ..." / "missed: ..." lines
    notes: list[str] = field(default_factory=list)

    def target(self, met: bool, text: str) -> None:
        self.targets.append(f"**{'met' if met else 'missed'}**: {text}")

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", self.how, ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "---|" * len(self.header))
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.targets:
            lines += ["", "Targets:", ""] + [f"- {t}" for t in self.targets]
        if self.notes:
            lines += [""] + self.notes
        return "\n".join(lines)


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "n/a"


def machine_facts() -> list[str]:
    load = os.getloadavg()
    return [
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- cores: {os.cpu_count()}; load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), {platform.system()} {platform.release()}",
        f"- CPU: {_cpu_model()}",
    ]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
