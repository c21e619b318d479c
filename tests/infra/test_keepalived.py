"""The balancers' floating address (role keepalived): one holder, VRRP between the peers only."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
from cluster_support import FactReader, address, get_host, group_hosts, rendered
from testinfra.host import Host


@pytest.fixture(scope="module")
def floating(inventory: Path) -> str:
    first = group_hosts(inventory, "lb")[0]
    value = str(rendered(inventory, first)["cluster_lb_floating_address"] or "")
    if not value:
        pytest.skip("this inventory has no floating address for its balancers")
    return value


def holds(host: Host, floating: str) -> bool:
    out = host.check_output("ip -4 -o addr show")
    return any(f" {floating}/" in line for line in out.splitlines())


def test_keepalived_runs_on_every_balancer(lb_host: Host, floating: str) -> None:
    keepalived = lb_host.service("keepalived")
    assert keepalived.is_running
    assert keepalived.is_enabled


def test_the_fact_names_the_address_and_the_other_balancers(
    inventory: Path, lb_host: Host, read_fact: FactReader, floating: str
) -> None:
    fact = read_fact(lb_host.inventory_name, "keepalived")  # type: ignore[attr-defined]
    others = {address(inventory, h) for h in group_hosts(inventory, "lb")} - {lb_host.address}  # type: ignore[attr-defined]
    assert fact["address"] == floating
    assert fact["own_address"] == lb_host.address  # type: ignore[attr-defined]
    assert set(fact["peers"]) == others
    config = lb_host.file(fact["config_file"]).content_string
    peers = re.search(r"unicast_peer \{(.*?)\}", config, re.S)
    assert peers and set(peers.group(1).split()) == others, "advertisements go to the peers only"
    assert f"unicast_src_ip {lb_host.address}" in config  # type: ignore[attr-defined]
    assert "nopreempt" in config


def test_exactly_one_balancer_holds_the_floating_address(inventory: Path, floating: str) -> None:
    balancers = group_hosts(inventory, "lb")
    holders = [name for name in balancers if holds(get_host(inventory, name), floating)]
    assert len(holders) == 1, f"{floating} is held by {holders or 'no balancer'} of {balancers}"


def test_vrrp_is_admitted_from_the_balancers_only(
    inventory: Path, lb_host: Host, floating: str
) -> None:
    rules = lb_host.check_output("nft list chain inet cluster_firewall services")
    vrrp = [line for line in rules.splitlines() if "l4proto vrrp" in line or "l4proto 112" in line]
    assert len(vrrp) == 1, f"one VRRP rule expected: {vrrp}"
    sources = set(re.findall(r"\d+\.\d+\.\d+\.\d+", vrrp[0].split("meta")[0]))
    assert sources == {address(inventory, h) for h in group_hosts(inventory, "lb")}


def test_the_floating_address_answers_with_the_cluster(inventory: Path, floating: str) -> None:
    """A client on another host (a WAS) reaches the site through the floating address."""
    client = get_host(inventory, group_hosts(inventory, "was")[0])
    assert ipaddress.ip_address(floating)
    code = client.check_output(
        "curl -s -o /dev/null -m 10 -w '%%{http_code}' http://%s/healthz", floating
    )
    assert code == "200"
