"""Idempotence on the whole cluster: converge, converge again, nothing changes."""

from __future__ import annotations

from pathlib import Path

import ansible_runner
import pytest
from cluster_support import changed_hosts, describe, roles_run, run_playbook


def test_site_converges(converged_cluster: ansible_runner.Runner) -> None:
    assert converged_cluster.rc == 0, describe(converged_cluster)
    failed = {**converged_cluster.stats["failures"], **converged_cluster.stats["dark"]}
    assert not failed, describe(converged_cluster)


def test_second_converge_changes_nothing(
    converged_cluster: ansible_runner.Runner, inventory: Path, tmp_path: Path
) -> None:
    runner = run_playbook("site.yml", inventory, tmp_path)
    assert runner.status == "successful", describe(runner)
    assert changed_hosts(runner) == {}, describe(runner)
    # Every host took part: a host silently left out would also report nothing changed.
    assert set(runner.stats["ok"]) >= set(converged_cluster.stats["ok"]), describe(runner)


def test_check_diff_on_a_converged_cluster_reports_nothing(
    converged_cluster: ansible_runner.Runner, inventory: Path, tmp_path: Path
) -> None:
    runner = run_playbook("site.yml", inventory, tmp_path, cmdline="--check --diff")
    assert runner.status == "successful", describe(runner)
    assert changed_hosts(runner) == {}, describe(runner)


# The parts docs/production.md offers to converge alone. Each leaves out the application servers'
# tags, whose plays still run their always-tagged steps (the role's argument check among them).
@pytest.mark.parametrize("part", ["mariadb", "redis", "object_storage", "firewall"])
def test_one_part_alone_runs_and_changes_nothing(
    converged_cluster: ansible_runner.Runner, inventory: Path, tmp_path: Path, part: str
) -> None:
    runner = run_playbook("site.yml", inventory, tmp_path, cmdline=f"--tags {part}")
    assert runner.status == "successful", describe(runner)
    assert changed_hosts(runner) == {}, describe(runner)
    # The part's own tasks ran: a tag that matched nothing would pass the two checks above.
    assert part in roles_run(runner), (sorted(roles_run(runner)), describe(runner))
