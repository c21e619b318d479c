"""Scale out: one inventory line and one re-run add a WAS, touching nothing else.
Scale in: moving it to the `retired` group and one re-run take it out and leave it no credential."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import ansible_runner
import pytest
from cluster_support import (
    BIN,
    changed_hosts,
    copy_inventory,
    describe,
    free_host,
    run_playbook,
)
from e2e_support import Cluster, lab, pinned, read_cluster, served_by, wait_for

MEMBER = re.compile(r'BalancerMember\s+"?http://([^:/"\s]+):')


class ScaleOut(NamedTuple):
    new_host: str  # the WAS the test added
    new_address: str
    grown: Cluster  # the cluster with it
    runner: ansible_runner.Runner  # the converge that added it
    apache_pid: str  # the balancer's main process before that converge
    # Set once a later converge has put the cluster back as it was (the scale-in does).
    restored: dict[str, bool]


def converge(inventory: Path, workdir: Path) -> ansible_runner.Runner:
    runner = run_playbook("site.yml", inventory, workdir)
    assert runner.status == "successful", describe(runner)
    return runner


def add_was(name: str, address: str) -> Callable[[dict[str, Any]], None]:
    def edit(hosts: dict[str, Any]) -> None:
        hosts["all"]["children"]["was"]["hosts"][name] = {"ansible_host": address}

    return edit


def add_retired(name: str, address: str) -> Callable[[dict[str, Any]], None]:
    def edit(hosts: dict[str, Any]) -> None:
        hosts["all"]["children"]["retired"] = {"hosts": {name: {"ansible_host": address}}}

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
    restored = {"done": False}
    yield ScaleOut(new_host, new_address, read_cluster(inventory), runner, pid, restored)
    if not restored["done"]:
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


# --- Scale in -------------------------------------------------------------------------------------


class ScaleIn(NamedTuple):
    host: str  # the retired WAS
    address: str
    inventory: Path  # the inventory that retired it (the lab knows the host through it)
    credentials: dict[str, str]  # what its environment file held, by variable, before it retired


def credentials_of(cluster: Cluster, host: str) -> dict[str, str]:
    """The secret values of a WAS's environment file (read over SSH: never on a command line)."""
    env_file = shlex.quote(cluster_env_file(cluster, host))
    values = {}
    for line in ssh(cluster, host, f"cat {env_file}").splitlines():
        name, _, value = line.partition("=")
        if re.search(r"PASSWORD|SECRET|KEY|REDIS_URL", name) and len(value) >= 16:
            values[name] = value
    assert {"DJANGO_SECRET_KEY", "DJANGO_DB_PASSWORD"} <= set(values), sorted(values)
    return values


def cluster_env_file(cluster: Cluster, host: str) -> str:
    fact = ssh(cluster, host, "cat /etc/ansible/facts.d/django_was.fact")
    return str(json.loads(fact)["env_file"])


def files_written_since_boot(inventory: Path, host: str) -> bytes:
    """Every small file the host wrote since its first boot, code and package data left out."""
    skip = " -o ".join(
        f"-path {p}"
        for p in ("/usr", "/proc", "/sys", "/dev", "/run", "/var/lib/apt", "/var/lib/dpkg",
                  "/var/cache", "/opt/app/venv", "/opt/app/releases")
    )  # fmt: skip
    command = (
        f"find / -xdev \\( {skip} \\) -prune -o -type f -newer /etc/machine-id -size -8M "
        "-print0 | xargs -0 -r cat"
    )
    proc = subprocess.run(
        [str(BIN / "lab"), "-i", str(inventory), "ssh", host, command],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert len(proc.stdout) > 10_000, "found almost nothing: the search itself is broken"
    return proc.stdout


@pytest.fixture(scope="module")
def scaled_in(
    cluster: Cluster, scaled: ScaleOut, tmp_path_factory: pytest.TempPathFactory
) -> ScaleIn:
    credentials = credentials_of(scaled.grown, scaled.new_host)
    inventory = copy_inventory(
        cluster.inventory,
        tmp_path_factory.mktemp("scale-in") / "inventory",
        add_retired(scaled.new_host, scaled.new_address),
    )
    converge(inventory, tmp_path_factory.mktemp("runner-in"))
    scaled.restored["done"] = True
    return ScaleIn(scaled.new_host, scaled.new_address, inventory, credentials)


def test_a_retired_was_is_no_member(cluster: Cluster, scaled_in: ScaleIn) -> None:
    site = shlex.quote(cluster.balancer["site_file"])
    config = ssh(cluster, cluster.lb_name, f"cat {site}")
    assert set(MEMBER.findall(config)) == set(cluster.was.values())


def test_a_retired_was_has_no_database_account(cluster: Cluster, scaled_in: ScaleIn) -> None:
    grants = ssh(cluster, cluster.db_name, "mariadb -N -e 'SELECT DISTINCT host FROM mysql.user'")
    assert scaled_in.address not in grants.split()


def test_a_retired_was_holds_no_credential(cluster: Cluster, scaled_in: ScaleIn) -> None:
    written = files_written_since_boot(scaled_in.inventory, scaled_in.host)
    left = [name for name, value in scaled_in.credentials.items() if value.encode() in written]
    assert not left, f"{scaled_in.host} still holds {left} after it retired"
    state = lab(scaled_in.inventory, "ssh", scaled_in.host, "systemctl is-active gunicorn || true")
    state = state.strip()
    assert state != "active", "gunicorn still runs on the retired server"
