"""The firewall (role firewall): input dropped by default on every host, and the port matrix.

The matrix test probes every listening port of every host from every other host and from the
machine running the tests, and compares what connected with the design's matrix. It prints the
table it found (and writes it to artifacts/port-matrix.txt) whether it passes or not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cluster_support import REPO, FactReader, get_host, group_hosts
from port_matrix import (
    OUTSIDE,
    Node,
    Probe,
    expected_matrix,
    found_from,
    local_address_towards,
    read_node,
    render,
)
from testinfra.host import Host

ARTIFACTS = REPO / "artifacts"


def input_chains(host: Host, table: str) -> list[dict[str, Any]]:
    """The base chains of `table` hooked on input, from nft's JSON ruleset."""
    ruleset = json.loads(host.check_output("nft -j list ruleset"))["nftables"]
    chains = (item["chain"] for item in ruleset if "chain" in item)
    return [c for c in chains if c["table"] == table and c.get("hook") == "input"]


def test_the_input_chain_drops_by_default(any_host: Host, firewall_fact: dict[str, Any]) -> None:
    if not firewall_fact["enabled"]:
        pytest.skip("the firewall is disabled on this host (firewall.fact)")
    chains = input_chains(any_host, firewall_fact["table"])
    dropping = {c["family"] for c in chains if c.get("policy") == "drop"}
    # Other tables may hook input too; a packet any base chain drops stays dropped.
    assert "inet" in dropping or {"ip", "ip6"} <= dropping, (
        f"no input chain dropping IPv4 and IPv6 by default in table {firewall_fact['table']}: "
        f"{chains}"
    )


def read_nodes(inventory: Path, read_fact: FactReader, pool: ThreadPoolExecutor) -> list[Node]:
    names = group_hosts(inventory, "all")
    hosts = {name: get_host(inventory, name) for name in names}
    return list(pool.map(lambda n: read_node(inventory, n, hosts[n], read_fact), names))


def probe_all(inventory: Path, nodes: list[Node], pool: ThreadPoolExecutor) -> set[Probe]:
    """Every source probes all its targets at once; the sources probe side by side."""
    futures = [pool.submit(found_from, OUTSIDE, nodes, None)]
    futures += [pool.submit(found_from, n.name, nodes, get_host(inventory, n.name)) for n in nodes]
    return set().union(*(f.result() for f in futures))


def test_the_port_matrix(
    inventory: Path, read_fact: FactReader, record_property: Callable[[str, object], None]
) -> None:
    with ThreadPoolExecutor(16) as pool:
        nodes = read_nodes(inventory, read_fact, pool)
        found = probe_all(inventory, nodes, pool)
    outside = local_address_towards(nodes[0].address)
    expected = expected_matrix(nodes, outside)
    table = render(nodes, outside, found, expected)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "port-matrix.txt").write_text(table + "\n")
    record_property("port_matrix", table)
    print(f"\nport matrix:\n{table}")
    assert found == expected, (
        f"the port matrix differs from the design:\n{table}\n"
        f"connected, not allowed: {sorted(found - expected)}\n"
        f"allowed, did not connect: {sorted(expected - found)}"
    )
