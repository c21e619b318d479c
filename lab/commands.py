"""The lab's commands: each takes a validated LabSpec and does one job."""

from __future__ import annotations

import concurrent.futures
import shutil
import sys
import time
from pathlib import Path

from lab import cgroups, gcs_key, network, services, state
from lab import host as hosts
from lab.errors import LabError
from lab.image import ensure_base_image
from lab.paths import LabPaths, base_image
from lab.spec import LabSpec, check_overlaps
from lab.system import machine_routes, run


def say(message: str) -> None:
    print(message, flush=True)


def host_say(name: str, message: str) -> None:
    say(f"  [{name}] {message}")


def ensure_ssh_key(paths: LabPaths) -> None:
    if not paths.ssh_key.exists():
        paths.root.mkdir(parents=True, exist_ok=True)
        run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"lab-{paths.name}",
                "-f",
                str(paths.ssh_key),
            ]
        )


def clean_leftovers(paths: LabPaths, spec: LabSpec, keep_running: bool) -> None:
    """Undo what a killed earlier run left: orphaned hosts, mounts, namespaces."""
    known = set(state.load(paths)["hosts"]) | {h.name for h in spec.hosts}
    if paths.root.joinpath("hosts").is_dir():
        known |= {p.name for p in paths.root.joinpath("hosts").iterdir()}
    running = {n for n in known if keep_running and hosts.is_running(paths, spec, n)}
    for name in sorted(known - running):
        if hosts.init_pid(paths, spec, name) is not None or hosts.nspawn_pid(paths, spec, name):
            host_say(name, "reaping processes left by an earlier run")
        hosts.reap(paths, spec, name)
        hosts.unmount(paths, name)
        network.remove_host_network(spec.name, name)
    keep_mounts = {paths.host_root(n) for n in running}
    for mount in reversed(hosts.lab_mounts(paths)):
        if mount not in keep_mounts:
            run(["umount", "--lazy", str(mount)])
    keep_netns = {network.netns_name(spec.name, n) for n in running}
    for ns in network.lab_netns(spec.name):
        if ns not in keep_netns:
            run(["ip", "netns", "del", ns])


def up(paths: LabPaths, spec: LabSpec, credentials: Path | None = None) -> None:
    """Boot every host that is not running. `credentials`: the directory of the inventory's
    generated secrets. A lab whose hosts hold other secrets (another checkout's, or this path's
    before a fresh clone, or unknown) is rebuilt first: our converge could not log in to them."""
    started = time.monotonic()
    ours = state.secrets_id(credentials) if credentials is not None else None
    theirs = state.load(paths).get("credentials")
    running = [h.name for h in spec.hosts if hosts.is_running(paths, spec, h.name)]
    if ours is not None and theirs != ours and running:
        say(
            f"lab {spec.name} is running with secrets other than those in {credentials} "
            "(another checkout, or an earlier clone, brought it up). Rebuilding it."
        )
        down(paths, spec)
    check_overlaps(spec, state.other_labs(), machine_routes())
    say(
        f"lab {spec.name}: {len(spec.hosts)} host(s) on {spec.bridge} {spec.subnet}, "
        f"Debian {spec.release}"
    )
    clean_leftovers(paths, spec, keep_running=True)
    base = ensure_base_image(spec.release, say=say)
    ensure_ssh_key(paths)
    has_emulator = any(gcs_key.EMULATOR_GROUP in h.groups for h in spec.hosts)
    if has_emulator and gcs_key.ensure_key(paths.gcs_key, spec.name):
        say(f"service-account key for the GCS emulator: {paths.gcs_key}")
    network.ensure_bridge(spec.bridge, spec.subnet)
    if services.ensure_proxy(paths, spec):
        say(f"proxy for apt and pip listening on {spec.proxy_url}")
    recorded = state.load(paths)["hosts"]
    booting = {}
    for host in spec.hosts:
        if hosts.is_running(paths, spec, host.name):
            host_say(host.name, f"{host.address} already running: unchanged")
            continue
        host_say(host.name, f"booting at {host.address}")
        hosts.boot(paths, spec, host, base)
        booting[host.name] = host
        recorded[host.name] = str(host.address)
    state.save(paths, spec, recorded, ours)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(booting))) as pool:
        futures = {pool.submit(hosts.wait_ssh, paths, h.address): h for h in booting.values()}
        for future in concurrent.futures.as_completed(futures):
            host = futures[future]
            host_say(
                host.name,
                f"answers SSH, systemd {future.result()} ({time.monotonic() - started:.1f} s)",
            )
    for line in services.ensure_published(paths, spec):
        say(f"published {line}")
    extra = sorted(set(recorded) - {h.name for h in spec.hosts})
    for name in extra:
        say(f"host {name} is no longer in the inventory: `lab prune` removes it")
    say(f"lab {spec.name} is up in {time.monotonic() - started:.1f} s")


