"""Optional: the same cluster tests against a kind cluster, where Docker exists.

``MILLRACE_CLUSTER=kind make test-cluster`` runs every cluster test on kind
(pytest-kind, ``pip install -e '.[e2e]'``); this test does that from the
ordinary suite and is skipped, with the reason, on machines without Docker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import docker_unavailable

pytestmark = pytest.mark.e2e


def test_cluster_suite_on_kind():
    if os.environ.get("MILLRACE_CLUSTER"):
        pytest.skip("already running the suite against MILLRACE_CLUSTER=" + os.environ["MILLRACE_CLUSTER"])
    why = docker_unavailable()
    if why:
        pytest.skip(f"{why}; the cluster tests ran on the local control plane instead")
    pytest.importorskip("pytest_kind", reason="install the e2e extra: pip install -e '.[e2e]'")
    here = Path(__file__).resolve().parent
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cluster", str(here)],
                          env={**os.environ, "MILLRACE_CLUSTER": "kind"}, cwd=here.parents[1])
    assert proc.returncode == 0
