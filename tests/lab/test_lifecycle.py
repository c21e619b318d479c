"""The lab end to end on a two-host lab of its own: up, ping, crash, restart, down, no trace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
INVENTORY = HERE / "inventory"
LAB = "itest"
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


def lab(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(BIN / "lab"), "-i", str(INVENTORY), *args], capture_output=True, text=True, timeout=600
    )
    if check:
        assert proc.returncode == 0, f"lab {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def ansible(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ansible"), "-i", str(INVENTORY), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def leftovers() -> dict[str, list[str]]:
    """Everything of lab itest that could outlive it on this machine."""
    ps = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True).stdout
    processes = [
        line
        for line in ps.splitlines()
        if f"lab-{LAB}-" in line and " Z" not in line and "ps -eo" not in line
    ]
    mounts = [
        line
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if f"/var/lib/lab/{LAB}/" in line
    ]
    netns = (
        [p.name for p in Path("/run/netns").glob(f"lab-{LAB}-*")]
        if Path("/run/netns").is_dir()
        else []
    )
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    bridge = [line for line in links.splitlines() if f"lab-{LAB}:" in line]
    veths = [line for line in links.splitlines() if f"master lab-{LAB} " in line]
    state = [str(p) for p in [Path(f"/var/lib/lab/{LAB}")] if p.exists()]
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/lab/{LAB}")]
    orphans = orphan_host_processes()
    found = {
        "processes": processes,
        "mounts": mounts,
        "netns": netns,
        "bridge": bridge,
        "veths": veths,
        "state": state,
        "cgroups": cgroups,
        "orphaned host processes": orphans,
    }
    return {kind: items for kind, items in found.items() if items}


def orphan_host_processes() -> list[str]:
    """Processes running in a network namespace of the lab's subnet (hosts' systemd and sshd)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"container=systemd-nspawn" in environ and proc.joinpath("ns/net").exists():
            netns_of = subprocess.run(
                ["ip", "netns", "identify", proc.name], capture_output=True, text=True
            ).stdout.strip()
            if netns_of.startswith(f"lab-{LAB}-") or not netns_of:
                addr = subprocess.run(
                    ["nsenter", "-t", proc.name, "-n", "ip", "-o", "-4", "addr"],
                    capture_output=True,
                    text=True,
                ).stdout
                if "10.78.0." in addr:
                    found.append(proc.name)
    return found


@pytest.fixture(scope="module")
def itest_lab():
    lab("down")  # a lab killed midway by an earlier run is cleaned up first
    yield lab("up")
    lab("down", check=False)


def test_lifecycle_leaves_nothing_behind(itest_lab) -> None:
    assert "node1" in itest_lab.stdout and "answers SSH" in itest_lab.stdout

    again = lab("up")
    assert again.stdout.count("already running: unchanged") == 2

    # Each host has its own cgroup tree, as a VM would: a unit started on node1 is invisible to
    # node2's systemd (hosts sharing one tree remove each other's unit cgroups).
    lab("ssh", "node1", "systemd-run", "--unit=lab-probe", "sleep", "300")
    seen = lab("ssh", "node2", "find", "/sys/fs/cgroup", "-name", "lab-probe.service").stdout
    assert seen == "", f"node2 sees node1's unit cgroup: {seen}"
    assert lab("ssh", "node1", "systemctl", "is-active", "lab-probe").stdout.strip() == "active"

    ping = ansible("all", "-m", "ping", "-o")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert ping.stdout.count("SUCCESS") == 2

    boot_id = lab("ssh", "node2", "cat", "/proc/sys/kernel/random/boot_id").stdout.strip()
    killed = lab("kill", "node2")
    assert "killed" in killed.stdout
    assert "node2" in lab("status").stdout and "stopped" in lab("status").stdout
    assert lab("ssh", "node2", "true", check=False).returncode == 255

    lab("start", "node2")
    assert lab("ssh", "node2", "systemctl", "is-system-running").stdout.strip() == "running"
    assert lab("ssh", "node2", "cat", "/proc/sys/kernel/random/boot_id").stdout.strip() != boot_id

    lab("down")
    assert leftovers() == {}
