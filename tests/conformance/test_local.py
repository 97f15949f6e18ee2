"""Every conformance case through the local shell (`millrace run`, `resume`, `cancel`).

The selected cases run two at a time (the machine's cores), each with its own
MILLRACE_HOME; each test then compares one case's outcome with Windmill's.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .cases import Case, Outcome, all_cases, mismatches, report
from .local_shell import run_locally

# The first test waits for every selected case: more than one test's usual time.
pytestmark = [pytest.mark.local, pytest.mark.timeout(900)]

CASES = all_cases()


@pytest.fixture(scope="module")
def local_outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """The outcome of every case selected in this session, run before the first comparison."""
    selected = {item.callspec.params["case"].name for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")}
    root = Path(tmp_path_factory.mktemp("conformance-local"))
    chosen = [case for case in CASES if case.name in selected]
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = pool.map(lambda case: run_locally(case, root / case.name), chosen)
        return {case.name: outcome for case, outcome in zip(chosen, outcomes)}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_local_shell_gives_windmills_outcome(case: Case, local_outcomes: dict[str, Outcome]) -> None:
    outcome = local_outcomes[case.name]
    if mismatches(case, outcome):
        pytest.fail(report(case, outcome), pytrace=False)
