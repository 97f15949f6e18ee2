"""The cluster fixtures of tests/cluster, shared with the conformance suite's cluster runner."""

from cluster.conftest import helm, kube  # noqa: F401  (fixtures used by test_cluster.py)
