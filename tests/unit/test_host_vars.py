"""cluster_support.host_vars renders a variable for every host of an inventory, whichever strategy
ansible.cfg names (Mitogen reports an ad-hoc task once per host, Ansible's linear once for all)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster_support import host_vars

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
