"""Fixtures of the end-to-end tests: they run on a converged lab (see Makefile cluster-test)."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import Cluster, read_cluster


@pytest.fixture(scope="session")
def cluster(converged_cluster: object, inventory: Path) -> Cluster:
    """The cluster under test, converged once per test session by site.yml; its facts read once."""
    return read_cluster(inventory)
