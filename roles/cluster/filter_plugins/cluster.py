"""Filters of the cluster contract: addresses, balancer members and database accounts.

Every address comes from a host's `ansible_host` (inventory data, never gathered facts), so a
`--limit` run renders the whole cluster the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
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


class RedisMasterError(ValueError):
    """The sentinels' answers do not name one Redis of the inventory."""


def sentinel_answer(result: Mapping[str, Any]) -> str | None:
    """The master's address in one sentinel's `SENTINEL get-master-addr-by-name` (redis-cli's
    output: address and port on two lines), or None when it has no answer (not installed, not
    running, unreachable, or no such master yet). Raises on any other reply."""
    if result.get("unreachable") or result.get("rc") != 0:
        return None
    lines = [line.strip() for line in str(result.get("stdout", "")).splitlines() if line.strip()]
    if not lines or lines == ["(nil)"]:
        return None
    try:
        return str(ipaddress.ip_address(lines[0]))
    except ValueError:
        raise RedisMasterError(
            f"The sentinel on {result.get('item', '?')} answered {' '.join(lines)!r} when asked "
            "for the Redis master. Check that it runs with the password the playbook derives "
            "from cluster_redis_password, then run the playbook again."
        ) from None


def cluster_redis_master(
    redis_addresses: Iterable[str], answers: Iterable[Mapping[str, Any]]
) -> str:
    """The current Redis master: the one the sentinels that answer agree on, else (a new
    install, or no sentinel) the first Redis host. `answers` are the registered results of
    asking each sentinel (an `item` each). Raises when they disagree or name a stranger."""
    addresses = [str(a).strip() for a in redis_addresses]
    said = {str(r.get("item", "?")): a for r in answers if (a := sentinel_answer(r)) is not None}
    named = sorted(set(said.values()))
    if not named:
        return addresses[0]
    if len(named) > 1:
        views = ", ".join(f"{host} says {address}" for host, address in sorted(said.items()))
        raise RedisMasterError(
            f"The sentinels disagree on the Redis master ({views}). Wait for a failover in "
            "progress to end (SENTINEL MASTER on each shows it), then run the playbook again."
        )
    if named[0] not in addresses:
        raise RedisMasterError(
            f"The sentinels name {named[0]} as the Redis master, which is not in the 'redis' "
            f"group ({', '.join(addresses)}). Put that host back in the group, or move the "
            "master to one of these hosts (SENTINEL FAILOVER), then run the playbook again."
        )
    return named[0]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "cluster_addresses": cluster_addresses,
            "cluster_members": cluster_members,
            "cluster_derived_password": cluster_derived_password,
            "cluster_db_accounts": cluster_db_accounts,
            "cluster_balancers_listing": cluster_balancers_listing,
            "cluster_redis_master": cluster_redis_master,
        }
