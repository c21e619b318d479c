"""The cluster's port matrix: which source reaches which (host, port), declared and probed.

The declared matrix is written here, by group and service, from the design (who may talk to
whom); the ports come from the facts the roles leave on the hosts. It is never read from the
firewall's own rules: a test that compared the rules with themselves would prove nothing.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import testinfra
from cluster_support import (
    GROUP_ROLES,
    FactReader,
    address,
    group_hosts,
    host_groups,
    is_loopback,
    listening_sockets,
)

OUTSIDE = "outside"  # the machine running the tests: the lab's bridge, an admin's workstation
ANYONE = "anyone"
CONNECT_TIMEOUT = 1.5
WILDCARDS = ("0.0.0.0", "::", "*")

# (source, target, port): a connection from source to target's inventory address on port.
Probe = tuple[str, str, int]


@dataclass(frozen=True)
class Service:
    """A port a group serves: its key in the group's role fact, and the groups that may connect."""

    name: str
    group: str
    port_key: str
    clients: tuple[str, ...]
    admin: bool = False  # the target's admin networks may connect too


# The declared matrix (DESIGN.md): lb's HTTP(S) for anyone, gunicorn for the balancers, the object
# store for the application servers, the balancers and the database servers (backups), the lab's
# GCS emulator for the application servers and the balancers, MariaDB for the
# application servers and the other database servers (replicas copy the primary), Redis for them
# and for its replicas and sentinels, Sentinel for the application servers and the other
# sentinels. With a monitoring group, its host scrapes every exporter, and its Prometheus and
# Alertmanager answer the admin networks. Nothing else crosses hosts; SSH answers the admin
# networks only.
SERVICES = (
    Service("http", "lb", "http_port", (ANYONE,)),
    Service("https", "lb", "https_port", (ANYONE,)),
    Service("gunicorn", "was", "port", ("lb",)),
    Service("s3", "storage", "s3_port", ("was", "lb", "db")),
    Service("gcs", "gcs_emulator", "port", ("was", "lb")),
    Service("mariadb", "db", "port", ("was", "db")),
    Service("redis", "redis", "port", ("was", "redis", "sentinel")),
    Service("sentinel", "sentinel", "port", ("was", "sentinel")),
    # The operators' page and the alerts: the monitoring host and the admin networks.
    Service("prometheus", "monitoring", "prometheus_port", ("monitoring",), admin=True),
    Service("alertmanager", "monitoring", "alertmanager_port", ("monitoring",), admin=True),
)
# With a monitoring group every host's exporters (the `exporters` fact: job -> port) answer the
# monitoring host, and no one else.
EXPORTER_CLIENTS = ("monitoring",)


@dataclass(frozen=True)
class Node:
    """An inventory host as the matrix sees it."""

    name: str
    address: str
    groups: frozenset[str]
    facts: dict[str, dict[str, Any]]  # role -> its fact; "firewall" on every host
    listening: frozenset[int]  # ports listening on the inventory address or a wildcard
    elsewhere: frozenset[tuple[str, int]]  # on other non-loopback addresses: not probed

    @property
    def firewall(self) -> dict[str, Any]:
        return self.facts["firewall"]

    def service_ports(self) -> dict[int, Service]:
        """The declared services of this host's groups, by the port its facts report."""
        ports = {}
        for service in SERVICES:
            if service.group in self.groups:
                port = self.facts[GROUP_ROLES[service.group]][service.port_key]
                if port is not None:
                    ports[int(port)] = service
        for job, port in self.facts.get("exporters", {}).get("jobs", {}).items():
            ports[int(port)] = Service(f"metrics-{job}", "all", job, EXPORTER_CLIENTS)
        return ports

    def probed_ports(self) -> list[int]:
        """What every source tries: what listens, what should, and SSH."""
        declared = set(self.service_ports()) | {int(self.firewall["ssh_port"])}
        return sorted(self.listening | declared)


def read_node(inventory: Path, name: str, host: testinfra.host.Host, read_fact: FactReader) -> Node:
    """Facts and listening sockets of one inventory host."""
    groups = frozenset(host_groups(inventory, name))
    roles = ["firewall", *(GROUP_ROLES[g] for g in sorted(groups) if g in GROUP_ROLES)]
    if group_hosts(inventory, "monitoring") and "retired" not in groups:
        roles.append("exporters")
    own = address(inventory, name)
    sockets = {(a, p) for a, p in listening_sockets(host) if not is_loopback(a)}
    return Node(
        name=name,
        address=own,
        groups=groups,
        facts={role: read_fact(name, role) for role in roles},
        listening=frozenset(p for a, p in sockets if a in WILDCARDS or a == own),
        elsewhere=frozenset((a, p) for a, p in sockets if a not in WILDCARDS and a != own),
    )


