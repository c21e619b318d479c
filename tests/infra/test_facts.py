"""The local facts the roles leave in /etc/ansible/facts.d: what tests and operators read."""

from __future__ import annotations

from pathlib import Path

from cluster_support import (
    FACTS_DIR,
    GROUP_ROLES,
    SECRET_VARS,
    group_hosts,
    host_groups,
    rendered,
)
from testinfra.host import Host


def roles_of(inventory: Path, host: Host) -> set[str]:
    """The roles whose fact the host must carry: its groups' roles, the firewall, and with a
    monitoring group the exporters."""
    groups = host_groups(inventory, host.inventory_name)
    exporters = (
        {"exporters"} if group_hosts(inventory, "monitoring") and "retired" not in groups else set()
    )
    return (
        {"firewall"} | exporters | {role for group, role in GROUP_ROLES.items() if group in groups}
    )


def test_the_host_carries_the_fact_of_each_of_its_roles(inventory: Path, any_host: Host) -> None:
    present = {
        name.removesuffix(".fact") for name in any_host.check_output("ls -1 %s", FACTS_DIR).split()
    }
    assert roles_of(inventory, any_host) - present == set(), "converge first (site.yml)"


def test_the_facts_are_root_owned_and_world_readable(inventory: Path, any_host: Host) -> None:
    wrong = {}
    for role in sorted(roles_of(inventory, any_host)):
        fact = any_host.file(f"{FACTS_DIR}/{role}.fact")
        if (fact.user, fact.group, fact.mode) != ("root", "root", 0o644):
            wrong[role] = (fact.user, fact.group, oct(fact.mode))
    assert wrong == {}


def inventory_secrets(inventory: Path) -> dict[str, set[str]]:
    """The values each secret takes in the inventory, whichever hosts it is defined for."""
    secrets: dict[str, set[str]] = {}
    for host in group_hosts(inventory, "all"):
        values = rendered(inventory, host)
        for name in SECRET_VARS:
            if values[name]:
                secrets.setdefault(name, set()).add(str(values[name]))
    return secrets


def test_the_facts_hold_no_secret(inventory: Path, any_host: Host) -> None:
    secrets = inventory_secrets(inventory)
    assert secrets, f"the inventory defines none of {SECRET_VARS}"
    facts = any_host.check_output("cat %s/*.fact", FACTS_DIR)
    leaked = [name for name, values in secrets.items() if any(v in facts for v in values)]
    assert leaked == []
