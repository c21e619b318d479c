"""What a lab should be, read from an Ansible inventory, and every check on it.

Everything here is a pure function of its inputs so each bad input has a unit test.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.system import tool_path

RELEASES = ("trixie", "bookworm")
DEFAULT_RELEASE = "trixie"
# The bridge is named lab-<name>; Linux interface names hold at most 15 characters.
LAB_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,10}$")
HOST_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
# The balancers' floating address, or the first host of group lb, is published on this machine:
# local port -> lb port.
DEFAULT_PUBLISH = {8080: 80, 8443: 443}
# The contract's name for the balancers' floating address (roles/cluster, roles/keepalived).
FLOATING_ADDRESS_KEY = "cluster_lb_floating_address"
PROXY_PORT = 8888


@dataclass(frozen=True)
class HostSpec:
    name: str
    address: ipaddress.IPv4Address
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabSpec:
    name: str
    subnet: ipaddress.IPv4Network
    release: str
    hosts: tuple[HostSpec, ...]
    publish: Mapping[int, int] = field(default_factory=dict)
    # The balancers' floating address (keepalived moves it between them), if the inventory has one.
    floating_address: ipaddress.IPv4Address | None = None

    @property
    def bridge(self) -> str:
        return f"lab-{self.name}"

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The bridge's own address: the subnet's first host address."""
        return next(self.subnet.hosts())

    @property
    def proxy_url(self) -> str:
        return f"http://{self.gateway}:{PROXY_PORT}"

    def host(self, name: str) -> HostSpec:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise LabError(f"no host {name!r} in lab {self.name!r}", f"pick one of: {known}")

    @property
    def published_host(self) -> HostSpec | None:
        return next((h for h in self.hosts if "lb" in h.groups), None)

    @property
    def published_target(self) -> tuple[str, ipaddress.IPv4Address] | None:
        """What the published ports forward to: (a name for messages, its address)."""
        host = self.published_host
        if host is None:
            return None
        if self.floating_address is not None:
            return ("the balancers' floating address", self.floating_address)
        return (host.name, host.address)