def sources(nodes: Iterable[Node], outside_address: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Every source: name -> (its address, its groups); the outside belongs to no group."""
    found = {OUTSIDE: (outside_address, frozenset[str]())}
    found.update({n.name: (n.address, n.groups) for n in nodes})
    return found


def in_networks(source_address: str, networks: Iterable[str]) -> bool:
    ip = ipaddress.ip_address(source_address)
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)


def expected_matrix(nodes: list[Node], outside_address: str) -> set[Probe]:
    """The connections the design allows, among the probed ones."""
    allowed: set[Probe] = set()
    everyone = sources(nodes, outside_address)
    for target in nodes:
        services = target.service_ports()
        ssh = int(target.firewall["ssh_port"])
        for source, (source_address, groups) in everyone.items():
            if source == target.name:
                continue
            if not target.firewall["enabled"]:
                # No firewall: whatever listens on the address answers everyone.
                allowed |= {(source, target.name, p) for p in target.probed_ports()}
                continue
            admin = in_networks(source_address, target.firewall["admin_networks"])
            allowed |= {
                (source, target.name, port)
                for port, service in services.items()
                if ANYONE in service.clients
                or groups & set(service.clients)
                or (service.admin and admin)
            }
            if admin:
                allowed.add((source, target.name, ssh))
    return allowed


# Tries every "address:port" argument at once, threaded, each with the timeout of argv[1];
# prints the JSON list of those that connected. python3's standard library only: every host has it.
CONNECTS = """
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
timeout, targets = float(sys.argv[1]), sys.argv[2:]
def connects(target):
    address, _, port = target.rpartition(":")
    try:
        socket.create_connection((address, int(port)), timeout=timeout).close()
    except OSError:
        return False
    return True
with ThreadPoolExecutor(max(1, len(targets))) as pool:
    print(json.dumps([t for t, ok in zip(targets, pool.map(connects, targets)) if ok]))
"""


def connects_from(host: testinfra.host.Host | None, targets: list[str]) -> set[str]:
    """The targets ("address:port") a host connects to, in one command; None: from here."""
    if not targets:
        return set()
    args = [str(CONNECT_TIMEOUT), *targets]
    if host is None:
        proc = subprocess.run(
            [sys.executable, "-c", CONNECTS, *args], capture_output=True, text=True, check=True
        )
        return set(json.loads(proc.stdout))
    result = host.run("python3 -c %s" + " %s" * len(args), CONNECTS, *args)
    assert result.rc == 0, f"probing from {host.backend.get_hostname()}: {result.stderr}"
    return set(json.loads(result.stdout))


def targets_of(nodes: list[Node], source: str) -> dict[str, tuple[str, int]]:
    """What a source probes: "address:port" -> (target name, port), itself excluded."""
    return {
        f"{n.address}:{port}": (n.name, port)
        for n in nodes
        if n.name != source
        for port in n.probed_ports()
    }


def found_from(source: str, nodes: list[Node], host: testinfra.host.Host | None) -> set[Probe]:
    targets = targets_of(nodes, source)
    return {(source, *targets[t]) for t in connects_from(host, list(targets))}


def local_address_towards(address: str) -> str:
    """This machine's source address towards `address` (a UDP connect sends no packet)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((address, 9))
        return str(s.getsockname()[0])


def render(nodes: list[Node], outside_address: str, found: set[Probe], expected: set[Probe]) -> str:
    """The matrix as a table: a row per source, a column per target:port."""
    columns = [(n.name, p) for n in nodes for p in n.probed_ports()]
    headers = [f"{t}:{p}".center(len("OPEN!")) for t, p in columns]
    rows = [(f"{OUTSIDE} ({outside_address})", OUTSIDE)] + [
        (f"{n.name} ({n.address})", n.name) for n in nodes
    ]
    width = max(len(label) for label, _ in rows)

    def cell(source: str, target: str, port: int) -> str:
        if source == target:
            return "."
        key = (source, target, port)
        return {
            (True, True): "open",
            (True, False): "OPEN!",
            (False, True): "SHUT!",
            (False, False): "-",
        }[(key in found, key in expected)]

    lines = ["source \\ target".ljust(width) + " | " + " | ".join(headers)]
    for label, source in rows:
        pairs = zip(columns, headers, strict=True)
        cells = [cell(source, t, p).center(len(h)) for (t, p), h in pairs]
        lines.append((label.ljust(width) + " | " + " | ".join(cells)).rstrip())
    lines.append(
        "open: connected, allowed; -: did not connect, not allowed; OPEN!: connected, not allowed; "
        "SHUT!: allowed, did not connect; .: the host itself"
    )
    lines += [f"firewall disabled on {n.name}" for n in nodes if not n.firewall["enabled"]]
    lines += [
        f"not probed, listening on {n.name} beyond its inventory address: {sorted(n.elsewhere)}"
        for n in nodes
        if n.elsewhere
    ]
    return "\n".join(lines)