def prune(paths: LabPaths, spec: LabSpec) -> None:
    recorded = state.load(paths)["hosts"]
    extra = sorted(set(recorded) - {h.name for h in spec.hosts})
    for name in extra:
        host_say(name, "not in the inventory: powering off and removing")
        hosts.stop(paths, spec, name)
        hosts.destroy(paths, spec, name)
        del recorded[name]
    state.save(paths, spec, recorded)
    say(f"pruned {len(extra)} host(s)" if extra else "nothing to prune")


def down(paths: LabPaths, spec: LabSpec) -> None:
    """Power every host off cleanly, then reap and remove everything of the lab."""
    started = time.monotonic()
    names = sorted(set(state.load(paths)["hosts"]) | {h.name for h in spec.hosts})
    services.stop_published(paths)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        for name, _ in zip(
            names, pool.map(lambda n: hosts.stop(paths, spec, n), names), strict=False
        ):
            host_say(name, "powered off")
    for name in names:
        hosts.destroy(paths, spec, name)
    clean_leftovers(paths, spec, keep_running=False)
    services.stop_proxy(paths)
    network.remove_bridge(spec.bridge)
    cgroups.remove_lab(spec.name)
    shutil.rmtree(paths.root, ignore_errors=True)
    say(f"lab {spec.name} is down in {time.monotonic() - started:.1f} s; nothing of it is left")


def url(paths: LabPaths, spec: LabSpec) -> None:
    """Where a browser on this machine reaches the balancer: the local port published for 80."""
    local = next((local for local, remote in spec.publish.items() if remote == 80), None)
    if local is None:
        raise LabError(
            f"lab {spec.name} publishes no HTTP port", "set lab_publish, e.g. {8080: 80}"
        )
    say(f"http://localhost:{local}")


def status(paths: LabPaths, spec: LabSpec) -> None:
    recorded = state.load(paths)["hosts"]
    rows = [("HOST", "ADDRESS", "GROUPS", "STATE")]
    for host in spec.hosts:
        if hosts.is_running(paths, spec, host.name):
            current = "running"
        elif host.name in recorded:
            current = "stopped"
        else:
            current = "absent"
        rows.append((host.name, str(host.address), ",".join(host.groups), current))
    for name in sorted(set(recorded) - {h.name for h in spec.hosts}):
        current = "running" if hosts.is_running(paths, spec, name) else "stopped"
        rows.append((name, recorded[name], "-", f"{current}, not in inventory"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())


def start(paths: LabPaths, spec: LabSpec, name: str) -> None:
    host = spec.host(name)
    if hosts.is_running(paths, spec, name):
        say(f"{name} is already running")
        return
    if name not in state.load(paths)["hosts"]:
        raise LabError(f"host {name} was never created", "run `lab up` first")
    hosts.reap(paths, spec, name)
    hosts.boot(paths, spec, host, base_image(spec.release))
    say(f"{name}: systemd {hosts.wait_ssh(paths, host.address)}")


def stop(paths: LabPaths, spec: LabSpec, name: str) -> None:
    spec.host(name)
    hosts.stop(paths, spec, name)
    say(f"{name} powered off")


def kill(paths: LabPaths, spec: LabSpec, name: str) -> None:
    spec.host(name)
    count = hosts.kill(paths, spec, name)
    say(f"{name} killed: {count} process(es) ended at once")


def ssh_argv(paths: LabPaths, spec: LabSpec, name: str, command: list[str]) -> list[str]:
    host = spec.host(name)
    tty = ["-t"] if not command and sys.stdin.isatty() else []
    return [
        "ssh",
        "-i",
        str(paths.ssh_key),
        *hosts.SSH_OPTIONS,
        *tty,
        f"root@{host.address}",
        *command,
    ]
