"""The lab's layer 2: one bridge per lab, one network namespace and veth pair per host."""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

from lab.system import run

NETNS_DIR = Path("/run/netns")


def netns_name(lab: str, host: str) -> str:
    return f"lab-{lab}-{host}"


def veth_name(lab: str, host: str) -> str:
    """The bridge-side end: short (15 characters at most) and stable per lab and host."""
    return "vl" + hashlib.sha1(f"{lab}/{host}".encode()).hexdigest()[:10]


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def lab_netns(lab: str) -> list[str]:
    prefix = f"lab-{lab}-"
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def ensure_bridge(bridge: str, subnet: ipaddress.IPv4Network) -> None:
    gateway = next(subnet.hosts())
    if not link_exists(bridge):
        run(["ip", "link", "add", bridge, "type", "bridge"])
    cidr = f"{gateway}/{subnet.prefixlen}"
    if cidr not in run(["ip", "-4", "-o", "addr", "show", "dev", bridge]):
        run(["ip", "addr", "add", cidr, "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])


def remove_bridge(bridge: str) -> None:
    if link_exists(bridge):
        run(["ip", "link", "del", bridge])


def ensure_host_network(
    lab: str,
    host: str,
    bridge: str,
    address: ipaddress.IPv4Address,
    subnet: ipaddress.IPv4Network,
) -> str:
    """Create the host's namespace with eth0 on the bridge; return the namespace name."""
    ns = netns_name(lab, host)
    veth = veth_name(lab, host)
    if not netns_exists(ns):
        run(["ip", "netns", "add", ns])
    if not link_exists(veth):
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", veth, "master", bridge, "up"])
    cidr = f"{address}/{subnet.prefixlen}"
    if cidr not in run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"]):
        run(["ip", "-n", ns, "addr", "add", cidr, "dev", "eth0"])
    # A host boots with its own address only, as a VM does (a floating address it held is gone).
    drop_other_addresses(ns, cidr)
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    gateway = next(subnet.hosts())
    run(["ip", "-n", ns, "route", "replace", "default", "via", str(gateway)])
    return ns


def addresses(ns: str) -> list[str]:
    """The IPv4 addresses (CIDR) on the host's eth0."""
    out = run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"])
    return [line.split()[3] for line in out.splitlines() if len(line.split()) > 3]


def drop_other_addresses(ns: str, own_cidr: str) -> list[str]:
    """Remove every address but the host's own from its eth0 (keepalived's floating addresses):
    a crashed machine's addresses vanish with it, but the lab's namespace outlives the host."""
    dropped = [cidr for cidr in addresses(ns) if cidr != own_cidr]
    for cidr in dropped:
        run(["ip", "-n", ns, "addr", "del", cidr, "dev", "eth0"])
    return dropped


def remove_host_network(lab: str, host: str) -> None:
    veth = veth_name(lab, host)
    if link_exists(veth):
        run(["ip", "link", "del", veth])
    ns = netns_name(lab, host)
    if netns_exists(ns):
        run(["ip", "netns", "del", ns])
