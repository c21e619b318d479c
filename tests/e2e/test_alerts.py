"""Monitoring end to end: every exporter scraped and up, the operators' page, and a CPU burn on one
application server mailed as an alert naming that server, then as resolved
(drills.cpu_burn_alert)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cluster_support import get_host, group_hosts, host_fact
from drills import Monitoring, cpu_burn_alert, names_host
from e2e_support import Cluster, wait_for
from outside import Outside, outside_client

# The alert waits 2 minutes (`for: 2m`) on a rate over 1 minute; the bound is 5.
MAIL_DEADLINE = 300


@pytest.fixture(scope="module")
def monitoring(cluster: Cluster) -> Monitoring:
    found = Monitoring.read(cluster.inventory)
    if found is None:
        pytest.skip(f"{cluster.inventory} has no monitoring group")
    return found


def expected_targets(inventory: Path) -> set[tuple[str, str]]:
    """(job, host) of every exporter, as each host's exporters fact lists its jobs."""
    retired = set(group_hosts(inventory, "retired"))
    return {
        (job, host)
        for host in group_hosts(inventory, "all")
        if host not in retired
        for job in host_fact(get_host(inventory, host), "exporters")["jobs"]
    }


def test_every_exporter_is_a_target_and_up(monitoring: Monitoring) -> None:
    expected = expected_targets(monitoring.inventory)

    def targets() -> dict[tuple[str, str], str]:
        return {
            (r["metric"]["job"], r["metric"]["host"]): r["value"][1] for r in monitoring.query("up")
        }

    def all_up() -> dict[tuple[str, str], str] | None:
        now = targets()
        return now if expected <= set(now) and set(now.values()) == {"1"} else None

    try:
        up = wait_for("every exporter up", all_up, timeout=120)
    except AssertionError:
        now = targets()
        down = sorted(t for t, v in now.items() if v != "1")
        raise AssertionError(f"missing: {sorted(expected - set(now))}; down: {down}") from None
    print(f"\n{len(up)} targets up, the {len(expected)} exporters of the inventory among them")


def test_the_page_shows_requests_and_cpu_per_server(
    cluster: Cluster, monitoring: Monitoring
) -> None:
    page_url = monitoring.fact["page"]
    for _ in range(40):  # traffic for the requests table
        requests.get(f"{cluster.url}/", timeout=10)

    def shows_every_was() -> str | None:
        page = requests.get(page_url, timeout=10)
        page.raise_for_status()
        section = page.text.split('id="was"', 1)[1].split("</table>", 1)[0]
        return page.text if all(f"<td>{was}</td>" in section for was in cluster.was) else None

    page = wait_for("the page to list every WAS with its requests", shows_every_was, timeout=90)
    cpu = page.split('id="cpu"', 1)[1].split("</table>", 1)[0]
    for host in group_hosts(cluster.inventory, "all"):
        assert f"<td>{host}</td>" in cpu, f"{host} has no CPU row"
    for table in ("alerts", "lb", "replication", "down"):
        assert f'id="{table}"' in page


@pytest.fixture
def outside(cluster: Cluster) -> Iterator[Outside]:
    with outside_client(cluster.inventory) as client:
        yield client


def test_the_page_is_closed_outside_the_admin_networks(
    monitoring: Monitoring, outside: Outside
) -> None:
    page = monitoring.fact["page"]
    proc = outside.run("curl", "-sS", "-o", "/dev/null", "--max-time", "3", page)
    assert proc.returncode != 0, f"{outside.address} opened the page: {proc.stdout}"
    assert requests.get(page, timeout=10).status_code == 200  # from an admin network


def test_a_cpu_burn_on_a_was_is_mailed_naming_it_then_resolved(
    cluster: Cluster, monitoring: Monitoring
) -> None:
    was = sorted(cluster.was)[0]
    burn = cpu_burn_alert(monitoring, was, deadline=MAIL_DEADLINE)
    print(
        f"\nburn on {was}: firing mail {burn.fired_after:.0f} s after the start, resolved mail "
        f"{burn.resolved_after:.0f} s after the end; "
        f"HostCpuHigh mails: {sorted(burn.mails.values())}"
    )
    others = set(group_hosts(cluster.inventory, "all")) - {was}
    naming_others = {n: s for n, s in burn.mails.items() if any(names_host(s, h) for h in others)}
    assert naming_others == {}, f"CPU mails about hosts that did not burn: {naming_others}"
