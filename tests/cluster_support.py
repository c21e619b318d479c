"""Helpers of the cluster tests (tests/converge, tests/infra, tests/e2e, bench/).

Names, addresses and secrets come from the inventory under test (LAB_INVENTORY, default
inventory/lab); what a role installed (ports, services, paths) from the JSON local fact it leaves
on each host, /etc/ansible/facts.d/<role>.fact. Nothing is hard-coded and no role's defaults are
re-read, so the same tests check the lab and a production inventory.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ansible_runner
import testinfra
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ANSIBLE_CONFIG = REPO / "ansible.cfg"
# testinfra and ansible-runner call ansible-inventory / ansible-playbook by name.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("ANSIBLE_CONFIG", str(ANSIBLE_CONFIG))

# Variables rendered for every host by `host_vars` (templated by Ansible, vault included).
CONNECTION_VARS = (
    "ansible_host",
    "ansible_user",
    "ansible_port",
    "ansible_connection",
    "ansible_ssh_private_key_file",
    "ansible_ssh_common_args",
)
# Secrets the clients of the data tiers present; the inventory holds them (lab: generated files,
# production: the vault), never a fact.
SECRET_VARS = (
    "cluster_db_password",
    "cluster_redis_password",
    "cluster_s3_access_key",
    "cluster_s3_secret_key",
    "cluster_gcs_credentials_json",
)
# Variables rendered by `rendered`: a WAS host's balancer route, and the secrets.
RENDERED_VARS = ("cluster_route", *SECRET_VARS)
FACTS_DIR = "/etc/ansible/facts.d"
# The role serving each group (DESIGN.md); it leaves /etc/ansible/facts.d/<role>.fact on its hosts.
# The firewall role runs on every host and leaves firewall.fact.
GROUP_ROLES = {
    "lb": "apache_lb",
    "was": "django_was",
    "db": "mariadb",
    "redis": "redis",
    "storage": "object_storage",
    "gcs_emulator": "gcs_emulator",
}
# Reads a role's local fact of an inventory host: (host name, role name) -> the fact.
FactReader = Callable[[str, str], dict[str, Any]]


def lab_inventory() -> Path:
    """The inventory under test: $LAB_INVENTORY (relative to the repository) or inventory/lab."""
    path = Path(os.environ.get("LAB_INVENTORY", "inventory/lab"))
    return path if path.is_absolute() else REPO / path


@functools.cache
def inventory_data(inventory: Path) -> dict[str, Any]:
    """`ansible-inventory --list`: groups and raw (untemplated) host variables."""
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"ansible-inventory -i {inventory} failed:\n{proc.stderr}"
    return json.loads(proc.stdout)


def group_hosts(inventory: Path, group: str) -> list[str]:
    """Hosts of a group, its child groups' included ("all" lists every host), in inventory order."""
    return list(dict.fromkeys(_walk_group(inventory_data(inventory), group)))


def _walk_group(data: dict[str, Any], group: str) -> Iterator[str]:
    entry = data.get(group, {})
    yield from entry.get("hosts", [])
    for child in entry.get("children", []):
        yield from _walk_group(data, child)


def host_groups(inventory: Path, host: str) -> set[str]:
    """Every group a host belongs to, directly or through a child group."""
    data = inventory_data(inventory)
    return {g for g in data if g != "_meta" and host in _walk_group(data, g)}


