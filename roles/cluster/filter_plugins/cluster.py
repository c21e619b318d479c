"""Filters of the cluster contract: addresses, balancer members and database accounts.

Every address comes from a host's `ansible_host` (inventory data, never gathered facts), so a
`--limit` run renders the whole cluster the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

# Length of a derived password: 32 characters of URL-safe base64 (192 bits), safe in an env file.
DERIVED_PASSWORD_LENGTH = 32


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


def cluster_derived_password(seed: str, purpose: str) -> str:
    """A password for one purpose (e.g. "mariadb:10.77.0.11"), derived from a seed secret.

    HMAC-SHA256 is one-way: whoever holds one derived password learns neither the seed nor any
    other purpose's password, so each host can get its own without a new secret per host.
    """
    if not seed:
        raise ValueError("the seed secret is empty")
    digest = hmac.new(seed.encode(), purpose.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:DERIVED_PASSWORD_LENGTH]


def cluster_db_accounts(addresses: Iterable[str], seed: str) -> list[dict[str, str]]:
    """One database account per client address: {host, password}, the password its own."""
    return [
        {"host": address, "password": cluster_derived_password(seed, f"mariadb:{address}")}
        for address in addresses
    ]


def cluster_balancers_listing(
    balancers: Iterable[str], hostvars: Mapping[str, Mapping[str, Any]], address: str
) -> list[str]:
    """The balancers whose apache_lb local fact lists a member at `address` (read from each
    balancer's gathered or delegated local facts; a balancer not converged yet lists none)."""
    found = []
    for name in balancers:
        facts = hostvars.get(name, {}).get("ansible_facts", {}) or {}
        local = facts.get("local") or facts.get("ansible_local") or {}
        members = (local.get("apache_lb") or {}).get("members") or []
        if any(str(m.get("address", "")).strip() == str(address).strip() for m in members):
            found.append(name)
    return found


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "cluster_addresses": cluster_addresses,
            "cluster_members": cluster_members,
            "cluster_derived_password": cluster_derived_password,
            "cluster_db_accounts": cluster_db_accounts,
            "cluster_balancers_listing": cluster_balancers_listing,
        }
