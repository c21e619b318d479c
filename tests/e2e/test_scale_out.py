"""Scale out: one inventory line and one re-run add a WAS, touching nothing else."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import ansible_runner
import pytest
from cluster_support import changed_hosts, copy_inventory, describe, free_host, run_playbook
from e2e_support import Cluster, lab, pinned, read_cluster, served_by, wait_for

MEMBER = re.compile(r'BalancerMember\s+"?http://([^:/"\s]+):')


class ScaleOut(NamedTuple):
    new_host: str  # the WAS the test added
    grown: Cluster  # the cluster with it
    runner: ansible_runner.Runner  # the converge that added it
    apache_pid: str  # the balancer's main process before that converge


def converge(inventory: Path, workdir: Path) -> ansible_runner.Runner:
    runner = run_playbook("site.yml", inventory, workdir)
    assert runner.status == "successful", describe(runner)
    return runner


def add_was(name: str, address: str) -> Callable[[dict[str, Any]], None]:
    def edit(hosts: dict[str, Any]) -> None:
        hosts["all"]["children"]["was"]["hosts"][name] = {"ansible_host": address}

    return edit


def ssh(cluster: Cluster, host: str, command: str) -> str:
    return lab(cluster.inventory, "ssh", host, command)


def apache_pid(cluster: Cluster) -> str:
    service = shlex.quote(cluster.balancer["service"])
    return ssh(cluster, cluster.lb_name, f"systemctl show -p MainPID --value {service}").strip()


@pytest.fixture(scope="module")
def scaled(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleOut]:
    new_host, new_address = free_host(cluster.inventory, "was")
    inventory = copy_inventory(
        cluster.inventory,
        tmp_path_factory.mktemp("scale") / "inventory",
        add_was(new_host, new_address),
    )
    pid = apache_pid(cluster)
    lab(inventory, "up")
    runner = converge(inventory, tmp_path_factory.mktemp("runner"))
    yield ScaleOut(new_host, read_cluster(inventory), runner, pid)
    converge(cluster.inventory, tmp_path_factory.mktemp("restore"))
    lab(cluster.inventory, "prune")


def test_the_run_changed_nothing_on_the_existing_was(cluster: Cluster, scaled: ScaleOut) -> None:
    changed = changed_hosts(scaled.runner)
    assert not set(cluster.was) & set(changed), f"existing WAS changed by the scale-out: {changed}"
    assert changed.get(scaled.new_host, 0) > 0


def test_apache_was_reloaded_not_restarted(cluster: Cluster, scaled: ScaleOut) -> None:
    tasks = [
        e["event_data"].get("task", "")
        for e in scaled.runner.events
        if e["event_data"].get("host") == cluster.lb_name and e.get("event") == "runner_on_ok"
    ]
    assert any(re.search(r"reload.*apache", t, re.I) for t in tasks), tasks
    assert not any(re.search(r"restart.*apache", t, re.I) for t in tasks), tasks
    after = apache_pid(cluster)
    assert after == scaled.apache_pid, "apache's main process is the same one: a graceful reload"


def test_the_new_was_is_a_member(cluster: Cluster, scaled: ScaleOut) -> None:
    site = shlex.quote(scaled.grown.balancer["site_file"])
    config = ssh(cluster, cluster.lb_name, f"cat {site}")
    assert set(MEMBER.findall(config)) == set(scaled.grown.was.values())


def test_the_new_was_has_a_grant(cluster: Cluster, scaled: ScaleOut) -> None:
    query = f"SELECT host FROM mysql.user WHERE user = '{cluster.db_user}'"
    grants = ssh(cluster, cluster.db_name, f"mariadb -N -e {shlex.quote(query)}")
    assert set(grants.split()) == set(scaled.grown.was.values())


def test_the_new_was_serves_through_the_balancer(scaled: ScaleOut) -> None:
    grown, new_host = scaled.grown, scaled.new_host
    client = pinned(grown, new_host)
    wait_for(
        f"{new_host} to serve through the balancer",
        lambda: served_by(client.get(f"{grown.url}/", timeout=10)) == new_host,
        60,
    )