@functools.cache
def host_vars(inventory: Path, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Templated values of `names` for every host, rendered by Ansible (one ad-hoc run).

    Undefined variables come back as None.
    """
    expr = "{{ {" + ", ".join(f"'{n}': {n} | default(none)" for n in names) + "} }}"
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ANSIBLE_CONFIG),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
    }
    proc = subprocess.run(
        [str(BIN / "ansible"), "all", "-i", str(inventory), "-m", "ansible.builtin.debug"]
        + ["-a", f"msg={expr}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, f"rendering {names} failed:\n{proc.stdout[-3000:]}\n{proc.stderr}"
    results = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]
    return {host: result["msg"] for host, result in results.items()}


def rendered(inventory: Path, host: str) -> dict[str, Any]:
    """RENDERED_VARS of one host (None where undefined), rendered once for the whole inventory."""
    return host_vars(inventory, RENDERED_VARS)[host]


def route(inventory: Path, host: str) -> str:
    """The balancer route of a WAS host: its `cluster_route`, else its inventory name."""
    return str(rendered(inventory, host)["cluster_route"] or host)


def address(inventory: Path, host: str) -> str:
    return str(inventory_data(inventory)["_meta"]["hostvars"][host]["ansible_host"])


def get_host(inventory: Path, name: str) -> testinfra.host.Host:
    """A testinfra host reached the way Ansible reaches it.

    testinfra's ansible:// backend reads connection variables untemplated, so a key path such as
    "/var/lib/lab/{{ lab_name }}/id_ed25519" would break it: render them first, then use ssh://.
    """
    hv = host_vars(inventory, CONNECTION_VARS)[name]
    if (hv.get("ansible_connection") or "ssh") not in ("ssh", "smart"):
        return testinfra.get_host(
            f"ansible://{name}?ansible_inventory={inventory}&force_ansible=True"
        )
    user = hv.get("ansible_user") or "root"
    spec = f"ssh://{user}@{hv['ansible_host']}"
    if hv.get("ansible_port"):
        spec += f":{hv['ansible_port']}"
    kwargs: dict[str, Any] = {"ssh_extra_args": hv.get("ansible_ssh_common_args") or ""}
    if hv.get("ansible_ssh_private_key_file"):
        kwargs["ssh_identity_file"] = hv["ansible_ssh_private_key_file"]
    if user != "root":
        kwargs["sudo"] = True
    return testinfra.get_host(spec, **kwargs)


def run_playbook(
    playbook: str,
    inventory: Path,
    workdir: Path,
    cmdline: str | None = None,
    timeout: int = 1800,
) -> ansible_runner.Runner:
    """Run a playbook of this repository with ansible-runner, quietly; the caller asserts."""
    workdir.mkdir(parents=True, exist_ok=True)
    return ansible_runner.run(
        private_data_dir=str(workdir),
        project_dir=str(REPO),
        playbook=str(REPO / playbook),
        inventory=str(inventory),
        cmdline=cmdline,
        envvars={"ANSIBLE_CONFIG": str(ANSIBLE_CONFIG), "ANSIBLE_NOCOLOR": "1"},
        quiet=True,
        timeout=timeout,
    )


def output(runner: ansible_runner.Runner) -> str:
    return Path(runner.stdout.name).read_text(errors="replace")


def describe(runner: ansible_runner.Runner, tail: int = 6000) -> str:
    """What a failed assertion shows: status, stats and the end of the output."""
    return f"status={runner.status} rc={runner.rc} stats={runner.stats}\n{output(runner)[-tail:]}"


def changed_hosts(runner: ansible_runner.Runner) -> dict[str, int]:
    return {h: n for h, n in (runner.stats or {}).get("changed", {}).items() if n}


def copy_inventory(source: Path, target: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of an inventory with hosts.yml edited; group_vars, host_vars, credentials linked.

    The links keep the copy's secrets the same as the original's: the lab generates credentials
    under <inventory>/credentials/, and a fresh directory would mean new passwords.
    """
    target.mkdir(parents=True)
    hosts = yaml.safe_load((source / "hosts.yml").read_text())
    edit(hosts)
    (target / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    for name in ("group_vars", "host_vars", "credentials"):
        if (source / name).exists():
            (target / name).symlink_to((source / name).resolve(), target_is_directory=True)
    return target


def free_host(inventory: Path, group: str) -> tuple[str, str]:
    """A name and an address for a new host of `group` in a lab inventory (scale-out tests).

    The name is `<group><n>`, the first such name the inventory does not use; the address is the
    first free one after the group's highest, inside the inventory's `lab_subnet`.
    """
    hosts = group_hosts(inventory, "all")
    name = next(f"{group}{n}" for n in range(1, len(hosts) + 2) if f"{group}{n}" not in hosts)
    lab_subnet = inventory_data(inventory)["_meta"]["hostvars"][hosts[0]].get("lab_subnet")
    assert lab_subnet, f"{inventory} is not a lab inventory (no lab_subnet): no room to grow"
    subnet = ipaddress.ip_network(str(lab_subnet))
    used = {ipaddress.ip_address(address(inventory, h)) for h in hosts}
    members = group_hosts(inventory, group) or hosts
    candidate = max(ipaddress.ip_address(address(inventory, h)) for h in members)
    while candidate in used:
        candidate += 1
    assert candidate in subnet, f"no free address after the {group} hosts in {subnet}"
    return name, str(candidate)


def host_fact(host: testinfra.host.Host, name: str) -> dict[str, Any]:
    """The JSON local fact role `name` left on the host: /etc/ansible/facts.d/<name>.fact."""
    path = f"{FACTS_DIR}/{name}.fact"
    result = host.run("cat %s", path)
    where = host.backend.get_hostname()
    assert result.rc == 0, (
        f"{where} has no {path} ({result.stderr.strip()}): the role {name} writes it when it "
        "converges; converge first (ansible-playbook site.yml)"
    )
    try:
        fact = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{where}:{path} is not JSON ({exc}): re-run site.yml") from exc
    assert isinstance(fact, dict), f"{where}:{path} holds {type(fact).__name__}, not an object"
    return fact


def curl(host: testinfra.host.Host, *args: str) -> tuple[int, str]:
    """curl on a host: (status code, body); curl printing the code on its own last line."""
    result = host.run(
        "curl -sS --max-time 20 -w '\\n%%{http_code}' " + " ".join(["%s"] * len(args)), *args
    )
    assert result.rc == 0, result.stderr
    body, _, code = result.stdout.rpartition("\n")
    return int(code), body


def listening_sockets(host: testinfra.host.Host) -> set[tuple[str, int]]:
    """(address, port) of the host's listening TCP sockets, from `ss -Hltn`.

    Addresses lose ss's brackets and %interface suffix; a wildcard reads "0.0.0.0", "::" or "*".
    """
    sockets = set()
    for line in host.check_output("ss -Hltn").splitlines():
        local, _, port = line.split()[3].rpartition(":")
        sockets.add((local.strip("[]").partition("%")[0], int(port)))
    return sockets


def is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # a wildcard ("*")
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (mapped or ip).is_loopback


# Connects from a host with python3 only (every host has it) and reports what happened:
# "refused", "timeout", or "connected: <first bytes the server sent, after `send`>".
PROBE = """
import socket, sys
host, port, send, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), float(sys.argv[4])
try:
    s = socket.create_connection((host, port), timeout=timeout)
except ConnectionRefusedError:
    print("refused"); sys.exit()
except OSError as e:
    print("timeout" if isinstance(e, TimeoutError) else type(e).__name__); sys.exit()
s.settimeout(timeout)
if send:
    s.sendall(send)
try:
    data = s.recv(512)
except OSError:
    data = b""
print("connected: " + data.decode("latin-1"))
"""
# Seconds a probe waits for an answer; a probe expected to fail waits less: the firewalls drop
# (no answer at all), so a closed port costs the whole timeout.
PROBE_TIMEOUT = 5.0
CLOSED_PROBE_TIMEOUT = 2.0
# What a probe of a port that must not be reachable may report: refused (nothing listens, or no
# firewall) or timeout (a firewall dropped the connection).
CLOSED = ("refused", "timeout")


def probe(
    host: testinfra.host.Host,
    address: str,
    port: int,
    send: str = "",
    timeout: float = PROBE_TIMEOUT,
) -> str:
    result = host.run("python3 -c %s %s %s %s %s", PROBE, address, str(port), send, str(timeout))
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def probe_closed(host: testinfra.host.Host, address: str, port: int, send: str = "") -> str:
    """A probe expected not to connect, with the short timeout."""
    return probe(host, address, port, send, timeout=CLOSED_PROBE_TIMEOUT)


@dataclass(frozen=True)
class Tier:
    """One data-tier server as its clients see it.

    `tier["port"]` reads what its role reports (the role's local fact on that host); secrets come
    from the inventory; `firewall` is whether the host's firewall role says it filters.
    """

    name: str
    address: str
    fact: dict[str, Any]
    secrets: dict[str, Any]
    firewall: bool

    def __getitem__(self, key: str) -> Any:
        return self.fact[key]
