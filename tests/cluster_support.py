"""Helpers of the cluster tests (tests/converge, tests/infra): the inventory, Ansible runs, hosts.

Everything is read from the inventory under test (LAB_INVENTORY, default inventory/lab), never
hard-coded, so the same tests check the lab and a production inventory.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable
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
    return list(inventory_data(inventory).get(group, {}).get("hosts", []))


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


# Connects from a host with python3 only (every host has it) and reports what happened:
# "refused", "timeout", or "connected: <first bytes the server sent, after `send`>".
PROBE = """
import socket, sys
host, port, send = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
try:
    s = socket.create_connection((host, port), timeout=5)
except ConnectionRefusedError:
    print("refused"); sys.exit()
except OSError as e:
    print("timeout" if isinstance(e, TimeoutError) else type(e).__name__); sys.exit()
s.settimeout(5)
if send:
    s.sendall(send)
try:
    data = s.recv(512)
except OSError:
    data = b""
print("connected: " + data.decode("latin-1"))
"""


def probe(host: testinfra.host.Host, address: str, port: int, send: str = "") -> str:
    result = host.run("python3 -c %s %s %s %s", PROBE, address, str(port), send)
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


@dataclass(frozen=True)
class Tier:
    """One data-tier server as the clients see it: its address and its settings."""

    name: str
    address: str
    settings: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.settings[key]

    @property
    def firewall(self) -> bool:
        """Whether the role guards this tier's port with nftables (see roles/firewall)."""
        return bool(self.settings["firewall_enabled"])
