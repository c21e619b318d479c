"""Autoscaling: standby hosts (group was_pool) that the monitoring host's autoscaler moves into the
WAS tier on a scaling alert, and back out on another, by running the installer itself.

The lab gains two standby hosts for this module, and a short cool-down; the module's teardown
converges the lab's own inventory again, which removes the autoscaler, and deletes the two hosts.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import requests
from cluster_support import changed_hosts, describe, free_hosts, output, run_playbook
from drills import (
    Autoscaler,
    Monitoring,
    alert_to_serving,
    failed,
    get_like_a_browser,
    pool_inventory,
    raw_failure,
    scaling_labels,
)
from e2e_support import Cluster, lab, pinned, read_cluster, served_by

COOLDOWN_SECONDS = 90
# A step runs site.yml from the monitoring host (about two minutes here); the bound is generous.
STEP_DEADLINE = 1200


class Pool(NamedTuple):
    autoscaler: Autoscaler
    hosts: list[str]  # the standby hosts, in the order they join


@pytest.fixture(scope="module")
def pool(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    if Monitoring.read(cluster.inventory) is None:
        pytest.skip(f"{cluster.inventory} has no monitoring group: no autoscaler")
    standby = free_hosts(cluster.inventory, "was", 2)
    target = tmp_path_factory.mktemp("pool") / "inventory"
    inventory = pool_inventory(cluster.inventory, target, standby, COOLDOWN_SECONDS)
    lab(inventory, "up")
    runner = run_playbook("site.yml", inventory, tmp_path_factory.mktemp("runner"))
    assert runner.status == "successful", describe(runner)
    monitoring = Monitoring.read(inventory)
    assert monitoring is not None
    yield Pool(Autoscaler(monitoring), [name for name, _ in standby])
    restore = run_playbook("site.yml", cluster.inventory, tmp_path_factory.mktemp("restore"))
    assert restore.status == "successful", describe(restore)
    lab(cluster.inventory, "prune")


def webhook_call(action: str) -> str:
    """A call in Alertmanager's webhook format (version 4), with one firing scaling alert."""
    alert = {"status": "firing", "labels": scaling_labels(action), "annotations": {}}
    return json.dumps({"version": "4", "status": "firing", "alerts": [alert]})


def on(pool: Pool, host: str, command: str) -> str:
    return lab(pool.autoscaler.monitoring.inventory, "ssh", host, command)


def balancer_site(pool: Pool, cluster: Cluster) -> str:
    return on(pool, cluster.lb_name, f"cat {shlex.quote(cluster.balancer['site_file'])}")


# --- The autoscaler, idle ------------------------------------------------------------------------


def test_the_autoscaler_runs_with_no_pool_host_serving(pool: Pool) -> None:
    assert pool.autoscaler.run("systemctl is-active autoscaler").strip() == "active"
    assert pool.autoscaler.state()["serving"] == []


def test_standby_hosts_serve_nothing(cluster: Cluster, pool: Pool) -> None:
    config = balancer_site(pool, cluster)
    for host in pool.hosts:
        address = on(pool, host, "hostname -I").split()[0]
        assert f"//{address}:" not in config, f"standby {host} is a balancer member"
        gunicorn = on(pool, host, "systemctl is-active gunicorn || true").strip()
        assert gunicorn != "active", f"standby {host} runs the app"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("not json", "not JSON"),
        ('{"version": "3", "alerts": []}', "version 4"),
        ('{"version": "4", "alerts": [{"labels": "x"}]}', "without labels"),
    ],
)
def test_a_malformed_webhook_call_changes_nothing(pool: Pool, body: str, words: str) -> None:
    before = pool.autoscaler.state()
    status, answer = pool.autoscaler.post(body)
    assert status == 400, answer
    assert words in answer["error"]
    assert pool.autoscaler.state() == before


def test_a_site_run_stops_while_the_autoscaler_runs_a_step(pool: Pool, tmp_path: Path) -> None:
    """The step's lock, held here by hand: an operator's run would undo the step's members."""
    hold = "systemd-run --unit drill-hold-lock --collect flock /run/autoscaler/lock sleep 600"
    pool.autoscaler.run(hold)
    try:
        inventory = pool.autoscaler.monitoring.inventory
        runner = run_playbook("site.yml", inventory, tmp_path, cmdline="--tags autoscaler")
    finally:
        pool.autoscaler.run("systemctl stop drill-hold-lock")
    assert runner.status == "failed"
    assert "running a scaling step" in output(runner), describe(runner)
    assert not changed_hosts(runner), "the refused run changed hosts"


