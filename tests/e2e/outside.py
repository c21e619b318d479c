"""A client outside the admin networks: its own network namespace on the lab's bridge.

The controller reaches the lab from the bridge's address, which the lab inventory lists as an admin
network; what the balancer refuses to everyone else needs a client that is not the controller. This
one takes the subnet's last address. Its namespace is named like the lab's own (lab-<name>-…), so
`lab up` and `lab down` remove it too if a run is stopped before it does.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cluster_support import address, group_hosts, inventory_data

HOST = "outside"


@dataclass(frozen=True)
class Outside:
    netns: str
    address: str

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command in the namespace (the controller's files, the outside's network)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def curl(self, url: str, *args: str) -> tuple[int, dict[str, str], str]:
        """GET (or what args say) from outside: status, lower-cased headers, body."""
        proc = self.run(
            "curl", "-sS", "--max-time", "20", "-D", "/dev/stdout", "-o", "/dev/stdout", *args, url
        )
        assert proc.returncode == 0, f"curl {url} from {self.address}: {proc.stderr}"
        return parse_response(proc.stdout)


def parse_response(raw: str) -> tuple[int, dict[str, str], str]:
    """curl -D - output: the status, headers and body (text mode has turned CRLF into LF)."""
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True)


@contextmanager
def outside_client(inventory: Path) -> Iterator[Outside]:
    """A namespace with the lab subnet's last address on the lab's bridge, removed afterwards."""
    hosts = group_hosts(inventory, "all")
    variables = inventory_data(inventory)["_meta"]["hostvars"][hosts[0]]
    lab_name, lab_subnet = variables.get("lab_name"), variables.get("lab_subnet")
    assert lab_name and lab_subnet, f"{inventory} is not a lab inventory (lab_name, lab_subnet)"
    subnet = ipaddress.ip_network(str(lab_subnet))
    client = str(subnet.broadcast_address - 1)
    assert client not in {address(inventory, h) for h in hosts}, f"{client} belongs to a lab host"
    netns, veth = f"lab-{lab_name}-{HOST}", f"vl{lab_name[:6]}out"
    if Path("/run/netns", netns).exists():
        ip("netns", "del", netns)
    ip("netns", "add", netns)
    try:
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        ip("link", "set", veth, "master", f"lab-{lab_name}", "up")
        ip("-n", netns, "addr", "add", f"{client}/{subnet.prefixlen}", "dev", "eth0")
        ip("-n", netns, "link", "set", "lo", "up")
        ip("-n", netns, "link", "set", "eth0", "up")
        yield Outside(netns=netns, address=client)
    finally:
        # Deleting the namespace deletes its eth0, and with it the bridge's end of the pair.
        ip("netns", "del", netns)
