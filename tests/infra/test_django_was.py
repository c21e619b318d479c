"""The application servers (role django_was): gunicorn runs, on the private address only."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cluster_support import (
    CLOSED,
    FactReader,
    env_command,
    get_host,
    group_hosts,
    probe,
    probe_closed,
    rendered,
)
from testinfra.host import Host


def gunicorn_url(was_host: Host, was_fact: dict[str, Any], path: str) -> str:
    return f"http://{was_host.address}:{was_fact['port']}{path}"


def test_gunicorn_is_running_and_enabled(was_host: Host, was_fact: dict[str, Any]) -> None:
    service = was_host.service(was_fact["service"])
    assert service.is_running
    assert service.is_enabled


def test_gunicorn_binds_the_inventory_address(was_host: Host, was_fact: dict[str, Any]) -> None:
    assert was_fact["bind_address"] == was_host.address


def test_gunicorn_listens_on_the_private_address_only(
    was_host: Host, was_fact: dict[str, Any]
) -> None:
    port = f":{was_fact['port']}"
    listening = {s for s in was_host.socket.get_listening_sockets() if s.endswith(port)}
    assert listening == {f"tcp://{was_host.address}{port}"}


def test_gunicorn_runs_as_the_service_user(was_host: Host, was_fact: dict[str, Any]) -> None:
    processes = was_host.process.filter(comm="gunicorn")
    assert len(processes) >= 2, "a master and at least one worker"
    assert {p.user for p in processes} == {was_fact["user"]}


def test_the_environment_file_is_readable_by_the_service_group_only(
    was_host: Host, was_fact: dict[str, Any]
) -> None:
    env = was_host.file(was_fact["env_file"])
    assert (env.user, env.group, env.mode) == ("root", was_fact["group"], 0o640)


def test_a_gcs_key_is_the_inventorys_and_readable_by_the_service_group_only(
    was_host: Host, was_fact: dict[str, Any], inventory: Path
) -> None:
    key = was_host.file(was_fact["gcs_credentials_file"])
    if was_fact["storage"] != "gcs":
        assert not key.exists, "a GCS key lingers on a server whose storage is not GCS"
        return
    assert (key.user, key.group, key.mode) == ("root", was_fact["group"], 0o640)
    wanted = rendered(inventory, was_host.inventory_name)["cluster_gcs_credentials_json"]
    # Compared by digest: a failure must not print the private key.
    assert key.sha256sum == hashlib.sha256(wanted.encode()).hexdigest()


def test_the_current_release_is_the_reported_one(was_host: Host, was_fact: dict[str, Any]) -> None:
    current = was_host.file(was_fact["current"])
    assert current.is_symlink
    assert Path(current.linked_to).name == was_fact["release"]


def test_the_service_user_cannot_change_the_code(was_host: Host, was_fact: dict[str, Any]) -> None:
    manage = was_host.file(f"{was_fact['current']}/manage.py")
    assert manage.is_file
    assert was_host.run("runuser -u %s -- test -w %s", was_fact["user"], manage.path).rc != 0


def test_the_manage_wrapper_runs_django(was_host: Host, was_fact: dict[str, Any]) -> None:
    result = was_host.run("%s check", was_fact["manage"])
    assert result.rc == 0, result.stderr


def test_gunicorn_has_a_memory_limit(was_host: Host, was_fact: dict[str, Any]) -> None:
    limit = was_host.check_output("systemctl show -p MemoryMax --value %s", was_fact["service"])
    if was_fact["memory_max"] == "infinity":
        assert limit == "infinity"
    else:
        assert limit.isdigit() and int(limit) > 0, limit


def test_the_housekeeping_timer_is_active(was_host: Host, was_fact: dict[str, Any]) -> None:
    timer = was_host.service(was_fact["housekeeping_timer"])
    assert timer.is_running and timer.is_enabled


def test_housekeeping_runs(was_host: Host, was_fact: dict[str, Any]) -> None:
    result = was_host.run("%s housekeeping", was_fact["manage"])
    assert result.rc == 0, result.stderr
    assert "expired sessions cleared" in result.stdout, result.stdout


def test_housekeeping_skips_while_another_server_holds_its_lock(
    was_host: Host, was_fact: dict[str, Any], inventory: Path, read_fact: FactReader
) -> None:
    """Another WAS (or this one, alone) holds the database lock: this one's run does nothing."""
    names = group_hosts(inventory, "was")
    others = [h for h in names if get_host(inventory, h).backend.host != was_host.backend.host]
    holder_name = (others or names)[0]
    holder, holder_fact = get_host(inventory, holder_name), read_fact(holder_name, "django_was")
    hold = (
        'set --; if [ -n "$DJANGO_DB_SSL_CA" ]; then set -- --ssl --ssl-ca="$DJANGO_DB_SSL_CA"; fi;'
        ' MYSQL_PWD="$DJANGO_DB_PASSWORD" setsid -f timeout 30 mariadb "$@" -h "$DJANGO_DB_HOST"'
        ' -P "$DJANGO_DB_PORT" -u "$DJANGO_DB_USER" -N'
        " -e \"SELECT GET_LOCK('app.housekeeping', 0); SELECT SLEEP(8)\" >/dev/null 2>&1"
    )
    holder.run(env_command(holder_fact["env_file"], hold))
    deadline = time.monotonic() + 20
    while True:
        result = was_host.run("%s housekeeping", was_fact["manage"])
        assert result.rc == 0, result.stderr
        if "skipped" in result.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "skipped" in result.stdout, f"ran while the lock was held: {result.stdout}"


