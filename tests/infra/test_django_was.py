"""The application servers (role django_was): gunicorn runs, on the private address only."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_support import REPO, host_vars, inventory_data, probe
from testinfra.host import Host

SETTINGS = (
    "django_was_port",
    "django_was_service",
    "django_was_user",
    "django_was_config_dir",
    "django_was_firewall_enabled",
    "firewall_enabled",
)
HEALTHZ = "GET /healthz HTTP/1.0\r\n\r\n"


@functools.cache
def defaults() -> dict[str, Any]:
    return yaml.safe_load((REPO / "roles/django_was/defaults/main.yml").read_text())


def name_and_address(inventory: Path, host: Host) -> tuple[str, str]:
    """The inventory name and private address of a host (get_host connects by address)."""
    hostvars = inventory_data(inventory)["_meta"]["hostvars"]
    target = host.backend.get_hostname()
    for name, hv in hostvars.items():
        if target in (name, str(hv.get("ansible_host"))):
            return name, str(hv["ansible_host"])
    raise AssertionError(f"{target} is not in {inventory}")


def setting(inventory: Path, host: Host, key: str) -> Any:
    name, _ = name_and_address(inventory, host)
    value = host_vars(inventory, SETTINGS)[name].get(key)
    return defaults()[key] if value is None else value


def test_gunicorn_is_running_and_enabled(inventory: Path, was_host: Host) -> None:
    service = was_host.service(setting(inventory, was_host, "django_was_service"))
    assert service.is_running
    assert service.is_enabled


def test_gunicorn_listens_on_the_private_address_only(inventory: Path, was_host: Host) -> None:
    _, address = name_and_address(inventory, was_host)
    port = f":{setting(inventory, was_host, 'django_was_port')}"
    listening = {s for s in was_host.socket.get_listening_sockets() if s.endswith(port)}
    assert listening == {f"tcp://{address}{port}"}


def test_gunicorn_runs_as_the_service_user(inventory: Path, was_host: Host) -> None:
    processes = was_host.process.filter(comm="gunicorn")
    assert len(processes) >= 2, "a master and at least one worker"
    assert {p.user for p in processes} == {setting(inventory, was_host, "django_was_user")}


def test_the_environment_file_is_readable_by_the_service_group_only(
    inventory: Path, was_host: Host
) -> None:
    env = was_host.file(f"{setting(inventory, was_host, 'django_was_config_dir')}/app.env")
    group = setting(inventory, was_host, "django_was_user")
    assert (env.user, env.group, env.mode) == ("root", group, 0o640)


def test_the_service_user_cannot_change_the_code(inventory: Path, was_host: Host) -> None:
    user = setting(inventory, was_host, "django_was_user")
    manage = was_host.file("/opt/app/current/manage.py")
    assert manage.is_file
    assert was_host.run("runuser -u %s -- test -w %s", user, manage.path).rc != 0


def test_the_server_is_ready(inventory: Path, was_host: Host) -> None:
    _, address = name_and_address(inventory, was_host)
    port = str(setting(inventory, was_host, "django_was_port"))
    body = was_host.check_output("curl -sf http://%s:%s/readyz", address, port)
    assert json.loads(body) == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "storage": "ok"},
    }


def test_responses_name_the_server(inventory: Path, was_host: Host) -> None:
    _, address = name_and_address(inventory, was_host)
    port = str(setting(inventory, was_host, "django_was_port"))
    headers = was_host.check_output(
        "curl -sf -o /dev/null -D - http://%s:%s/healthz", address, port
    )
    fields = (line.partition(":") for line in headers.splitlines())
    served_by = [value.strip() for key, _, value in fields if key.lower() == "x-served-by"]
    assert served_by == [was_host.check_output("hostname")]


def test_the_balancer_reaches_gunicorn(inventory: Path, was_host: Host, lb_host: Host) -> None:
    _, address = name_and_address(inventory, was_host)
    port = int(setting(inventory, was_host, "django_was_port"))
    assert probe(lb_host, address, port, HEALTHZ).startswith("connected: HTTP/1.0 200")


def test_other_hosts_are_refused_by_the_firewall(
    inventory: Path, was_host: Host, db_host: Host
) -> None:
    name, address = name_and_address(inventory, was_host)
    rendered = host_vars(inventory, SETTINGS)[name]
    enabled = rendered["django_was_firewall_enabled"]
    if enabled is None:
        enabled = rendered["firewall_enabled"] is not False
    if not enabled:
        pytest.skip("the inventory turns the firewall off")
    port = int(setting(inventory, was_host, "django_was_port"))
    assert probe(db_host, address, port, HEALTHZ) == "refused"
