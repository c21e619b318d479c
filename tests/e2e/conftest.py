"""Fixtures of the end-to-end tests: they run on a converged lab (see Makefile cluster-test)."""

from __future__ import annotations

import pytest
from cluster_support import lab_inventory
from e2e_support import Cluster, read_cluster


@pytest.fixture(scope="session")
def cluster(converged_cluster: object) -> Cluster:
    """The lab's cluster, converged once per test session by site.yml."""
    return read_cluster(lab_inventory())
