"""Fixtures of the end-to-end tests: they run on a converged lab (see Makefile cluster-test)."""

from __future__ import annotations

from pathlib import Path

import pytest
from drills import DbServers
from e2e_support import Cluster, read_cluster


@pytest.fixture(scope="session")
def cluster(converged_cluster: object, inventory: Path) -> Cluster:
    """The cluster under test, converged once per test session by site.yml; its facts read once."""
    return read_cluster(inventory)


@pytest.fixture
def servers(cluster: Cluster) -> DbServers:
    """The database servers, for tests that need a primary and a replica (skipped with one).
    test_db_restore.py has its own: it needs an S3 store, and runs with one server too."""
    servers = DbServers.read(cluster.inventory)
    if len(servers.names) < 2:
        pytest.skip(f"{cluster.inventory} has one database server: no replica")
    return servers
