"""Filters of the cluster contract: addresses and balancer members from the inventory.

Every address comes from a host's `ansible_host` (inventory data, never gathered facts), so a
`--limit` run renders the whole cluster the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def cluster_addresses(hosts: Iterable[str], hostvars: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The private address (ansible_host) of each host, in the given order."""
    return [str(hostvars[host]["ansible_host"]).strip() for host in hosts]


def cluster_members(
    hosts: Iterable[str], hostvars: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, str]]:
    """One balancer member per host: name, address, and route (cluster_route, else the name)."""
    members = []
    for host in hosts:
        variables = hostvars[host]
        route = variables.get("cluster_route", host)
        members.append(
            {
                "name": host,
                "address": str(variables["ansible_host"]).strip(),
                "route": str(route),
            }
        )
    return members


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"cluster_addresses": cluster_addresses, "cluster_members": cluster_members}
