"""Processes the lab starts, and finding a host's processes by its namespaces.

Everything is found and stopped by PID: never by name pattern.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from lab import cgroups


def start_daemon(
    cmd: Sequence[str],
    pidfile: Path,
    log: Path,
    cgroup_procs: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
) -> int:
    """Start a long-lived process detached from us, in the given cgroups, with `env` added to
    our environment; record its PID."""
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
            preexec_fn=(lambda: cgroups.enter(list(cgroup_procs))) if cgroup_procs else None,
        )
    pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


def is_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def daemon_pid(pidfile: Path, token: str) -> int | None:
    """The recorded PID if that process is still ours (its command line holds token)."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    if is_alive(pid) and token in _cmdline(pid):
        return pid
    return None


def wait_gone(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(is_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return not any(is_alive(p) for p in pids)


def signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def stop_daemon(pidfile: Path, token: str, timeout: float = 10.0) -> None:
    """SIGTERM a recorded daemon, SIGKILL it if it lingers, forget its PID file."""
    pid = daemon_pid(pidfile, token)
    if pid is not None:
        signal_pid(pid, signal.SIGTERM)
        if not wait_gone([pid], timeout):
            signal_pid(pid, signal.SIGKILL)
            wait_gone([pid], 5)
    pidfile.unlink(missing_ok=True)


def _ns_inode(pid: int | str, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _inner_pid(pid: str) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return line.split()[-1]
    except OSError:
        pass
    return None


def _all_pids() -> list[str]:
    return [p.name for p in Path("/proc").iterdir() if p.name.isdigit()]


def children(pid: int) -> list[int]:
    found = []
    for child in _all_pids():
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(child))
    return found


def host_init(netns_path: Path) -> int | None:
    """The PID of a host's systemd: PID 1 of its own PID namespace, inside the host's netns."""
    try:
        wanted = f"net:[{netns_path.stat().st_ino}]"
    except OSError:
        return None
    for pid in _all_pids():
        if _inner_pid(pid) == "1" and pid != "1" and _ns_inode(pid, "net") == wanted:
            return int(pid)
    return None


def host_processes(init_pid: int) -> list[int]:
    """Every process in the PID namespace of a host's init."""
    pidns = _ns_inode(init_pid, "pid")
    if pidns is None:
        return []
    return [int(p) for p in _all_pids() if _ns_inode(p, "pid") == pidns]
