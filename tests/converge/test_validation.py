"""A broken inventory stops at the validation play, with a message a person can act on,
before any task runs on any host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
from cluster_support import copy_inventory, describe, output, run_playbook

VALIDATION_PLAY = "Validate the inventory"


def was_hosts(hosts: dict[str, Any]) -> dict[str, Any]:
    return hosts["all"]["children"]["was"]["hosts"]


def two_was_on_one_address(hosts: dict[str, Any]) -> None:
    first, second = list(was_hosts(hosts))[:2]
    was_hosts(hosts)[second]["ansible_host"] = was_hosts(hosts)[first]["ansible_host"]


def no_db_group(hosts: dict[str, Any]) -> None:
    del hosts["all"]["children"]["db"]


def two_was_on_one_route(hosts: dict[str, Any]) -> None:
    for host in list(was_hosts(hosts))[:2]:
        was_hosts(hosts)[host]["django_was_route"] = "same"


CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "duplicate-address": (two_was_on_one_address, "These hosts share an address"),
    "no-db": (no_db_group, "Group 'db' has 0 host(s) (none) but needs exactly 1"),
    "duplicate-route": (two_was_on_one_route, "These application servers share a balancer route"),
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
    edit, message = CASES[case]
    broken = copy_inventory(inventory, tmp_path / "inventory", edit)
    runner = run_playbook("site.yml", broken, tmp_path / "run")
    text = output(runner)

    assert runner.status == "failed" and runner.rc != 0, describe(runner)
    assert message in " ".join(text.split()), describe(runner)
    plays = task_hosts_by_play(runner)
    # Only the validation play started, and only its run_once host reported anything.
    assert list(plays) == [VALIDATION_PLAY], plays
    assert len(plays[VALIDATION_PLAY]) == 1, plays
    assert not any(runner.stats["changed"].values()), describe(runner)
