"""Fixtures and hooks shared by the cluster tests (tests/converge, tests/infra, tests/e2e).

`converged_cluster` converges site.yml once per session and fails loudly if that does not work;
tests that need a converged cluster (rather than assuming one) depend on it.

A session that runs any of those tests is watched for secrets on command lines (secret_watch.py):
it fails if `ps` showed one while it ran. Sessions of other tests (tests/unit, tests/lab) are not.
"""

from __future__ import annotations

from pathlib import Path

import ansible_runner
import pytest
from cluster_support import describe, lab_inventory, run_playbook, watched_secrets
from secret_watch import SecretWatch, watches

SECRET_WATCH = pytest.StashKey[SecretWatch]()


def selected_inventory(config: pytest.Config) -> Path:
    """The inventory under test: --ansible-inventory, else $LAB_INVENTORY, else inventory/lab."""
    option = config.getoption("ansible_inventory", None)
    return Path(option).resolve() if option else lab_inventory()


@pytest.fixture(scope="session")
def inventory(request: pytest.FixtureRequest) -> Path:
    return selected_inventory(request.config)


@pytest.fixture(scope="session")
def converged_cluster(
    inventory: Path, tmp_path_factory: pytest.TempPathFactory
) -> ansible_runner.Runner:
    """The first converge of site.yml on the inventory under test."""
    runner = run_playbook("site.yml", inventory, tmp_path_factory.mktemp("converge"))
    assert runner.status == "successful", f"site.yml did not converge:\n{describe(runner)}"
    return runner


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start watching `ps` for secrets once the session is known to run cluster tests."""
    config = session.config
    if config.option.collectonly or not watches(item.path for item in session.items):
        return
    try:
        secrets = watched_secrets(selected_inventory(config))
    except AssertionError as exc:
        pytest.exit(
            f"secret watch: cannot read the inventory's secrets: {exc}",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    watch = SecretWatch(secrets)
    watch.start()
    config.stash[SECRET_WATCH] = watch


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A secret seen on a command line fails the session, whatever the tests said."""
    watch = session.config.stash.get(SECRET_WATCH, None)
    if watch is not None and watch.stop() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    watch = config.stash.get(SECRET_WATCH, None)
    if watch is not None:
        terminalreporter.section("secrets on command lines", red=bool(watch.sightings))
        terminalreporter.write_line(watch.report())
