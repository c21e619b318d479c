"""Thin wrappers over the commands and kernel interfaces the lab uses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from lab.errors import LabError

REQUIRED_TOOLS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "ip": "iproute2",
    "tinyproxy": "tinyproxy",
    "socat": "socat",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "ansible-inventory": "ansible (pip, in the project's virtualenv)",
}


def run(cmd: Sequence[str], check: bool = True, input: str | None = None) -> str:
    """Run a command and return its stdout; a failure raises LabError with its stderr."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise LabError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}"
        )
    return proc.stdout


def require_root(euid: int | None = None) -> None:
    uid = os.geteuid() if euid is None else euid
    if uid != 0:
        raise LabError(
            "the lab must run as root (it mounts overlays, creates network namespaces "
            "and boots containers)",
            "run it with sudo, or as root",
        )


def tool_path(path: str | None = None) -> str:
    """PATH plus the bin directory of the virtualenv we run from (for ansible-inventory)."""
    search = os.environ.get("PATH", "") if path is None else path
    return os.pathsep.join([str(Path(sys.executable).parent), search])


def require_tools(path: str | None = None) -> None:
    search = tool_path() if path is None else path
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool, path=search) is None]
    if missing:
        packages = sorted({REQUIRED_TOOLS[t] for t in missing})
        raise LabError(
            f"missing tool(s): {', '.join(missing)}",
            f"install {', '.join(packages)} (make setup installs them all)",
        )


def machine_routes() -> list[dict[str, str]]:
    """IPv4 routes of this machine's main table, as `ip -j route` reports them."""
    routes: list[dict[str, str]] = json.loads(run(["ip", "-j", "-4", "route", "show"]) or "[]")
    return routes
