"""What a lab has created, kept in <state dir>/state.json so other commands and labs see it."""

from __future__ import annotations

import ipaddress
import json
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


def save(paths: LabPaths, spec: LabSpec, hosts: dict[str, str]) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    data = {
        "name": spec.name,
        "subnet": str(spec.subnet),
        "release": spec.release,
        "hosts": dict(sorted(hosts.items())),
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
