"""The balancer pair: one floating address, held by exactly one balancer whose Apache answers.

Each drill breaks the balancer that holds the address while browser-like clients GET pages
through it (tests/drills.py), then measures how long the address took to move and what the
clients saw. The broken balancer comes back and must not take the address back.
"""

from __future__ import annotations

import json
import shlex

import pytest
from cluster_support import group_hosts, inventory_data
from drills import FloatingAddress, balancer_failover, hold_steady
from e2e_support import ARTIFACTS, Cluster, lab, wait_for

# VRRP declares a holder dead after about three missed advertisements (1 s apart); a failing
# Apache after two failed checks (1 s apart). Generous bounds for a shared machine.
MOVE_BOUND_SECONDS = 10


@pytest.fixture(scope="module")
def floating(cluster: Cluster) -> FloatingAddress:
    balancers = tuple(group_hosts(cluster.inventory, "lb"))
    if not cluster.floating or len(balancers) < 2:
        pytest.skip("this inventory has no balancer pair with a floating address")
    hostvars = inventory_data(cluster.inventory)["_meta"]["hostvars"]
    return FloatingAddress(str(hostvars[balancers[0]]["lab_name"]), cluster.floating, balancers)


def report(name: str, found: dict[str, object]) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"e2e-lb-{name}.json").write_text(json.dumps(found, indent=2) + "\n")
    print(f"\nbalancer {name}: {json.dumps(found)}")


def check_the_move(found: dict[str, object]) -> None:
    assert found["most_holders_at_once"] == 1, f"two balancers held the address at once: {found}"
    assert found["new_holder"] not in (found["victim"], []), found
    assert isinstance(found["seconds_to_move"], float), found
    assert found["seconds_to_move"] <= MOVE_BOUND_SECONDS, found
    assert found["failed_after_the_move"] == 0, found
    assert found["requests"] > 0, found


def test_the_steady_pair_has_exactly_one_holder(floating: FloatingAddress) -> None:
    seen = hold_steady(floating, 3)
    assert len(seen) == 1 and len(next(iter(seen))) == 1, f"holders seen over 3 s: {seen}"


def test_a_killed_balancer_hands_the_address_over(
    cluster: Cluster, floating: FloatingAddress
) -> None:
    killed: list[str] = []

    def crash(holder: str) -> None:
        lab(cluster.inventory, "kill", holder)
        killed.append(holder)

    try:
        found = balancer_failover(floating, f"{cluster.url}/guestbook/", crash)
    finally:
        for host in killed:
            lab(cluster.inventory, "start", host)
    report("kill", found)
    check_the_move(found)
    # A dead host answers nothing: clients wait for the new holder, and a resend covers the
    # connections that were open on the old one.
    assert found["failed_after_one_retry"] == 0, found
    # Back up, the old holder stands by: no preemption, so the address stays where it is.
    back = hold_steady(floating, 5)
    assert back == {(found["new_holder"],)}, f"after {killed} came back: {back}"


def test_a_dead_apache_gives_the_address_away(cluster: Cluster, floating: FloatingAddress) -> None:
    service = shlex.quote(str(cluster.balancer["service"]))
    stopped: list[str] = []

    def stop_apache(holder: str) -> None:
        lab(cluster.inventory, "ssh", holder, f"systemctl stop {service}")
        stopped.append(holder)

    try:
        found = balancer_failover(floating, f"{cluster.url}/guestbook/", stop_apache)
    finally:
        for host in stopped:
            lab(cluster.inventory, "ssh", host, f"systemctl start {service}")
    report("apache-stop", found)
    # Until the check fails twice, the holder's kernel refuses connections to the dead Apache:
    # those requests fail (reported); from the move on, none does.
    check_the_move(found)
    # Its Apache answers again: it becomes a backup, and the address stays put.
    wait_for(
        f"keepalived on {stopped[0]} to see Apache answer again",
        lambda: (
            "Entering BACKUP STATE"
            in lab(
                cluster.inventory,
                "ssh",
                stopped[0],
                "journalctl -u keepalived --no-pager -n 5 -o cat",
            )
        ),
        30,
    )
    back = hold_steady(floating, 3)
    assert back == {(found["new_holder"],)}, f"after Apache on {stopped} came back: {back}"
