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


class DbPrimaryError(ValueError):
    """The database servers do not show exactly one primary."""


# A server with no MariaDB installed (playbooks/tasks/db_servers.yml exits with this status).
NOT_INSTALLED = 127
# Schemas every server has; any other one is data.
SYSTEM_SCHEMAS = ("information_schema", "mysql", "performance_schema", "sys")


def batch_rows(text: str) -> list[dict[str, str]]:
    """The result sets of `mariadb --batch` (a header line, then at most one row each), as one
    dict per result set that has a row. An empty result set prints nothing at all."""
    lines = [line.split("\t") for line in str(text).splitlines()]
    return [dict(zip(lines[i], lines[i + 1], strict=False)) for i in range(0, len(lines) - 1, 2)]


def db_server_state(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """What one server says about itself (playbooks/tasks/db_servers.yml asks: read_only, GTID
    positions, whether it holds data, then SHOW SLAVE STATUS). A server with no MariaDB installed
    is new (it holds nothing); None when it does not answer (MariaDB stopped, or no SSH)."""
    if result.get("unreachable"):
        return None
    if result.get("rc") == NOT_INSTALLED:
        return {
            "read_only": True,
            "gtid": "",
            "has_database": False,
            "data": False,
            "source": "",
            "received": "",
            "running": False,
        }
    if result.get("rc") != 0:
        return None
    sets = batch_rows(str(result.get("stdout", "")))
    if not sets or "read_only" not in sets[0]:
        raise DbPrimaryError(
            f"The database server {result.get('item', '?')} answered "
            f"{str(result.get('stdout', ''))[:200]!r} when asked for its replication state. Check "
            "that `mariadb` runs there as root, then run the playbook again."
        )
    own, replica = sets[0], (sets[1] if len(sets) > 1 else {})
    return {
        "read_only": own.get("read_only") == "1",
        "gtid": own.get("gtid_binlog_pos", ""),
        "has_database": own.get("has_database", "0") not in ("", "0"),
        # Any schema beyond the system ones, or any transaction written: not a new server.
        "data": own.get("data_schemas", "0") not in ("", "0") or bool(own.get("gtid_current_pos")),
        "source": replica.get("Master_Host", ""),
        # What a replica has received from its source (applied or not), else what it holds.
        "received": replica.get("Gtid_IO_Pos") or own.get("gtid_current_pos", ""),
        "running": replica.get("Slave_IO_Running") == replica.get("Slave_SQL_Running") == "Yes",
    }


def gtid_sequence(position: str) -> int:
    """How far a GTID position reaches: the highest sequence number in it ("0-21-105,1-22-7" ->
    105). One domain is in use, and its numbers only grow (gtid_strict_mode)."""
    numbers = [int(g.rsplit("-", 1)[1]) for g in str(position).split(",") if g.count("-") == 2]
    return max(numbers, default=0)


def server_states(
    hosts: Iterable[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    answers: Iterable[Mapping[str, Any]],
) -> tuple[list[str], dict[str, str], dict[str, dict[str, Any] | None]]:
    """The db hosts in order, their addresses, and each one's state (None: no answer; a host
    left out of the answers, because it did not answer SSH, has none either)."""
    names = list(hosts)
    address = dict(zip(names, cluster_addresses(names, hostvars), strict=True))
    said = {str(r.get("item", "?")): db_server_state(r) for r in answers}
    return names, address, {h: said.get(h) for h in names}


def cluster_db_followers(
    hosts: Iterable[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    answers: Iterable[Mapping[str, Any]],
    primary_address: str,
) -> list[str]:
    """The hosts that replicate from `primary_address`, both replication threads running."""
    names, _, states = server_states(hosts, hostvars, answers)
    return [
        h
        for h in names
        if (s := states[h]) and s["source"] == str(primary_address).strip() and s["running"]
    ]


def cluster_db_failover_plan(
    hosts: Iterable[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    answers: Iterable[Mapping[str, Any]],
    failed: str = "",
) -> dict[str, Any]:
    """Who to promote when the primary is lost: {failed, promote, repoint}. The failed primary is
    `failed` (an inventory name), else the server the replicas follow. The replica that has
    received the most is promoted (inventory order breaks a tie); the others follow it. Raises
    when there is nothing to fail over, or nobody to promote."""
    names, address, states = server_states(hosts, hostvars, answers)
    host_at = {a: h for h, a in address.items()}
    answering = {h: s for h, s in states.items() if s is not None}
    if not failed:
        sources = sorted({s["source"] for s in answering.values() if s["source"]})
        if len(sources) != 1 or sources[0] not in host_at:
            views = ", ".join(
                f"{h} follows {s['source'] or 'no one'}" for h, s in answering.items()
            )
            raise DbPrimaryError(
                f"The replicas do not name one primary ({views or 'no server answers'}). Name "
                "the lost primary: -e db_failed=<host>."
            )
        failed = host_at[sources[0]]
    if failed not in address:
        raise DbPrimaryError(f"{failed} is not a host of the 'db' group ({', '.join(names)}).")
    writable = [h for h, s in answering.items() if not s["read_only"] and s["data"]]
    if failed in writable:
        raise DbPrimaryError(
            f"{failed} answers and accepts writes: it has not failed, and a failover now would "
            "give the cluster two primaries. Move the primary with playbooks/db-switchover.yml."
        )
    if writable:
        raise DbPrimaryError(
            f"{', '.join(writable)} already accepts writes: a failover now would give the "
            "cluster two primaries. Nothing was changed. Run site.yml to make the others follow "
            "it."
        )
    candidates = [
        h for h in names if h != failed and answering.get(h, {}).get("source") == address[failed]
    ]
    if not candidates:
        raise DbPrimaryError(
            f"No replica of {failed} answers ({', '.join(h for h in names if h != failed)}): "
            "there is nobody to promote. Nothing was changed. Bring a replica back, then run "
            "the playbook again."
        )
    promote = max(
        candidates, key=lambda h: (gtid_sequence(answering[h]["received"]), -names.index(h))
    )
    return {
        "failed": failed,
        "failed_address": address[failed],
        "promote": promote,
        "promote_address": address[promote],
        "repoint": [h for h in candidates if h != promote],
        "positions": {h: answering[h]["received"] for h in candidates},
    }


def cluster_db_holders(
    hosts: Iterable[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    answers: Iterable[Mapping[str, Any]],
) -> list[str]:
    """The db hosts whose MariaDB answers and holds the application database, primary or replica:
    the database is not lost, and a restore would replace it (playbooks/db-restore.yml refuses)."""
    names, _, states = server_states(hosts, hostvars, answers)
    return [h for h in names if (s := states[h]) and s["has_database"]]


def cluster_db_primary(
    hosts: Iterable[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    answers: Iterable[Mapping[str, Any]],
    chosen: str = "",
) -> str:
    """The current primary's address, found on the servers, not in inventory order: the one
    server that accepts writes; else (every server restarted read-only) the one the replicas
    follow, or the only one holding data; else, on a new install (every server new), the first
    host. `chosen` (an inventory name) settles the case where no server accepts writes and
    nothing else tells. Every db host must answer: a silent one might be the primary.
    `answers` are the registered results of asking each db host (an `item` each)."""
    names, address, states = server_states(hosts, hostvars, answers)
    host_at = {a: h for h, a in address.items()}
    silent = [h for h in names if states[h] is None]
    if silent:
        raise DbPrimaryError(
            f"{', '.join(silent)} {'does' if len(silent) == 1 else 'do'} not answer (SSH from "
            "this controller, or MariaDB there): the primary cannot be told without every db "
            "host. Nothing was changed. Start its MariaDB (it comes back read-only), or, if the "
            "primary is lost, promote a replica with playbooks/db-failover.yml; then run the "
            "playbook again."
        )
    answered: dict[str, dict[str, Any]] = {h: s for h, s in states.items() if s is not None}
    managed = {h: s for h, s in answered.items() if s["data"] or s["source"]}
    if not managed:
        return address[names[0]]

    def checked(primary: str) -> str:
        """`primary`, unless another server holds transactions it never had."""
        reach = gtid_sequence(answered[primary]["received"] or answered[primary]["gtid"])
        ahead = [h for h, s in managed.items() if gtid_sequence(s["received"]) > reach]
        if ahead:
            raise DbPrimaryError(
                f"{primary} would be the primary, but {', '.join(ahead)} holds transactions it "
                f"never had (GTID {', '.join(managed[h]['received'] for h in ahead)} against "
                f"{answered[primary]['received'] or 'none'}). Nothing was changed. Make the most "
                "advanced server the primary: playbooks/db.yml -e db_primary=<host>."
            )
        return address[primary]

    writable = sorted(h for h, s in managed.items() if not s["read_only"])
    if len(writable) > 1:
        positions = ", ".join(f"{h} at GTID {managed[h]['gtid'] or 'none'}" for h in writable)
        raise DbPrimaryError(
            f"Two database servers accept writes ({positions}): the cluster has two primaries "
            "and their data may differ. Nothing was changed. Keep the one with the writes that "
            "count, make the other read-only (SET GLOBAL read_only = ON) and rebuild it "
            "(playbooks/db-rebuild.yml), then run the playbook again."
        )
    if writable:
        primary = writable[0]
        if managed[primary]["source"]:
            raise DbPrimaryError(
                f"The database server {primary} accepts writes but replicates from "
                f"{managed[primary]['source']}. Nothing was changed. Make it read-only (SET "
                "GLOBAL read_only = ON), or stop its replication (STOP SLAVE; RESET SLAVE ALL) "
                "if it is the primary, then run the playbook again."
            )
        if chosen and chosen != primary:
            raise DbPrimaryError(
                f"{primary} is the primary and accepts writes: db_primary={chosen} would make "
                "two. Move the primary with playbooks/db-switchover.yml instead."
            )
        return checked(primary)
    if chosen:
        if chosen not in managed:
            raise DbPrimaryError(
                f"db_primary={chosen} does not hold the cluster's data (or is not a db host). "
                f"Choose one of {', '.join(managed)}."
            )
        return checked(chosen)
    sources = sorted({s["source"] for s in managed.values() if s["source"]})
    if not sources and len(managed) == 1:
        # One server holds the data and nobody replicates: the first run of replication, or a
        # run stopped between the restart (read-only) and making the primary writable.
        return checked(next(iter(managed)))
    if len(sources) == 1 and sources[0] in host_at and not answered[host_at[sources[0]]]["source"]:
        # The primary restarted (read-only, as every server starts) and its replicas still
        # follow it: nothing was promoted meanwhile, so it stays the primary.
        return checked(host_at[sources[0]])
    views = ", ".join(f"{h} follows {s['source'] or 'no one'}" for h, s in sorted(managed.items()))
    raise DbPrimaryError(
        f"No database server accepts writes, and the replicas do not name one primary ({views}). "
        "Nothing was changed. Choose the server with the newest GTID position: "
        "playbooks/db.yml -e db_primary=<host>."
    )


def cluster_scrape_targets(
    hosts: Iterable[str],
    groups: Mapping[str, Iterable[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
    jobs: Mapping[str, Iterable[str]],
    ports: Mapping[str, Any],
    tiers: Iterable[str],
) -> list[dict[str, Any]]:
    """What the monitoring host scrapes: one {job, host, tier, address, port} per exporter.

    A job runs on the hosts of its groups (`all`: every host). A host's tier is the first of
    `tiers` it belongs to (its main job, a label of every series it exports); `other` if none.
    """
    members = {name: set(names) for name, names in groups.items()}
    tier_order = list(tiers)
    targets = []
    for host in hosts:
        tier = next((t for t in tier_order if host in members.get(t, set())), "other")
        address = str(hostvars[host]["ansible_host"]).strip()
        for job, job_groups in jobs.items():
            wanted = list(job_groups)
            if "all" in wanted or any(host in members.get(g, set()) for g in wanted):
                targets.append(
                    {
                        "job": job,
                        "host": host,
                        "tier": tier,
                        "address": address,
                        "port": int(ports[job]),
                    }
                )
    return targets


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "cluster_addresses": cluster_addresses,
            "cluster_members": cluster_members,
            "cluster_derived_password": cluster_derived_password,
            "cluster_db_accounts": cluster_db_accounts,
            "cluster_balancers_listing": cluster_balancers_listing,
            "cluster_redis_master": cluster_redis_master,
            "cluster_db_primary": cluster_db_primary,
            "cluster_db_failover_plan": cluster_db_failover_plan,
            "cluster_db_followers": cluster_db_followers,
            "cluster_db_holders": cluster_db_holders,
            "cluster_scrape_targets": cluster_scrape_targets,
        }
