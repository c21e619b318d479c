"""Redis (role redis): private address and loopback only, ACL user confined to app:* keys."""

from __future__ import annotations

from typing import Any

import pytest
from cluster_support import CLOSED, Tier, probe_closed
from testinfra.backend.base import CommandResult
from testinfra.host import Host


def redis_cli(
    was_host: Host, redis: Tier, *command: str, authenticated: bool = True
) -> CommandResult:
    """redis-cli from a WAS, as the app's user or (authenticated=False) as nobody."""
    if not authenticated:
        return was_host.run(
            "redis-cli -h %s -p %s " + " ".join(["%s"] * len(command)),
            redis.address,
            str(redis["port"]),
            *command,
        )
    return was_host.run(
        "REDISCLI_AUTH=%s redis-cli --no-auth-warning -h %s -p %s --user %s "
        + " ".join(["%s"] * len(command)),
        redis.secrets["cluster_redis_password"],
        redis.address,
        str(redis["port"]),
        redis["app_user"],
        *command,
    )


def app_key(redis: Tier, suffix: str) -> str:
    return redis["app_key_pattern"].rstrip("*") + suffix


def test_redis_is_running_and_enabled(redis_host: Host, redis_fact: dict[str, Any]) -> None:
    service = redis_host.service(redis_fact["service"])
    assert service.is_running
    assert service.is_enabled


def test_redis_listens_on_the_private_address_and_loopback_only(
    redis_host: Host, redis_fact: dict[str, Any]
) -> None:
    port = f":{redis_fact['port']}"
    listening = {s for s in redis_host.socket.get_listening_sockets() if s.endswith(port)}
    allowed = {f"tcp://{a}{port}" for a in (redis_host.address, "127.0.0.1", "::1")}
    assert f"tcp://{redis_host.address}{port}" in listening
    assert listening <= allowed


def test_an_unauthenticated_client_is_refused(was_host: Host, redis: Tier) -> None:
    result = redis_cli(was_host, redis, "PING", authenticated=False)
    assert "NOAUTH" in result.stdout + result.stderr


def test_the_default_user_is_disabled(was_host: Host, redis: Tier) -> None:
    result = was_host.run(
        "REDISCLI_AUTH=anything redis-cli --no-auth-warning -h %s -p %s --user default PING",
        redis.address,
        str(redis["port"]),
    )
    assert "WRONGPASS" in result.stdout + result.stderr


def test_health_checks_work_for_the_app_user(was_host: Host, redis: Tier) -> None:
    assert redis_cli(was_host, redis, "PING").stdout.strip() == "PONG"
    assert "redis_version:" in redis_cli(was_host, redis, "INFO", "server").stdout


def test_the_app_user_reads_and_writes_its_keys(was_host: Host, redis: Tier) -> None:
    key = app_key(redis, f"infra-test:{was_host.address}")
    assert redis_cli(was_host, redis, "SET", key, "1", "EX", "60").stdout.strip() == "OK"
    assert redis_cli(was_host, redis, "INCR", key).stdout.strip() == "2"
    assert redis_cli(was_host, redis, "DEL", key).stdout.strip() == "1"


def test_the_app_user_may_not_touch_other_keys(was_host: Host, redis: Tier) -> None:
    result = redis_cli(was_host, redis, "SET", "not-app:infra-test", "1")
    assert "NOPERM" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "command",
    [("FLUSHALL",), ("KEYS", "*"), ("CONFIG", "GET", "maxmemory"), ("FUNCTION", "FLUSH")],
    ids=lambda c: " ".join(c),
)
def test_the_app_user_may_not_run_server_wide_commands(
    was_host: Host, redis: Tier, command: tuple[str, ...]
) -> None:
    result = redis_cli(was_host, redis, *command)
    assert "NOPERM" in result.stdout + result.stderr


def test_memory_is_bounded_with_the_configured_eviction(was_host: Host, redis: Tier) -> None:
    info = dict(
        line.split(":", 1)
        for line in redis_cli(was_host, redis, "INFO", "memory").stdout.splitlines()
        if ":" in line
    )
    assert int(info["maxmemory"]) > 0
    assert info["maxmemory_policy"].strip() == redis["maxmemory_policy"]


def test_data_is_persisted(was_host: Host, redis: Tier) -> None:
    info = redis_cli(was_host, redis, "INFO", "persistence").stdout
    expected = "1" if redis["appendonly"] else "0"
    assert f"aof_enabled:{expected}" in info


def test_the_balancer_cannot_use_redis(lb_host: Host, redis: Tier) -> None:
    answer = probe_closed(lb_host, redis.address, redis["port"], send="PING\r\n")
    if redis.firewall:
        assert answer in CLOSED, answer
    else:
        # Reachable, but nothing works without a password.
        assert answer.startswith("connected: -NOAUTH"), answer
