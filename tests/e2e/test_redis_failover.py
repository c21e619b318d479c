"""Redis Sentinel under fire: the Redis master is killed while a logged-in visitor keeps reading
and writing through the balancers. The visitor stays logged in, every write succeeds, a sentinel
majority promotes the replica, and site.yml afterwards keeps the new master."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from cluster_support import (
    address,
    changed_hosts,
    describe,
    get_host,
    group_hosts,
    host_fact,
    run_playbook,
    sentinel_command,
)
from e2e_support import Cluster, csrf_token, lab, logged_in_as, sign_up, wait_for
from testinfra.host import Host

REPLICATION_TASK = "Ensure the replication settings name the current master"


@dataclass(frozen=True)
class Sentinels:
    """Where the sentinels answer, read while every host is up, and a WAS to ask them from (the
    app's own password, from its environment file)."""

    was: Host
    env_file: str
    where: dict[str, tuple[str, int]]  # sentinel host -> (address, port)
    service: str

    @classmethod
    def read(cls, cluster: Cluster) -> Sentinels:
        was = get_host(cluster.inventory, sorted(cluster.was)[0])
        names = group_hosts(cluster.inventory, "sentinel")
        facts = {n: host_fact(get_host(cluster.inventory, n), "sentinel") for n in names}
        return cls(
            was=was,
            env_file=host_fact(was, "django_was")["env_file"],
            where={n: (address(cluster.inventory, n), int(f["port"])) for n, f in facts.items()},
            service=str(facts[names[0]]["master_name"]),
        )

    def master(self, asked: str | None = None) -> str:
        """The master's address as a sentinel names it (the first that answers, or `asked`)."""
        for name in [asked] if asked else list(self.where):
            result = self.was.run(
                sentinel_command(
                    self.env_file,
                    *self.where[name],
                    "SENTINEL",
                    "get-master-addr-by-name",
                    self.service,
                )
            )
            if result.rc == 0 and result.stdout.split():
                return result.stdout.split()[0]
        raise AssertionError("no sentinel answered")


def redis_name(cluster: Cluster, redis_address: str) -> str:
    names = [
        n
        for n in group_hosts(cluster.inventory, "redis")
        if address(cluster.inventory, n) == redis_address
    ]
    assert names, f"{redis_address} is no Redis host of {cluster.inventory}"
    return names[0]


@dataclass
class Visitor:
    """A logged-in visitor who reads the feed and signs the guestbook, all the time."""

    cluster: Cluster
    username: str = field(default_factory=lambda: f"sentinel{uuid.uuid4().hex[:8]}")
    session: requests.Session = field(default_factory=requests.Session)
    pages: int = 0
    writes: int = 0
    problems: list[str] = field(default_factory=list)
    slowest: float = 0.0

    def visit(self, stop: threading.Event) -> None:
        url = self.cluster.url
        while not stop.is_set():
            started = time.monotonic()
            try:
                page = self.session.get(f"{url}/", timeout=30)
                if page.status_code != 200 or logged_in_as(page.text) != self.username:
                    self.problems.append(f"GET / {page.status_code} as {logged_in_as(page.text)!r}")
                self.pages += 1
                form = self.session.get(f"{url}/guestbook/new/", timeout=30)
                answer = self.session.post(
                    f"{url}/guestbook/new/",
                    data={
                        "csrfmiddlewaretoken": csrf_token(form.text),
                        "name": self.username,
                        "email": f"{self.username}@example.com",
                        "message": f"written during a Redis failover, {self.writes}",
                    },
                    headers={"Referer": f"{url}/guestbook/new/"},
                    allow_redirects=False,
                    timeout=30,
                )
                if answer.status_code not in (302, 303):
                    self.problems.append(f"POST /guestbook/new/ {answer.status_code}")
                self.writes += 1
            except (requests.RequestException, AssertionError) as exc:
                self.problems.append(f"{type(exc).__name__}: {exc}")
            self.slowest = max(self.slowest, time.monotonic() - started)
            time.sleep(0.2)


def test_a_killed_redis_master_is_replaced_and_nobody_notices(
    cluster: Cluster, tmp_path: Path
) -> None:
    if len(group_hosts(cluster.inventory, "redis")) < 2 or not group_hosts(
        cluster.inventory, "sentinel"
    ):
        pytest.skip(f"{cluster.inventory} has one Redis and no Sentinel")
    sentinels = Sentinels.read(cluster)
    old_master = sentinels.master()
    victim = redis_name(cluster, old_master)
    visitor = Visitor(cluster)
    sign_up(cluster, visitor.session, visitor.username)

    stop = threading.Event()
    worker = threading.Thread(target=visitor.visit, args=(stop,))
    worker.start()
    killed_at = 0.0
    try:
        time.sleep(3)
        lab(cluster.inventory, "kill", victim)
        killed_at = time.monotonic()
        new_master = wait_for(
            "a sentinel majority to promote a replica",
            lambda: (m := sentinels.master()) != old_master and m or None,
            60,
        )
        promoted_after = time.monotonic() - killed_at
        time.sleep(5)  # the visitor keeps going on the new master
    finally:
        stop.set()
        worker.join()
        lab(cluster.inventory, "start", victim)
    report = {
        "victim": victim,
        "new_master": new_master,
        "seconds_to_promote": round(promoted_after, 1),
        "pages": visitor.pages,
        "writes": visitor.writes,
        "problems": len(visitor.problems),
        "slowest_visit_seconds": round(visitor.slowest, 1),
    }
    print(f"\nredis master kill: {json.dumps(report)}")
    assert visitor.problems == [], visitor.problems[:10]
    assert visitor.writes > 10 and visitor.pages > 10, report

    # The old master comes back as a replica of the new one (Sentinel converts it).
    def every_sentinel_follows() -> bool | None:
        return all(sentinels.master(s) == new_master for s in sentinels.where) or None

    wait_for("every sentinel to name the new master", every_sentinel_follows, 60)
    assert logged_in_as(visitor.session.get(f"{cluster.url}/", timeout=30).text) == visitor.username

    # site.yml after the failover: only the replication files change, and the master stays.
    runner = run_playbook("site.yml", cluster.inventory, tmp_path / "after-failover")
    assert runner.status == "successful", describe(runner)
    changed = {
        (e["event_data"]["host"], e["event_data"]["task"].split(" : ")[-1])
        for e in runner.events
        if e.get("event") == "runner_on_ok" and e["event_data"].get("res", {}).get("changed")
    }
    redis_hosts = set(group_hosts(cluster.inventory, "redis"))
    assert changed <= {(h, REPLICATION_TASK) for h in redis_hosts}, describe(runner)
    assert sentinels.master() == new_master
    again = run_playbook("site.yml", cluster.inventory, tmp_path / "again")
    assert again.status == "successful" and changed_hosts(again) == {}, describe(again)
    assert sentinels.master() == new_master
