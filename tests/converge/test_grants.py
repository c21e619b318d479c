"""Grants follow the `was` group: a WAS removed from the inventory loses its MariaDB account,
and gets it back when it returns. Runs playbooks/db.yml only, as an operator would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ansible_runner
from cluster_support import (
    address,
    copy_inventory,
    describe,
    get_host,
    group_hosts,
    host_fact,
    run_playbook,
)


def app_account_hosts(inventory: Path) -> set[str]:
    """Hosts of the application's MariaDB accounts (its user name from the mariadb fact)."""
    db = get_host(inventory, group_hosts(inventory, "db")[0])
    user = host_fact(db, "mariadb")["app_user"]
    result = db.run(
        "mariadb --batch --skip-column-names -e %s",
        f"SELECT Host FROM mysql.user WHERE User = '{user}'",
    )
    assert result.rc == 0, result.stderr
    return set(result.stdout.split())


def test_removed_was_loses_its_grant_and_regains_it(
    converged_cluster: ansible_runner.Runner, inventory: Path, tmp_path: Path
) -> None:
    was = group_hosts(inventory, "was")
    assert len(was) >= 2, "this test removes one WAS and needs another to remain"
    removed = was[-1]
    removed_address = address(inventory, removed)
    all_addresses = {address(inventory, h) for h in was}
    assert app_account_hosts(inventory) == all_addresses

    def without_removed(hosts: dict[str, Any]) -> None:
        del hosts["all"]["children"]["was"]["hosts"][removed]
        # Keep the host in the inventory, outside `was`: like a server being retired.
        hosts["all"].setdefault("hosts", {})[removed] = {"ansible_host": removed_address}

    smaller = copy_inventory(inventory, tmp_path / "inventory", without_removed)
    try:
        runner = run_playbook("playbooks/db.yml", smaller, tmp_path / "shrink")
        assert runner.status == "successful", describe(runner)
        assert app_account_hosts(inventory) == all_addresses - {removed_address}
    finally:
        runner = run_playbook("playbooks/db.yml", inventory, tmp_path / "restore")
    assert runner.status == "successful", describe(runner)
    assert app_account_hosts(inventory) == all_addresses
