"""Processes the lab runs on this machine: the apt/pip proxy and the published ports."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from lab import procs
from lab.errors import LabError
from lab.paths import LabPaths
from lab.spec import PROXY_PORT, LabSpec


def _proxy_config(paths: LabPaths) -> Path:
    return paths.run_dir / "tinyproxy.conf"


def ensure_proxy(paths: LabPaths, spec: LabSpec) -> bool:
    """Run tinyproxy on the bridge address for the lab's subnet; True if it was started."""
    conf = _proxy_config(paths)
    if procs.daemon_pid(paths.pidfile("proxy"), str(conf)) is not None:
        return False
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(
        "# written by `lab up`: the lab hosts' only way to apt and PyPI\n"
        f"User nobody\nGroup nogroup\nPort {PROXY_PORT}\nListen {spec.gateway}\n"
        f"Allow {spec.subnet}\nTimeout 600\nMaxClients 200\nLogLevel Warning\n"
        "DisableViaHeader Yes\n"
    )
    procs.start_daemon(
        ["tinyproxy", "-d", "-c", str(conf)], paths.pidfile("proxy"), paths.log("proxy")
    )
    wait_listening(
        str(spec.gateway), PROXY_PORT, what="the lab proxy (tinyproxy)", log=str(paths.log("proxy"))
    )
    return True


def stop_proxy(paths: LabPaths) -> None:
    procs.stop_daemon(paths.pidfile("proxy"), str(_proxy_config(paths)))


def wait_listening(address: str, port: int, what: str, log: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((address, port)) == 0:
                return
        time.sleep(0.1)
    raise LabError(f"{what} is not listening on {address}:{port}", f"see {log}")


def _publish_arg(local_port: int) -> str:
    return f"TCP-LISTEN:{local_port},bind=127.0.0.1,reuseaddr,fork"


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ensure_published(paths: LabPaths, spec: LabSpec) -> list[str]:
    """Forward localhost ports to the balancers' floating address, or else to the first lb host;
    return what was newly published."""
    target = spec.published_target
    started: list[str] = []
    if target is None:
        return started
    target_name, target_address = target
    for local, remote in sorted(spec.publish.items()):
        pidfile = paths.pidfile(f"publish-{local}")
        if procs.daemon_pid(pidfile, _publish_arg(local)) is not None:
            continue
        if not port_is_free(local):
            raise LabError(
                f"localhost:{local} is already in use, so {target_name}:{remote} "
                "cannot be published there",
                "free that port, or set lab_publish in the inventory to other ports",
            )
        procs.start_daemon(
            ["socat", _publish_arg(local), f"TCP:{target_address}:{remote}"],
            pidfile,
            paths.log(f"publish-{local}"),
        )
        wait_listening(
            "127.0.0.1",
            local,
            what=f"the forwarder of localhost:{local}",
            log=str(paths.log(f"publish-{local}")),
        )
        started.append(f"localhost:{local} -> {target_name} {target_address}:{remote}")
    return started


def stop_published(paths: LabPaths) -> None:
    for pidfile in paths.run_dir.glob("publish-*.pid"):
        local = int(pidfile.stem.removeprefix("publish-"))
        procs.stop_daemon(pidfile, _publish_arg(local))
