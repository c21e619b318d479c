"""Fixtures shared by the cluster tests (tests/converge, tests/infra, tests/e2e).

`converged_cluster` converges site.yml once per session and fails loudly if that does not work;
tests that need a converged cluster (rather than assuming one) depend on it.
"""

from __future__ import annotations

from pathlib import Path

import ansible_runner
import pytest
from cluster_support import describe, lab_inventory, run_playbook


@pytest.fixture(scope="session")
def inventory(request: pytest.FixtureRequest) -> Path:
    """The inventory under test: --ansible-inventory, else $LAB_INVENTORY, else inventory/lab."""
    option = request.config.getoption("ansible_inventory", None)
    return Path(option).resolve() if option else lab_inventory()


@pytest.fixture(scope="session")
def converged_cluster(
    inventory: Path, tmp_path_factory: pytest.TempPathFactory
) -> ansible_runner.Runner:
    """The first converge of site.yml on the inventory under test."""
    runner = run_playbook("site.yml", inventory, tmp_path_factory.mktemp("converge"))
    assert runner.status == "successful", f"site.yml did not converge:\n{describe(runner)}"
    return runner
