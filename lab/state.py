"""What a lab has created, kept in <state dir>/state.json so other commands and labs see it."""

from __future__ import annotations

import ipaddress
import json
import secrets
from pathlib import Path
from typing import Any

from lab.paths import STATE_ROOT, LabPaths
from lab.spec import LabSpec


def load(paths: LabPaths) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(paths.state_file.read_text())
    except (OSError, ValueError):
        return {"hosts": {}}
    data.setdefault("hosts", {})
    return data


SECRETS_ID_FILE = ".lab-id"


def secrets_id(credentials: Path) -> str:
    """The id of one inventory's generated secrets: a random token kept in the directory that
    holds them, written the first time. A fresh checkout (even at the same path) has a new one; a
    copy of the inventory that links the directory has the same."""
    marker = credentials / SECRETS_ID_FILE
    try:
        return marker.read_text().strip()
    except FileNotFoundError:
        credentials.mkdir(mode=0o700, parents=True, exist_ok=True)
        marker.write_text(secrets.token_hex(16) + "\n")
        return marker.read_text().strip()


def save(
    paths: LabPaths, spec: LabSpec, hosts: dict[str, str], credentials: str | None = None
) -> None:
    """Record the lab's hosts, and the id of the generated secrets its hosts hold
    (secrets_id): the recorded one is kept when None."""
    credentials = credentials or load(paths).get("credentials")
    paths.root.mkdir(parents=True, exist_ok=True)
    data = {
        "name": spec.name,
        "subnet": str(spec.subnet),
        "release": spec.release,
        "hosts": dict(sorted(hosts.items())),
        **({"credentials": credentials} if credentials else {}),
    }
    tmp = paths.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(paths.state_file)


def other_labs() -> dict[str, ipaddress.IPv4Network]:
    """Subnets of every lab that has state on this machine."""
    labs: dict[str, ipaddress.IPv4Network] = {}
    if not STATE_ROOT.is_dir():
        return labs
    for state_file in STATE_ROOT.glob("*/state.json"):
        try:
            labs[state_file.parent.name] = ipaddress.IPv4Network(
                json.loads(state_file.read_text())["subnet"]
            )
        except (OSError, ValueError, KeyError):
            continue
    return labs
