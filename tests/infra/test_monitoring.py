"""Monitoring (roles/exporters on every host, roles/monitoring on the monitoring host): exporters on
the private address only, Prometheus with the cluster's rules, Alertmanager mailing to the relay.
What the firewall lets through is the port matrix's business (test_firewall.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cluster_support import FactReader, group_hosts, listening_sockets
from testinfra.host import Host


@pytest.fixture
def exporters_fact(inventory: Path, any_host: Host, read_fact: FactReader) -> dict[str, Any]:
    if not group_hosts(inventory, "monitoring"):
        pytest.skip(f"{inventory} has no monitoring group: no exporters")
    return read_fact(any_host.inventory_name, "exporters")


@pytest.fixture
def monitoring_fact(monitoring_host: Host, read_fact: FactReader) -> dict[str, Any]:
    return read_fact(monitoring_host.inventory_name, "monitoring")


def test_every_host_runs_the_node_exporter(exporters_fact: dict[str, Any]) -> None:
    assert "node" in exporters_fact["jobs"]


def test_the_exporters_run_and_start_at_boot(
    any_host: Host, exporters_fact: dict[str, Any]
) -> None:
    stopped = [s for s in exporters_fact["services"] if not any_host.service(s).is_running]
    disabled = [s for s in exporters_fact["services"] if not any_host.service(s).is_enabled]
    assert (stopped, disabled) == ([], [])


def test_the_exporters_listen_on_the_private_address_only(
    any_host: Host, exporters_fact: dict[str, Any]
) -> None:
    sockets = listening_sockets(any_host)
    own = exporters_fact["address"]
    for job, port in exporters_fact["jobs"].items():
        addresses = {a for a, p in sockets if p == int(port)}
        assert addresses == {own}, f"{job} exporter on port {port} listens on {sorted(addresses)}"


def test_the_host_reports_its_own_cpu_from_its_cgroup(
    any_host: Host, exporters_fact: dict[str, Any]
) -> None:
    """Lab hosts share one kernel: /proc/stat is the machine's, the cgroup the host's own."""
    address, port = exporters_fact["address"], exporters_fact["jobs"]["node"]
    metrics = any_host.check_output("curl -fsS http://%s:%s/metrics", address, str(port))
    lines = [line for line in metrics.splitlines() if line.startswith("cluster_host_cpu")]
    assert any(line.startswith("cluster_host_cpu_seconds_total ") for line in lines), lines
    assert 'cluster_host_cpu_source{source="cgroup"} 1' in lines, lines


def test_prometheus_and_alertmanager_run(monitoring_host: Host) -> None:
    for service in ("prometheus", "prometheus-alertmanager"):
        assert monitoring_host.service(service).is_running, service
        assert monitoring_host.service(service).is_enabled, service


def test_prometheus_loaded_the_cluster_rules(
    monitoring_host: Host, monitoring_fact: dict[str, Any]
) -> None:
    answer = json.loads(
        monitoring_host.check_output("curl -fsS %s/api/v1/rules", monitoring_fact["prometheus_url"])
    )
    alerts = {
        rule["name"]
        for group in answer["data"]["groups"]
        for rule in group["rules"]
        if rule["type"] == "alerting"
    }
    for name in ("HostCpuHigh", "WasOutOfBalancer", "MariaDBReplicationBroken", "RedisDown"):
        assert name in alerts


def test_alertmanager_mails_the_relay_of_the_inventory(
    inventory: Path, monitoring_host: Host, monitoring_fact: dict[str, Any]
) -> None:
    answer = json.loads(
        monitoring_host.check_output(
            "curl -fsS %s/api/v2/status", monitoring_fact["alertmanager_url"]
        )
    )
    config = answer["config"]["original"]
    assert f"to: {monitoring_fact['mail_to']}" in config
    assert "send_resolved: true" in config
