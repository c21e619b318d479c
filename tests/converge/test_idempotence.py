"""Idempotence on the whole cluster: converge, converge again, nothing changes."""

from __future__ import annotations

from pathlib import Path

import ansible_runner
from cluster_support import changed_hosts, describe, run_playbook


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
