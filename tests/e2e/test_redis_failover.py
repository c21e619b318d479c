"""Redis Sentinel under fire: the Redis master is killed while a logged-in visitor keeps reading
and writing through the balancers. The visitor stays logged in, every write succeeds, a sentinel
majority promotes the replica, and site.yml afterwards keeps the new master."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cluster_support import changed_hosts, describe, group_hosts, run_playbook
from drills import Sentinels, Visitor, redis_failover
from e2e_support import Cluster, lab, logged_in_as, sign_up

REPLICATION_TASK = "Ensure the replication settings name the current master"


def test_a_killed_redis_master_is_replaced_and_nobody_notices(
    cluster: Cluster, tmp_path: Path
) -> None:
    if len(group_hosts(cluster.inventory, "redis")) < 2:
        pytest.skip(f"{cluster.inventory} has one Redis and no Sentinel")
    visitor = Visitor(cluster.url)
    sign_up(cluster, visitor.session, visitor.username)
    report = redis_failover(
        cluster.inventory,
        cluster.url,
        visitor,
        kill=lambda host: lab(cluster.inventory, "kill", host) and None,
        start=lambda host: lab(cluster.inventory, "start", host) and None,
    )
    print(f"\nredis master kill: {json.dumps(report)}")
    assert report["new_master"], f"no sentinel majority promoted a replica: {report}"
    assert visitor.problems == [], visitor.problems[:10]
    assert visitor.writes > 10 and visitor.pages > 10, report
    assert logged_in_as(visitor.session.get(f"{cluster.url}/", timeout=30).text) == visitor.username

    # site.yml after the failover: only the replication files change, and the master stays.
    sentinels = Sentinels.read(cluster.inventory)
    runner = run_playbook("site.yml", cluster.inventory, tmp_path / "after-failover")
    assert runner.status == "successful", describe(runner)
    changed = {
        (e["event_data"]["host"], e["event_data"]["task"].split(" : ")[-1])
        for e in runner.events
        if e.get("event") == "runner_on_ok" and e["event_data"].get("res", {}).get("changed")
    }
    redis_hosts = set(group_hosts(cluster.inventory, "redis"))
    assert changed <= {(h, REPLICATION_TASK) for h in redis_hosts}, describe(runner)
    assert sentinels.master() == report["new_master"]
    # And again: the play that owns Redis and Sentinel settles (the rest of site.yml does not read
    # the master; the whole-site second run is test_idempotence's).
    again = run_playbook("playbooks/redis.yml", cluster.inventory, tmp_path / "again")
    assert again.status == "successful" and changed_hosts(again) == {}, describe(again)
    assert sentinels.master() == report["new_master"]
