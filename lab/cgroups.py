"""One control group per host, so that hosts' systemd instances never share a cgroup tree.

systemd-nspawn puts its container in the cgroup it was started from (its own `payload` and
`supervisor` children). Hosts started from one `lab up` would all share that cgroup, and with it
every unit's cgroup: one host's systemd would create, kill and remove the `system.slice/<unit>`
cgroups of the others. So each host is started from a cgroup of its own, `lab/<lab>/<host>`, in
every hierarchy a container's systemd uses: the unified (v2) one, and on hybrid machines the
legacy `name=systemd` one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

MOUNTS = Path("/proc/self/mounts")
TOP = "lab"


def hierarchies() -> list[Path]:
    """Mount points of the cgroup2 hierarchy and of a legacy name=systemd hierarchy."""
    found = []
    for line in MOUNTS.read_text().splitlines():
        _, mountpoint, fstype, options = line.split()[:4]
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options.split(",")):
            found.append(Path(mountpoint))
    return found


def lab_dirs(lab: str) -> list[Path]:
    return [root / TOP / lab for root in hierarchies()]


def host_dirs(lab: str, host: str) -> list[Path]:
    return [d / host for d in lab_dirs(lab)]


def create(lab: str, host: str) -> list[Path]:
    """Create the host's cgroups; return the files a process writes its PID to, to enter them."""
    dirs = host_dirs(lab, host)
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return [d / "cgroup.procs" for d in dirs]


def enter(procs_files: list[Path]) -> None:
    """Move the calling process into the given cgroups (safe in a freshly forked child)."""
    pid = str(os.getpid()).encode()
    for path in procs_files:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, pid)
        finally:
            os.close(fd)


def pids(lab: str, host: str) -> set[int]:
    """Every process left in the host's cgroups, its subgroups included."""
    found: set[int] = set()
    for d in host_dirs(lab, host):
        for procs_file in d.rglob("cgroup.procs") if d.is_dir() else []:
            try:
                found |= {int(p) for p in procs_file.read_text().split()}
            except OSError:
                continue
    return found


def remove_tree(top: Path) -> None:
    """rmdir a cgroup and its subgroups, deepest first (a cgroup is removed with rmdir)."""
    if not top.is_dir():
        return
    for dirpath, _, _ in sorted(os.walk(top), key=lambda w: w[0].count("/"), reverse=True):
        with contextlib.suppress(OSError):  # still holds a process, or already gone
            os.rmdir(dirpath)


def remove_host(lab: str, host: str) -> None:
    for d in host_dirs(lab, host):
        remove_tree(d)


def remove_lab(lab: str) -> None:
    """Remove the lab's cgroups, and the top `lab` cgroup once no lab uses it."""
    for d in lab_dirs(lab):
        remove_tree(d)
        with contextlib.suppress(OSError):  # another lab's cgroups are still there
            d.parent.rmdir()
