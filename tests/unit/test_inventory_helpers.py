"""Inventory helpers of the cluster tests and the bench (tests/cluster_support.py), on small
inventories read by Ansible itself: host_vars renders a variable for every host whichever strategy
ansible.cfg names (Mitogen reports an ad-hoc task once per host, Ansible's linear once for all);
free_hosts finds names and addresses for new hosts."""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster_support import free_hosts, host_vars

HOSTS = ("alpha", "beta", "gamma", "delta")


@pytest.mark.parametrize("strategy", ["shipped", "linear"])
def test_every_host_is_rendered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    if strategy == "linear":
        monkeypatch.setenv("ANSIBLE_STRATEGY", "linear")
    else:
        monkeypatch.delenv("ANSIBLE_STRATEGY", raising=False)
    inventory = tmp_path / f"{strategy}.yml"
    lines = ["all:", "  hosts:"]
    for n, name in enumerate(HOSTS):
        marker = f"m{n}-{{{{ inventory_hostname }}}}"
        lines += [f"    {name}:", "      ansible_connection: local", f"      marker: '{marker}'"]
    inventory.write_text("\n".join(lines) + "\n")
    rendered = host_vars(inventory, ("marker", "undefined_here"))
    assert rendered == {
        name: {"marker": f"m{n}-{name}", "undefined_here": None} for n, name in enumerate(HOSTS)
    }


def test_new_hosts_take_free_names_and_the_next_free_addresses(tmp_path: Path) -> None:
    inventory = tmp_path / "lab.yml"
    inventory.write_text(
        "all:\n"
        "  vars: {lab_subnet: 10.9.0.0/28}\n"
        "  children:\n"
        "    was:\n"
        "      hosts:\n"
        "        was1: {ansible_host: 10.9.0.3}\n"
        "        was3: {ansible_host: 10.9.0.4}\n"
        "    db:\n"
        "      hosts:\n"
        "        db1: {ansible_host: 10.9.0.6}\n"
    )
    assert free_hosts(inventory, "was", 3) == [
        ("was2", "10.9.0.5"),
        ("was4", "10.9.0.7"),  # .6 is db1's
        ("was5", "10.9.0.8"),
    ]
    with pytest.raises(AssertionError, match="no free address"):
        free_hosts(inventory, "was", 12)
