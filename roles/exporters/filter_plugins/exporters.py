"""Filters of the exporters role: the firewall rules of the jobs a host serves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def exporters_rules(
    jobs: Iterable[str], ports: Mapping[str, Any], client_groups: Iterable[str]
) -> list[dict[str, Any]]:
    """One firewall rule per job: its port, open to the client groups (unknown job: an error)."""
    rules = []
    for job in jobs:
        if job not in ports:
            raise ValueError(f"exporters: no port for job {job!r}; add it to exporters_ports")
        rules.append(
            {"name": f"metrics-{job}", "port": int(ports[job]), "from_groups": list(client_groups)}
        )
    return rules


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"exporters_rules": exporters_rules}
