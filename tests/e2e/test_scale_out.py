"""Scale out: one inventory line and one re-run add a WAS, touching nothing else."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
from cluster_support import changed_hosts, copy_inventory, describe, run_playbook
from e2e_support import Cluster, lab, pinned, read_cluster, served_by, wait_for

NEW_HOST = "was3"


def converge(inventory: Path, workdir: Path) -> ansible_runner.Runner:
    runner = run_playbook("site.yml", inventory, workdir)
    assert runner.status == "successful", describe(runner)
    return runner


def add_was(cluster: Cluster) -> Callable[[dict[str, Any]], None]:
    used = {int(a.rsplit(".", 1)[1]) for a in cluster.was.values()}
    new_address = cluster.lb.rsplit(".", 1)[0] + f".{max(used) + 1}"

    def edit(hosts: dict[str, Any]) -> None:
        hosts["all"]["children"]["was"]["hosts"][NEW_HOST] = {"ansible_host": new_address}

    return edit


def ssh(cluster: Cluster, host: str, command: str) -> str:
    return lab(cluster.inventory, "ssh", host, command)


@pytest.fixture(scope="module")
def scaled(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    inventory = copy_inventory(
        cluster.inventory, tmp_path_factory.mktemp("scale") / "inventory", add_was(cluster)
    )
    apache_pid = ssh(cluster, "lb1", "systemctl show -p MainPID --value apache2").strip()
    lab(inventory, "up")
    runner = converge(inventory, tmp_path_factory.mktemp("runner"))
    yield read_cluster(inventory), runner, apache_pid
    converge(cluster.inventory, tmp_path_factory.mktemp("restore"))
    lab(cluster.inventory, "prune")


def test_the_run_changed_nothing_on_the_existing_was(cluster: Cluster, scaled: tuple) -> None:
    _, runner, _ = scaled
    changed = changed_hosts(runner)
    assert not set(cluster.was) & set(changed), f"existing WAS changed by the scale-out: {changed}"
    assert changed.get(NEW_HOST, 0) > 0


def test_apache_was_reloaded_not_restarted(cluster: Cluster, scaled: tuple) -> None:
    _, runner, apache_pid = scaled
    tasks = [
        e["event_data"].get("task", "")
        for e in runner.events
        if e["event_data"].get("host") == "lb1" and e.get("event") == "runner_on_ok"
    ]
    assert any(re.search(r"reload.*apache", t, re.I) for t in tasks), tasks
    assert not any(re.search(r"restart.*apache", t, re.I) for t in tasks), tasks
    after = ssh(cluster, "lb1", "systemctl show -p MainPID --value apache2").strip()
    assert after == apache_pid, "apache's main process is the same one: a graceful reload"


def test_new_was_is_a_member_with_a_grant_and_serves(cluster: Cluster, scaled: tuple) -> None:
    grown, _, _ = scaled
    config = ssh(cluster, "lb1", "apachectl -S >/dev/null; cat /etc/apache2/sites-enabled/*.conf")
    members = set(re.findall(r"BalancerMember\s+http://([\d.]+):", config))
    assert members == set(grown.was.values())

    grants = ssh(cluster, "db1", "mariadb -N -e \"SELECT host FROM mysql.user WHERE user='app'\"")
    assert set(grants.split()) == set(grown.was.values())

    client = pinned(grown, NEW_HOST)
    wait_for(
        f"{NEW_HOST} to serve through the balancer",
        lambda: served_by(client.get(f"{grown.url}/", timeout=10)) == NEW_HOST,
        60,
    )
