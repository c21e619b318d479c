"""A broken inventory stops at the validation play, with a message a person can act on,
before any task runs on any host."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
from cluster_support import copy_inventory, describe, output, run_playbook

VALIDATION_PLAY = "Validate the inventory"


# Each case breaks a copy of the inventory's hosts.yml and returns text the validation message
# must hold: the variable to fix, and the host when the problem is a host's. Host variables in
# hosts.yml are inventory like any other (group_vars of the copy are links to the original's).
Case = Callable[[dict[str, Any]], str]

# The contract's placeholder for an example value nobody replaced (inventory/production.example/).
PLACEHOLDER = "CHANGE_ME"


def was_hosts(hosts: dict[str, Any]) -> dict[str, Any]:
    return hosts["all"]["children"]["was"]["hosts"]


def first_was(hosts: dict[str, Any]) -> str:
    return next(iter(was_hosts(hosts)))


def two_was_on_one_address(hosts: dict[str, Any]) -> str:
    first, second = list(was_hosts(hosts))[:2]
    was_hosts(hosts)[second]["ansible_host"] = was_hosts(hosts)[first]["ansible_host"]
    return f"These hosts share an address: {first}, {second}"


def no_db_group(hosts: dict[str, Any]) -> str:
    del hosts["all"]["children"]["db"]
    return "Group 'db' has 0 host(s) (none) but needs at least 1"


def two_was_on_one_route(hosts: dict[str, Any]) -> str:
    for host in list(was_hosts(hosts))[:2]:
        was_hosts(hosts)[host]["cluster_route"] = "same"
    return "These application servers share a balancer route"


def address(value: str, why: str) -> Case:
    """A WAS whose ansible_host is `value`, refused for `why`."""

    def edit(hosts: dict[str, Any]) -> str:
        host = first_was(hosts)
        was_hosts(hosts)[host]["ansible_host"] = value
        return f"ansible_host of {host} is '{value}', {why}"

    return edit


def was_port_unlike_the_balancers(hosts: dict[str, Any]) -> str:
    # The wiring sets django_was_port and apache_lb_member_port from one contract variable: a
    # value in the inventory would be ignored, so validation names the variable to set instead.
    was_hosts(hosts)[first_was(hosts)]["django_was_port"] = 8001
    return "django_was_port is set in"


def placeholder_secret(hosts: dict[str, Any]) -> str:
    host = first_was(hosts)
    was_hosts(hosts)[host]["django_secret_key"] = PLACEHOLDER + "x" * 64
    return f"django_secret_key of {host} still holds the placeholder {PLACEHOLDER}"


def short_secret(hosts: dict[str, Any]) -> str:
    host = first_was(hosts)
    was_hosts(hosts)[host]["django_secret_key"] = "0123456789abcdef"
    return f"django_secret_key of {host} has 16 characters"


def gcs(hosts: dict[str, Any], **variables: str) -> None:
    """Media in GCS for the whole inventory (hosts.yml's all.vars: group_vars/all sets neither)."""
    hosts["all"].setdefault("vars", {}).update(cluster_storage="gcs", **variables)


def gcs_beside_a_storage_host(hosts: dict[str, Any]) -> str:
    gcs(hosts)
    store = next(iter(hosts["all"]["children"]["storage"]["hosts"]))
    return f"cluster_storage is gcs, but group 'storage' has {store}"


def gcs_key_of_a_user(hosts: dict[str, Any]) -> str:
    del hosts["all"]["children"]["storage"]
    user_credentials = {"type": "authorized_user", "client_id": "x" * 40, "refresh_token": "y" * 80}
    gcs(hosts, cluster_gcs_credentials_json=json.dumps(user_credentials))
    return 'cluster_gcs_credentials_json has type "authorized_user", not "service_account"'


CASES: dict[str, tuple[Case, tuple[str, ...]]] = {
    "duplicate-address": (two_was_on_one_address, ()),
    "no-db": (no_db_group, ()),
    "duplicate-route": (two_was_on_one_route, ("cluster_route",)),
    "address-out-of-range": (address("999.1.1.1", "not an IPv4 address"), ()),
    "address-leading-zero": (address("10.77.0.011", "not an IP address"), ("write 10.77.0.11",)),
    "address-is-a-name": (address("was.example.com", "a name, not an IP address"), ()),
    "was-port-in-inventory": (
        was_port_unlike_the_balancers,
        ("apache_lb_member_port", "set cluster_was_port instead"),
    ),
    "placeholder-secret": (placeholder_secret, ()),
    "short-secret": (short_secret, ("needs at least",)),
    "gcs-beside-a-storage-host": (
        gcs_beside_a_storage_host,
        ("or set cluster_storage: s3", "cluster_gcs_credentials_json is not set for"),
    ),
    "gcs-key-of-a-user": (gcs_key_of_a_user, ("Paste the whole JSON key file",)),
}


def task_hosts_by_play(runner: ansible_runner.Runner) -> dict[str, set[str]]:
    """Play name -> hosts that reported a task result in it."""
    plays: dict[str, set[str]] = {}
    for event in runner.events:
        data = event.get("event_data", {})
        if event["event"] == "playbook_on_play_start":
            plays.setdefault(data.get("play", ""), set())
        elif event["event"].startswith("runner_on_") and data.get("host"):
            plays.setdefault(data.get("play", ""), set()).add(data["host"])
    return plays


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_inventory_stops_at_validation(case: str, inventory: Path, tmp_path: Path) -> None:
    edit, more = CASES[case]
    expected: list[str] = []

    def record(hosts: dict[str, Any]) -> None:
        expected.append(edit(hosts))

    broken = copy_inventory(inventory, tmp_path / "inventory", record)
    runner = run_playbook("site.yml", broken, tmp_path / "run")
    text = " ".join(output(runner).split())

    assert runner.status == "failed" and runner.rc != 0, describe(runner)
    for message in [*expected, *more]:
        assert message in text, f"no {message!r} in the output:\n{describe(runner)}"
    plays = task_hosts_by_play(runner)
    # Only the validation play started, and only its run_once host reported anything.
    assert list(plays) == [VALIDATION_PLAY], plays
    assert len(plays[VALIDATION_PLAY]) == 1, plays
    assert not any(runner.stats["changed"].values()), describe(runner)