def read_inventory(inventory: Path) -> dict[str, Any]:
    """The inventory as Ansible itself resolves it (`ansible-inventory --list`)."""
    if not inventory.exists():
        raise LabError(f"inventory {inventory} does not exist", "pass -i with an inventory path")
    tool = shutil.which("ansible-inventory", path=tool_path()) or "ansible-inventory"
    proc = subprocess.run([tool, "-i", str(inventory), "--list"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(
            f"ansible-inventory could not read {inventory}:\n{proc.stderr.strip()}",
            "fix the inventory's YAML",
        )
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _group_members(data: Mapping[str, Any], group: str, seen: set[str]) -> set[str]:
    if group in seen:
        return set()
    seen.add(group)
    entry = data.get(group, {})
    members = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        members |= _group_members(data, child, seen)
    return members


def _groups_of(data: Mapping[str, Any]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for group in data:
        if group in ("_meta", "all", "ungrouped"):
            continue
        for host in _group_members(data, group, set()):
            groups.setdefault(host, []).append(group)
    return groups


def _one_setting(hostvars: Mapping[str, Mapping[str, Any]], key: str, default: Any) -> Any:
    values = {json.dumps(v.get(key, default), sort_keys=True) for v in hostvars.values()}
    if len(values) > 1:
        raise LabError(
            f"hosts disagree on {key}: {', '.join(sorted(values))}",
            f"set {key} once, in group_vars/all",
        )
    return json.loads(values.pop()) if values else default


def spec_from_inventory(data: Mapping[str, Any]) -> LabSpec:
    """Build and validate a LabSpec from `ansible-inventory --list` output."""
    hostvars: Mapping[str, Mapping[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    all_hosts = sorted(_group_members(data, "all", set()) | set(hostvars))
    if not all_hosts:
        raise LabError("the inventory has no hosts", "add hosts with an ansible_host each")
    hostvars = {h: hostvars.get(h, {}) for h in all_hosts}

    name = str(_one_setting(hostvars, "lab_name", ""))
    check_lab_name(name)
    subnet = parse_subnet(_one_setting(hostvars, "lab_subnet", None))
    release = str(_one_setting(hostvars, "lab_release", DEFAULT_RELEASE))
    if release not in RELEASES:
        raise LabError(
            f"lab_release {release!r} is not supported", f"use one of: {', '.join(RELEASES)}"
        )
    groups = _groups_of(data)
    hosts = []
    for host in all_hosts:
        check_hostname(host)
        address = hostvars[host].get("ansible_host")
        if not address:
            raise LabError(f"host {host} has no ansible_host", f"give {host} an ansible_host")
        hosts.append(
            HostSpec(host, parse_address(host, address), tuple(sorted(groups.get(host, []))))
        )
    check_addresses(hosts, subnet)
    has_lb = any("lb" in h.groups for h in hosts)
    publish_raw = _one_setting(hostvars, "lab_publish", DEFAULT_PUBLISH if has_lb else {})
    publish = {int(k): int(v) for k, v in dict(publish_raw).items()}
    floating = _one_setting(hostvars, FLOATING_ADDRESS_KEY, "")
    floating_address = None
    if floating:
        try:
            floating_address = ipaddress.IPv4Address(str(floating))
        except ValueError as exc:
            raise LabError(
                f"{FLOATING_ADDRESS_KEY} {floating!r} is not an IPv4 address",
                f"set {FLOATING_ADDRESS_KEY} to a free address inside {subnet}",
            ) from exc
        check_floating_address(floating_address, hosts, subnet)
    return LabSpec(name, subnet, release, tuple(hosts), publish, floating_address)


def check_lab_name(name: str) -> None:
    if not LAB_NAME_RE.match(name):
        raise LabError(
            f"lab_name {name!r} is not valid",
            "set lab_name in group_vars/all: a lowercase letter then up to 10 letters or digits",
        )


def parse_subnet(value: Any) -> ipaddress.IPv4Network:
    if not value:
        raise LabError(
            "lab_subnet is not set", "set lab_subnet (e.g. 10.77.0.0/24) in group_vars/all"
        )
    try:
        subnet = ipaddress.IPv4Network(str(value))
    except ValueError as exc:
        raise LabError(
            f"lab_subnet {value!r} is not an IPv4 network: {exc}",
            "use a network address with a prefix, e.g. 10.77.0.0/24",
        ) from exc
    if not subnet.is_private or subnet.prefixlen > 29:
        raise LabError(
            f"lab_subnet {subnet} must be a private network of /29 or larger",
            "pick a range such as 10.77.0.0/24",
        )
    return subnet


def parse_address(host: str, value: Any) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError as exc:
        raise LabError(
            f"host {host}: ansible_host {value!r} is not an IPv4 address",
            "lab hosts need a literal IPv4 address as ansible_host",
        ) from exc


def check_hostname(name: str) -> None:
    labels = name.split(".")
    if len(name) > 63 or not all(HOST_LABEL_RE.match(label) for label in labels):
        raise LabError(
            f"host name {name!r} is not a valid hostname",
            "use letters, digits and inner hyphens only (RFC 1123), at most 63 characters",
        )


def check_addresses(hosts: Iterable[HostSpec], subnet: ipaddress.IPv4Network) -> None:
    gateway = next(subnet.hosts())
    owner: dict[ipaddress.IPv4Address, str] = {}
    for host in hosts:
        if host.address not in subnet or host.address in (
            subnet.network_address,
            subnet.broadcast_address,
        ):
            raise LabError(
                f"host {host.name}: address {host.address} is outside lab_subnet {subnet}",
                f"give {host.name} an ansible_host inside {subnet}",
            )
        if host.address == gateway:
            raise LabError(
                f"host {host.name}: address {host.address} is the lab bridge's own address",
                f"the first address of {subnet} belongs to the bridge; pick another",
            )
        if host.address in owner:
            raise LabError(
                f"hosts {owner[host.address]} and {host.name} have the same address {host.address}",
                "give every host its own ansible_host",
            )
        owner[host.address] = host.name


def check_floating_address(
    address: ipaddress.IPv4Address, hosts: Iterable[HostSpec], subnet: ipaddress.IPv4Network
) -> None:
    """The floating address lives on the lab's bridge too: inside the subnet, nobody's own."""
    fix = f"set {FLOATING_ADDRESS_KEY} to a free address inside {subnet}"
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise LabError(f"{FLOATING_ADDRESS_KEY} {address} is outside lab_subnet {subnet}", fix)
    if address == next(subnet.hosts()):
        raise LabError(f"{FLOATING_ADDRESS_KEY} {address} is the lab bridge's own address", fix)
    for host in hosts:
        if host.address == address:
            raise LabError(f"{FLOATING_ADDRESS_KEY} {address} is {host.name}'s own address", fix)


def check_overlaps(
    spec: LabSpec,
    other_labs: Mapping[str, ipaddress.IPv4Network],
    routes: Iterable[Mapping[str, str]],
) -> None:
    """The lab's subnet must not overlap another lab's or any route of this machine."""
    for other, subnet in other_labs.items():
        if other != spec.name and subnet.overlaps(spec.subnet):
            raise LabError(
                f"lab_subnet {spec.subnet} overlaps lab {other!r} ({subnet})",
                f"pick another lab_subnet, or `lab down` lab {other!r} first",
            )
    for route in routes:
        dst = route.get("dst", "default")
        if dst == "default" or route.get("dev") == spec.bridge:
            continue
        network = ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False)
        if network.overlaps(spec.subnet):
            raise LabError(
                f"lab_subnet {spec.subnet} overlaps this machine's route {dst} "
                f"(dev {route.get('dev', '?')})",
                "pick a lab_subnet that this machine does not already use",
            )
