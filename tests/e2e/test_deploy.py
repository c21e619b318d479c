"""Rolling deploys (playbooks/deploy.yml): a new release under GET and POST load, then a rollback.

Clients GET pages and the static file each page links, and a signed-in client signs the
guestbook, all through the front door, while the deploy runs. Every answer must be 2xx or 3xx,
with no retry. Each answer names its server and release (X-Served-By, X-App-Release), so the
test sees the servers switch one at a time.

Besides a free client, one client per WAS asks for that WAS (its sticky cookie, set afresh on
every round), so each server is seen before and after its switch whatever the balancer's
counts: mod_lbmethod_byrequests counts sticky requests too, and after an earlier test pinned
thousands of requests to one WAS, it sends every new client to the other until they even out.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner
import pytest
import requests
from cluster_support import changed_hosts, describe, group_hosts, run_playbook
from drills import new_release_tree
from e2e_support import Cluster, csrf_token, pinned, served_by, sign_up

RELEASE_HEADER = "X-App-Release"
STATIC_LINK = re.compile(r'href="(/static/core/app\.[0-9a-f]{12}\.css)"')


@dataclass
class Seen:
    """What the clients saw: (time, server, release) of each page, and every bad answer."""

    pages: list[tuple[float, str, str]] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    static_links: set[str] = field(default_factory=set)
    posts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def releases_of(self, server: str) -> list[str]:
        """The releases a server answered with, in order, repeats collapsed."""
        found: list[str] = []
        for _, name, release in self.pages:
            if name == server and (not found or found[-1] != release):
                found.append(release)
        return found

    def first_time(self, server: str, release: str) -> float:
        return min(t for t, name, r in self.pages if name == server and r == release)

    def last_time(self, server: str, release: str) -> float:
        return max(t for t, name, r in self.pages if name == server and r == release)


def check(seen: Seen, what: str, response: requests.Response) -> None:
    with seen.lock:
        if not 200 <= response.status_code < 400:
            seen.bad.append(f"{what}: HTTP {response.status_code}")


def reader(cluster: Cluster, seen: Seen, stop: threading.Event, pin: str = "") -> None:
    """GETs pages through the front door; with `pin`, each round asks for that WAS (the balancer
    sends the client elsewhere while that WAS is out)."""
    session = requests.Session()
    started = time.monotonic()
    while not stop.is_set():
        if pin:
            session = pinned(cluster, pin)
        for path in ("/", "/guestbook/"):
            try:
                page = session.get(f"{cluster.url}{path}", timeout=30)
            except requests.RequestException as exc:
                with seen.lock:
                    seen.bad.append(f"GET {path}: {type(exc).__name__}")
                continue
            check(seen, f"GET {path}", page)
            release = page.headers.get(RELEASE_HEADER, "")
            with seen.lock:
                seen.pages.append((time.monotonic() - started, served_by(page), release))
            for link in STATIC_LINK.findall(page.text):
                seen.static_links.add(link)
                try:
                    check(seen, f"GET {link}", session.get(f"{cluster.url}{link}", timeout=30))
                except requests.RequestException as exc:
                    with seen.lock:
                        seen.bad.append(f"GET {link}: {type(exc).__name__}")
        session.cookies.clear()


def writer(cluster: Cluster, seen: Seen, stop: threading.Event, username: str) -> None:
    session = requests.Session()
    sign_up(cluster, session, username)
    n = 0
    while not stop.is_set():
        n += 1
        try:
            form = session.get(f"{cluster.url}/guestbook/new/", timeout=30)
            check(seen, "GET /guestbook/new/", form)
            answer = session.post(
                f"{cluster.url}/guestbook/new/",
                data={
                    "csrfmiddlewaretoken": csrf_token(form.text),
                    "name": username,
                    "email": f"{username}@example.com",
                    "message": f"deploy drill {n}",
                },
                headers={"Referer": f"{cluster.url}/guestbook/new/"},
                allow_redirects=False,
                timeout=30,
            )
        except (requests.RequestException, AssertionError) as exc:
            with seen.lock:
                seen.bad.append(f"POST /guestbook/new/: {type(exc).__name__} {exc}")
            continue
        check(seen, "POST /guestbook/new/", answer)
        with seen.lock:
            seen.posts += 1
        time.sleep(0.2)


@contextmanager
def load(cluster: Cluster, username: str) -> Iterator[Seen]:
    seen, stop = Seen(), threading.Event()
    pins = ["", *cluster.was]
    with ThreadPoolExecutor(len(pins) + 1) as pool:
        futures = [pool.submit(reader, cluster, seen, stop, pin) for pin in pins]
        futures.append(pool.submit(writer, cluster, seen, stop, username))
        try:
            time.sleep(2)
            yield seen
            time.sleep(2)
        finally:
            stop.set()
        for future in futures:
            future.result()


def deploy(cluster: Cluster, workdir: Path, cmdline: str) -> ansible_runner.Runner:
    runner = run_playbook("playbooks/deploy.yml", cluster.inventory, workdir, cmdline=cmdline)
    assert runner.status == "successful", describe(runner)
    return runner


def taken_out(runner: ansible_runner.Runner) -> set[tuple[str, str]]:
    """(server, balancer) of each server a run set `disabled` on a balancer (apache_lb's
    member.yml), as the module reports it."""
    found = set()
    for event in runner.events:
        data = event.get("event_data", {})
        task = data.get("task", "")
        if (
            event.get("event") == "runner_item_on_ok"
            and task.startswith("Ensure the member is in the wanted state")
            and task.endswith(", disabled")
            and data["res"].get("changed")
        ):
            found.add((data["host"], data["res"]["item"]))
    return found


def release_through_front_door(cluster: Cluster) -> str:
    return requests.get(f"{cluster.url}/healthz", timeout=10).headers.get(RELEASE_HEADER, "")


def check_roll(seen: Seen, cluster: Cluster, old: str, new: str) -> None:
    assert seen.bad == [], f"{len(seen.bad)} answers outside 2xx/3xx: {Counter(seen.bad)}"
    assert seen.posts > 0, "the writer signed the guestbook during the deploy"
    servers = list(cluster.was)
    for server in servers:
        assert seen.releases_of(server) == [old, new], (server, seen.releases_of(server))
    # One at a time, in inventory order: each switched after the one before it.
    switched = [seen.first_time(server, new) for server in servers]
    assert switched == sorted(switched), dict(zip(servers, switched, strict=True))
    # Side by side: the last server still served the old release once the first served the new.
    assert seen.last_time(servers[-1], old) > switched[0], "the two releases never ran side by side"


def test_a_rolling_deploy_and_its_rollback_fail_no_request(
    cluster: Cluster, tmp_path: Path
) -> None:
    if len(cluster.was) < 2:
        pytest.skip("a rolling deploy without a failed request needs two WAS or more")
    old = release_through_front_door(cluster)
    assert old, f"the app names its release in {RELEASE_HEADER}"
    tree = new_release_tree(tmp_path)

    every_server_out = {
        (was, lb) for was in cluster.was for lb in group_hosts(cluster.inventory, "lb")
    }
    suffix = int(time.time())
    with load(cluster, f"deployer{suffix}") as seen:
        run = deploy(cluster, tmp_path / "deploy", f"-e app_src={tree}")
    changed = changed_hosts(run)
    new = release_through_front_door(cluster)
    assert new and new != old
    print(f"\ndeploy {old} -> {new}: {len(seen.pages)} pages, {seen.posts} posts, {changed}")
    check_roll(seen, cluster, old, new)
    assert taken_out(run) == every_server_out, describe(run)
    assert len(seen.static_links) >= 2, f"both releases' static files served: {seen.static_links}"

    again = changed_hosts(deploy(cluster, tmp_path / "again", f"-e app_src={tree}"))
    assert sum(again.values()) == 0, f"a second deploy of the same release changed {again}"

    with load(cluster, f"rollbacker{suffix}") as seen:
        run = deploy(cluster, tmp_path / "rollback", f"-e app_release={old}")
    assert release_through_front_door(cluster) == old
    check_roll(seen, cluster, new, old)
    assert taken_out(run) == every_server_out, describe(run)
