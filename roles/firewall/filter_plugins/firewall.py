"""Filters of the firewall role: who may reach a port, as IPv4 and IPv6 address lists."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

ANY = "any"


def firewall_sources(
    rule: Mapping[str, Any],
    groups: Mapping[str, Iterable[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """{any, v4, v6} for a rule's from_groups (the ansible_host of each group's hosts) and its
    from_networks (networks such as the admin networks), sorted: addresses, then networks."""
    names = list(rule.get("from_groups") or [])
    if ANY in names:
        return {"any": True, "v4": [], "v6": []}
    addresses = set()
    for group in names:
        for host in groups.get(group, []):
            addresses.add(ipaddress.ip_address(str(hostvars[host]["ansible_host"]).strip()))
    networks = {
        ipaddress.ip_network(str(n).strip(), strict=False) for n in rule.get("from_networks") or []
    }
    return {
        "any": False,
        "v4": [str(a) for a in sorted(a for a in addresses if a.version == 4)]
        + [str(n) for n in sorted(n for n in networks if n.version == 4)],
        "v6": [str(a) for a in sorted(a for a in addresses if a.version == 6)]
        + [str(n) for n in sorted(n for n in networks if n.version == 6)],
    }


def firewall_networks(networks: Iterable[str], version: int) -> list[str]:
    """The networks of one IP version, normalised (10.77.0.1 -> 10.77.0.1/32)."""
    parsed = (ipaddress.ip_network(str(n).strip(), strict=False) for n in networks)
    return [str(n) for n in parsed if n.version == version]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"firewall_sources": firewall_sources, "firewall_networks": firewall_networks}
