"""Every conformance case through the cluster shell: a Flow and a FlowRun on the
test control plane, run by one operator for the whole module, approvals through
`kubectl millrace resume/cancel`; each test compares one FlowRun's status with
Windmill's outcome."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cluster.conftest import fresh_namespace, installed_operator

from .cases import Case, Outcome, all_cases, mismatches, report
from .cluster_shell import run_in_cluster

# The first test waits for every selected case: more than one test's usual time.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

CASES = all_cases()


@pytest.fixture(scope="module")
def operator_namespace(kube: Any, helm: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_namespace(kube, "conformance") as namespace:
        with installed_operator(kube, helm, namespace, tmp_path_factory.mktemp("conformance-operator")):
            yield namespace
            # Runs hold the operator's finalizers: delete them while it still runs, or the namespace never goes.
            kube.kubectl("delete", "flowruns,flows", "--all", "-n", namespace, "--timeout=120s", check=False, timeout=180)


@pytest.fixture(scope="module")
def cluster_outcomes(request: pytest.FixtureRequest, kube: Any, operator_namespace: str) -> dict[str, Outcome]:
    """The outcome of every case selected in this session, all run side by side before the first comparison."""
    selected = {item.callspec.params["case"].name for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")}
    return run_in_cluster(kube, operator_namespace, [case for case in CASES if case.name in selected])


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_cluster_shell_gives_windmills_outcome(case: Case, cluster_outcomes: dict[str, Outcome]) -> None:
    outcome = cluster_outcomes[case.name]
    if mismatches(case, outcome):
        pytest.fail(report(case, outcome), pytrace=False)