# --- Scale out ------------------------------------------------------------------------------------


class ScaledOut(NamedTuple):
    host: str
    seconds: float  # from the alert to the first request the new host served
    grown: Cluster


@pytest.fixture(scope="module")
def scaled_out(pool: Pool) -> ScaledOut:
    host = pool.hosts[0]
    inventory = pool.autoscaler.monitoring.inventory

    def serves() -> bool:
        grown = read_cluster(inventory)
        try:
            return served_by(pinned(grown, host).get(f"{grown.url}/", timeout=10)) == host
        except (requests.RequestException, KeyError):  # KeyError: no member of that name yet
            return False

    seconds = alert_to_serving(pool.autoscaler, host, serves, STEP_DEADLINE)
    print(f"\nscale-out: {host} served its first request {seconds:.0f} s after the alert")
    return ScaledOut(host, seconds, read_cluster(inventory))


def test_a_high_load_alert_makes_a_standby_host_serve(pool: Pool, scaled_out: ScaledOut) -> None:
    assert pool.autoscaler.state()["serving"] == [scaled_out.host]
    assert scaled_out.host in scaled_out.grown.routes
    address = on(pool, scaled_out.host, "hostname -I").split()[0]
    grants = on(pool, scaled_out.grown.db_name, "mariadb -N -e 'SELECT host FROM mysql.user'")
    assert address in grants.split(), f"{scaled_out.host} has no database account"


def test_the_step_is_mailed(pool: Pool, scaled_out: ScaledOut) -> None:
    subjects = pool.autoscaler.monitoring.subjects().values()
    assert any(f"{scaled_out.host} joined the WAS tier" in s for s in subjects), list(subjects)


def test_the_same_alert_again_adds_no_host(pool: Pool, scaled_out: ScaledOut) -> None:
    since = pool.autoscaler.clock()
    status, answer = pool.autoscaler.post(webhook_call("scale_out"))
    assert (status, answer) == (202, {"accepted": ["scale_out"]})
    deadline = time.monotonic() + 30
    while "no step: cooling down" not in pool.autoscaler.journal(since):
        assert time.monotonic() < deadline, "the autoscaler logged no refusal of a second step"
        time.sleep(1)
    assert pool.autoscaler.state()["serving"] == [scaled_out.host]


def test_a_later_site_run_keeps_what_scaled(pool: Pool, scaled_out: ScaledOut) -> None:
    """The inventory stays the truth: a plain site.yml from the controller reads the state."""
    before = balancer_site(pool, scaled_out.grown)
    inventory = pool.autoscaler.monitoring.inventory
    runner = run_playbook("site.yml", inventory, inventory.parent / "keep", cmdline="--tags was,lb")
    assert runner.status == "successful", describe(runner)
    assert balancer_site(pool, scaled_out.grown) == before


# --- Scale in -------------------------------------------------------------------------------------


def test_a_low_load_alert_drains_the_host_with_no_failed_request(
    pool: Pool, scaled_out: ScaledOut
) -> None:
    wait = pool.autoscaler.state()["last_step_at"] + COOLDOWN_SECONDS + 1 - time.time()
    time.sleep(max(0.0, wait))
    stop = threading.Event()
    outcomes: list[str] = []

    def load() -> None:
        while not stop.is_set():
            # A new client each time: the balancer spreads them over every member.
            outcomes.append(get_like_a_browser(requests.Session(), f"{scaled_out.grown.url}/"))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        since = pool.autoscaler.clock()
        pool.autoscaler.inject("scale_in")
        pool.autoscaler.wait_for_serving([], since, STEP_DEADLINE)
    finally:
        pool.autoscaler.inject("scale_in", firing=False)
        stop.set()
        for thread in threads:
            thread.join()
    served = {o.split(":", 1)[1] for o in outcomes if o.startswith("ok:")}
    raw = [o for o in outcomes if raw_failure(o)]
    print(f"\nscale-in under load: {len(outcomes)} requests, {len(raw)} raw failures, by {served}")
    assert scaled_out.host in served, "the load never reached the host that left"
    assert [o for o in outcomes if failed(o)] == []
    assert raw == []
    assert scaled_out.host not in read_cluster(pool.autoscaler.monitoring.inventory).routes
    gunicorn = on(pool, scaled_out.host, "systemctl is-active gunicorn || true").strip()
    assert gunicorn != "active", f"{scaled_out.host} still runs the app after it left"
