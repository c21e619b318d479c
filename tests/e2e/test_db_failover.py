"""The database primary under fire: a logged-in user keeps posting through the balancers while the
primary is killed and db-failover.yml promotes the replica, then while db-switchover.yml moves the
primary back. Every post acknowledged is on the new primary; exactly one server accepts writes;
the killed server comes back read-only, and site.yml rejoins it as a replica."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cluster_support import (
    address,
    describe,
    get_host,
    group_hosts,
    host_fact,
    mariadb_app_command,
    run_playbook,
)
from drills import DbServers, Poster, db_switch_under_load
from e2e_support import Cluster, lab, png_bytes, sign_up, wait_for

# What site.yml may change after a failover: on the old primary, repointing its replication.
REJOIN_TASKS = {
    "Stop any replication before pointing it elsewhere",
    "Point replication at the primary",
    "Start replication",
}


def poster_for(cluster: Cluster) -> Poster:
    poster = Poster(cluster.url, png_bytes((20, 120, 200)))
    sign_up(cluster, poster.session, poster.username)
    return poster


def refuses_app_writes(cluster: Cluster, server: str) -> str:
    """The error a WAS gets writing to `server` directly as the app ('' if it took the write)."""
    was = group_hosts(cluster.inventory, "was")[0]
    host = get_host(cluster.inventory, was)
    env_file = host_fact(host, "django_was")["env_file"]
    query = "DELETE FROM django_session WHERE session_key = ''"
    result = host.run(
        mariadb_app_command(env_file, query, server=address(cluster.inventory, server))
    )
    return "" if result.rc == 0 else result.stderr


def playbook_step(name: str, cluster: Cluster, where: Path, cmdline: str | None = None) -> None:
    runner = run_playbook(name, cluster.inventory, where, cmdline=cmdline)
    assert runner.status == "successful", describe(runner)


def test_a_killed_primary_is_replaced_and_no_acknowledged_write_is_lost(
    cluster: Cluster, servers: DbServers, tmp_path: Path
) -> None:
    old = servers.primary()
    poster = poster_for(cluster)

    def fail_over() -> dict[str, Any]:
        lab(cluster.inventory, "kill", old)
        killed = time.monotonic()
        playbook_step("playbooks/db-failover.yml", cluster, tmp_path / "failover")
        return {"killed": old, "cut_at": killed}

    report = db_switch_under_load(poster, fail_over)
    print(f"\ndatabase primary kill and db-failover.yml: {json.dumps(report)}")
    new = servers.primary()
    assert new != old
    assert poster.acknowledged, report
    lost = set(poster.acknowledged) - servers.captions(new, poster.prefix)
    assert not lost, f"acknowledged posts missing on {new}: {sorted(lost)[:10]}"

    # The killed server comes back read-only: the application cannot write to it.
    lab(cluster.inventory, "start", old)
    wait_for(f"{old}'s MariaDB", lambda: servers.query(old, "SELECT 1"), 120)
    assert servers.writable() == [new]
    assert "read-only" in refuses_app_writes(cluster, old)

    # site.yml rejoins it as a replica of the new primary and changes nothing else.
    runner = run_playbook("site.yml", cluster.inventory, tmp_path / "after-failover")
    assert runner.status == "successful", describe(runner)
    changed = {
        (e["event_data"]["host"], e["event_data"]["task"].split(" : ")[-1].split(" (")[0])
        for e in runner.events
        if e.get("event") == "runner_on_ok" and e["event_data"].get("res", {}).get("changed")
    }
    assert changed <= {(old, task) for task in REJOIN_TASKS}, (changed, describe(runner))
    assert servers.writable() == [new]
    assert servers.source(old) == address(cluster.inventory, new)
    assert not set(poster.acknowledged) - servers.captions(old, poster.prefix)


def test_a_switchover_under_load_loses_no_acknowledged_write(
    cluster: Cluster, servers: DbServers, tmp_path: Path
) -> None:
    old = servers.primary()
    target = next(n for n in servers.names if n != old)
    poster = poster_for(cluster)

    def switch_over() -> dict[str, Any]:
        playbook_step("playbooks/db-switchover.yml", cluster, tmp_path, f"-e db_primary={target}")
        return {"from": old, "to": target}

    report = db_switch_under_load(poster, switch_over)
    print(f"\ndatabase switchover: {json.dumps(report)}")
    assert servers.primary() == target
    assert servers.source(old) == address(cluster.inventory, target)
    assert poster.acknowledged, report
    lost = set(poster.acknowledged) - servers.captions(target, poster.prefix)
    assert not lost, f"acknowledged posts missing on the new primary {target}: {sorted(lost)[:10]}"
    # The old primary is now an asynchronous replica: the last posts reach it a moment later.
    wait_for(
        f"every acknowledged post to reach the new replica {old}",
        lambda: not set(poster.acknowledged) - servers.captions(old, poster.prefix),
        60,
    )
    assert "read-only" in refuses_app_writes(cluster, old)