def test_the_server_is_ready(was_host: Host, was_fact: dict[str, Any]) -> None:
    body = was_host.check_output("curl -sf %s", gunicorn_url(was_host, was_fact, "/readyz"))
    ready = json.loads(body)
    assert (ready["status"], ready["checks"]) == (
        "ok",
        {"database": "ok", "cache": "ok", "storage": "ok"},
    )
    # Where plain reads go (core.dbrouter): a server that answered with its id.
    reads = ready["database_reads"]
    assert reads["server_id"].isdigit() and "error" not in reads, reads


def test_responses_name_the_server(was_host: Host, was_fact: dict[str, Any]) -> None:
    headers = was_host.check_output(
        "curl -sf -o /dev/null -D - %s", gunicorn_url(was_host, was_fact, "/healthz")
    )
    fields = (line.partition(":") for line in headers.splitlines())
    served_by = [value.strip() for key, _, value in fields if key.lower() == "x-served-by"]
    assert served_by == [was_host.check_output("hostname")]


def test_the_balancer_reaches_the_health_check(
    was_host: Host, was_fact: dict[str, Any], lb_host: Host, lb_fact: dict[str, Any]
) -> None:
    request = f"GET {lb_fact['health_path']} HTTP/1.0\r\n\r\n"
    answer = probe(lb_host, was_host.address, was_fact["port"], request)
    assert answer.startswith("connected: HTTP/1.0 200"), answer


def test_a_data_host_cannot_reach_gunicorn(
    was_host: Host, was_fact: dict[str, Any], db_host: Host, read_fact: FactReader
) -> None:
    if not read_fact(was_host.inventory_name, "firewall")["enabled"]:
        pytest.skip("the firewall is disabled on this host (firewall.fact)")
    answer = probe_closed(db_host, was_host.address, was_fact["port"])
    assert answer in CLOSED, answer


def test_another_was_cannot_reach_gunicorn(
    inventory: Path, was_host: Host, was_fact: dict[str, Any], read_fact: FactReader
) -> None:
    others = [h for h in group_hosts(inventory, "was") if h != was_host.inventory_name]
    if not others:
        pytest.skip("a single WAS: no other to try from")
    if not read_fact(was_host.inventory_name, "firewall")["enabled"]:
        pytest.skip("the firewall is disabled on this host (firewall.fact)")
    answer = probe_closed(get_host(inventory, others[0]), was_host.address, was_fact["port"])
    assert answer in CLOSED, answer
