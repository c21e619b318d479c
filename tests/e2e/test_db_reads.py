"""Reads from a replica (core.dbrouter on the WAS), against the lab's real MariaDB servers: a plain
read is served by a replica, a client's own write is visible to its next read, and with the
replica killed the pages still load."""

from __future__ import annotations

import time
import uuid

import requests
from drills import DbServers, Poster
from e2e_support import Cluster, lab, png_bytes, sign_up, wait_for


def read_server_id(cluster: Cluster) -> str:
    """The server id behind a plain read, as a WAS reports it (/readyz, admin networks only)."""
    answer = requests.get(f"{cluster.url}/readyz", timeout=15)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["database_reads"]["server_id"])


def server_id(servers: DbServers, name: str) -> str:
    rows = servers.query(name, "SELECT @@server_id")
    assert rows, f"{name} does not answer"
    return rows[0][0]


def test_a_plain_read_is_served_by_a_replica(cluster: Cluster, servers: DbServers) -> None:
    primary = servers.primary()
    replica_ids = {server_id(servers, n) for n in servers.names if n != primary}
    assert {read_server_id(cluster) for _ in range(6)} <= replica_ids


def test_a_clients_own_write_is_visible_to_its_next_read(
    cluster: Cluster, servers: DbServers
) -> None:
    poster = Poster(cluster.url, png_bytes((90, 160, 40)))
    sign_up(cluster, poster.session, poster.username)
    for n in range(5):
        caption = f"read-your-writes-{uuid.uuid4().hex[:8]}-{n}"
        posted = poster.send(caption, follow=True)
        assert posted.status_code == 200, posted.status_code
        assert caption in poster.session.get(f"{cluster.url}/", timeout=15).text


def test_with_the_replica_killed_pages_still_load(cluster: Cluster, servers: DbServers) -> None:
    """Every page loads while the only replica is dead: a read that was on its way there waits
    out the replica's timeout and runs again on the primary (core.dbrouter)."""
    primary = servers.primary()
    replica = next(n for n in servers.names if n != primary)
    # A new visitor each time (no sticky cookie): the pages spread over every WAS, whose workers
    # read from the replica and keep their connections there. (One pinned visitor would also
    # skew the balancer's counts toward one WAS for the tests after this one.)
    pages = requests.Session()
    for _ in range(20):
        pages.cookies.clear()
        pages.get(f"{cluster.url}/", timeout=15).raise_for_status()
    lab(cluster.inventory, "kill", replica)
    try:
        failures, slowest, count = [], 0.0, 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            started = time.monotonic()
            pages.cookies.clear()
            page = pages.get(f"{cluster.url}/", timeout=30)
            slowest = max(slowest, time.monotonic() - started)
            count += 1
            if page.status_code != 200:
                failures.append(page.status_code)
        print(f"{replica} killed: {count} pages, {len(failures)} failed, slowest {slowest:.1f} s")
        assert failures == []
        assert read_server_id(cluster) == server_id(servers, primary)
    finally:
        lab(cluster.inventory, "start", replica)
        wait_for(f"{replica} to replicate again", lambda: servers.source(replica) or None, 120)
