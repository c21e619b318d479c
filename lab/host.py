"""One lab host: an overlay root, a network namespace and a systemd-nspawn container."""

from __future__ import annotations

import ipaddress
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from lab import cgroups, network, procs
from lab.errors import LabError
from lab.paths import LabPaths
from lab.spec import HostSpec, LabSpec
from lab.system import run

SSH_OPTIONS = [
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
]


def machine_name(lab: str, host: str) -> str:
    return network.netns_name(lab, host)


def _mountpoints() -> set[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return {line.split()[4] for line in lines}


def is_mounted(path: Path) -> bool:
    return str(path) in _mountpoints()


def lab_mounts(paths: LabPaths) -> list[Path]:
    prefix = str(paths.root) + "/"
    return sorted(Path(m) for m in _mountpoints() if m.startswith(prefix))


def mount_overlay(paths: LabPaths, host: str, base: Path) -> Path:
    hdir = paths.host_dir(host)
    root = paths.host_root(host)
    for sub in ("upper", "work", "root"):
        (hdir / sub).mkdir(parents=True, exist_ok=True)
    if not is_mounted(root):
        options = f"lowerdir={base},upperdir={hdir / 'upper'},workdir={hdir / 'work'}"
        run(["mount", "-t", "overlay", "overlay", "-o", options, str(root)])
    return root


def configure_identity(paths: LabPaths, spec: LabSpec, host: HostSpec) -> None:
    """Give a new host its own name, machine id, SSH host keys, lab key and apt proxy."""
    root = paths.host_root(host.name)
    (root / "etc/hostname").write_text(f"{host.name}\n")
    (root / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n{host.address}\t{host.name}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    run(["ssh-keygen", "-A", "-f", str(root)])
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(paths.ssh_key.with_suffix(".pub"), ssh_dir / "authorized_keys")
    (ssh_dir / "authorized_keys").chmod(0o600)
    (root / "etc/apt/apt.conf.d/01lab-proxy").write_text(
        f'Acquire::http::Proxy "{spec.proxy_url}";\nAcquire::https::Proxy "{spec.proxy_url}";\n'
    )


def nspawn_pid(paths: LabPaths, spec: LabSpec, host: str) -> int | None:
    return procs.daemon_pid(paths.pidfile(host), machine_name(spec.name, host))


def init_pid(paths: LabPaths, spec: LabSpec, host: str) -> int | None:
    """The host's systemd: systemd-nspawn's child, or (orphaned) PID 1 in the host's netns."""
    pid = nspawn_pid(paths, spec, host)
    kids = procs.children(pid) if pid is not None else []
    if kids:
        return kids[0]
    return procs.host_init(network.NETNS_DIR / network.netns_name(spec.name, host))


def is_running(paths: LabPaths, spec: LabSpec, host: str) -> bool:
    return nspawn_pid(paths, spec, host) is not None and init_pid(paths, spec, host) is not None


def boot(paths: LabPaths, spec: LabSpec, host: HostSpec, base: Path) -> int:
    """Mount, wire and boot a host (creating its identity the first time)."""
    fresh = not (paths.host_dir(host.name) / "upper/etc/hostname").exists()
    root = mount_overlay(paths, host.name, base)
    if fresh:
        configure_identity(paths, spec, host)
    ns = network.ensure_host_network(spec.name, host.name, spec.bridge, host.address, spec.subnet)
    cmd = [
        "systemd-nspawn",
        "--directory",
        str(root),
        "--machine",
        machine_name(spec.name, host.name),
        "--register=no",
        "--keep-unit",
        "--boot",
        "--console=passive",
        "--resolv-conf=off",
        "--link-journal=no",
        # Like a VM, a host may manage its own firewall (nftables) in its own network namespace.
        "--capability=CAP_NET_ADMIN",
        f"--network-namespace-path={network.NETNS_DIR / ns}",
    ]
    return procs.start_daemon(
        cmd,
        paths.pidfile(host.name),
        paths.log(host.name),
        cgroup_procs=cgroups.create(spec.name, host.name),
        # Like a VM, a host sets its own network sysctls (e.g. net.ipv4.ip_nonlocal_bind, for a
        # service that listens on a floating address); the rest of /proc/sys stays read-only.
        env={"SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"},
    )


def wait_ssh(paths: LabPaths, address: ipaddress.IPv4Address, timeout: float = 120) -> str:
    """Wait until the host answers SSH and its boot is finished; return systemd's state."""
    deadline = time.monotonic() + timeout
    cmd = [
        "ssh",
        "-i",
        str(paths.ssh_key),
        *SSH_OPTIONS,
        "-o",
        "ConnectTimeout=2",
        f"root@{address}",
        "systemctl",
        "is-system-running",
        "--wait",
    ]
    while time.monotonic() < deadline:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            continue
        if proc.returncode != 255:
            return proc.stdout.strip() or "unknown"
        time.sleep(0.3)
    raise LabError(
        f"{address} did not answer SSH within {timeout:.0f} s",
        f"see the boot log in {paths.log_dir}",
    )


def stop(paths: LabPaths, spec: LabSpec, host: str, timeout: float = 20) -> None:
    """Clean poweroff: SIGTERM to systemd-nspawn makes the host's systemd shut down."""
    pid = nspawn_pid(paths, spec, host)
    if pid is not None:
        procs.signal_pid(pid, signal.SIGTERM)
        procs.wait_gone([pid], timeout)
    reap(paths, spec, host)


def kill(paths: LabPaths, spec: LabSpec, host: str) -> int:
    """A crash: SIGKILL the host's PID 1; the kernel then kills every process of the host."""
    init = init_pid(paths, spec, host)
    if init is None:
        raise LabError(f"host {host} is not running", f"`lab start {host}` boots it")
    members = procs.host_processes(init)
    # At the instant of a crash the host's network stack is gone with it: the namespace, which
    # outlives the host in the lab, must not keep answering for a floating address.
    drop_floating_addresses(spec, host)
    procs.signal_pid(init, signal.SIGKILL)
    procs.wait_gone(members, 10)
    pid = nspawn_pid(paths, spec, host)
    if pid is not None:
        procs.wait_gone([pid], 10)
    return len(members)


def drop_floating_addresses(spec: LabSpec, host: str) -> None:
    """A host that is down holds no floating address (its namespace outlives it in the lab)."""
    ns = network.netns_name(spec.name, host)
    own = next((h for h in spec.hosts if h.name == host), None)
    if own is not None and network.netns_exists(ns):
        network.drop_other_addresses(ns, f"{own.address}/{spec.subnet.prefixlen}")


def reap(paths: LabPaths, spec: LabSpec, host: str) -> None:
    """Kill whatever is left of a host, by PID: its container's processes, then nspawn, then
    anything still in its cgroups; remove those cgroups."""
    init = init_pid(paths, spec, host)
    if init is not None:
        members = procs.host_processes(init)
        procs.signal_pid(init, signal.SIGKILL)
        procs.wait_gone(members, 10)
    pid = nspawn_pid(paths, spec, host)
    if pid is not None:
        procs.signal_pid(pid, signal.SIGKILL)
        procs.wait_gone([pid], 10)
    stray = cgroups.pids(spec.name, host)
    for stray_pid in stray:
        procs.signal_pid(stray_pid, signal.SIGKILL)
    procs.wait_gone(sorted(stray), 10)
    cgroups.remove_host(spec.name, host)
    drop_floating_addresses(spec, host)
    paths.pidfile(host).unlink(missing_ok=True)
    shutil.rmtree(
        Path("/run/systemd/nspawn/propagate") / machine_name(spec.name, host), ignore_errors=True
    )


def unmount(paths: LabPaths, host: str) -> None:
    root = paths.host_root(host)
    if is_mounted(root):
        run(["umount", str(root)])


def destroy(paths: LabPaths, spec: LabSpec, host: str) -> None:
    """Remove a host for good: processes, mount, network and disk."""
    reap(paths, spec, host)
    unmount(paths, host)
    network.remove_host_network(spec.name, host)
    shutil.rmtree(paths.host_dir(host), ignore_errors=True)
    paths.log(host).unlink(missing_ok=True)
