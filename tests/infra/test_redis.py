"""Redis (role redis): private address and loopback only, ACL user confined to app:* keys."""

from __future__ import annotations

from typing import Any

import pytest
from cluster_support import CLOSED, Tier, probe_closed, redis_app_command
from testinfra.backend.base import CommandResult
from testinfra.host import Host


def redis_cli(
    was_host: Host, was_fact: dict[str, Any], redis: Tier, *command: str, authenticated: bool = True
) -> CommandResult:
    """redis-cli from a WAS, as the app's user or (authenticated=False) as nobody.

    The app's password is the one of the WAS's cache URL, read from its environment file there
    (never on a command line)."""
    if not authenticated:
        return was_host.run(
            "redis-cli -h %s -p %s " + " ".join(["%s"] * len(command)),
            redis.address,
            str(redis["port"]),
            *command,
        )
    return was_host.run(
        redis_app_command(
            was_fact["env_file"], redis.address, redis["port"], redis["app_user"], *command
        )
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


def test_an_unauthenticated_client_is_refused(
    was_host: Host, was_fact: dict[str, Any], redis: Tier
) -> None:
    result = redis_cli(was_host, was_fact, redis, "PING", authenticated=False)
    assert "NOAUTH" in result.stdout + result.stderr


def test_the_default_user_is_disabled(was_host: Host, redis: Tier) -> None:
    result = was_host.run(
        "REDISCLI_AUTH=anything redis-cli --no-auth-warning -h %s -p %s --user default PING",
        redis.address,
        str(redis["port"]),
    )
    assert "WRONGPASS" in result.stdout + result.stderr


def test_health_checks_work_for_the_app_user(
    was_host: Host, was_fact: dict[str, Any], redis: Tier
) -> None:
    assert redis_cli(was_host, was_fact, redis, "PING").stdout.strip() == "PONG"


def test_the_app_user_reads_and_writes_its_keys(
    was_host: Host, was_fact: dict[str, Any], redis: Tier
) -> None:
    key = app_key(redis, f"infra-test:{was_host.address}")
    assert redis_cli(was_host, was_fact, redis, "SET", key, "1", "EX", "60").stdout.strip() == "OK"
    assert redis_cli(was_host, was_fact, redis, "INCR", key).stdout.strip() == "2"
    assert redis_cli(was_host, was_fact, redis, "DEL", key).stdout.strip() == "1"


def test_the_app_user_may_not_touch_other_keys(
    was_host: Host, was_fact: dict[str, Any], redis: Tier
) -> None:
    result = redis_cli(was_host, was_fact, redis, "SET", "not-app:infra-test", "1")
    assert "NOPERM" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("FLUSHALL",),
        ("KEYS", "*"),
        ("CONFIG", "GET", "maxmemory"),
        ("FUNCTION", "FLUSH"),
        ("INFO", "server"),
        # django-redis' own incr() is a Lua script; the app's counters never use it.
        ("EVAL", "return 1", "0"),
        ("SCAN", "0"),
    ],
    ids=lambda c: " ".join(c),
)
def test_the_app_user_may_not_run_server_wide_commands(
    was_host: Host, was_fact: dict[str, Any], redis: Tier, command: tuple[str, ...]
) -> None:
    result = redis_cli(was_host, was_fact, redis, *command)
    assert "NOPERM" in result.stdout + result.stderr


def redis_settings(redis_host: Host, redis_fact: dict[str, Any]) -> dict[str, str]:
    """The running server's configuration file (the app's user may not read INFO or CONFIG)."""
    text = redis_host.file(redis_fact["config_file"]).content_string
    pairs = (line.split(None, 1) for line in text.splitlines() if line and line[0] != "#")
    return {p[0]: p[1] if len(p) > 1 else "" for p in pairs}


def test_memory_is_bounded_with_the_configured_eviction(
    redis_host: Host, redis_fact: dict[str, Any]
) -> None:
    settings = redis_settings(redis_host, redis_fact)
    assert settings["maxmemory"] not in ("", "0")
    assert settings["maxmemory-policy"] == redis_fact["maxmemory_policy"]


def test_data_is_persisted(redis_host: Host, redis_fact: dict[str, Any]) -> None:
    settings = redis_settings(redis_host, redis_fact)
    assert settings["appendonly"] == ("yes" if redis_fact["appendonly"] else "no")
    if redis_fact["appendonly"]:
        aof = f"{settings['dir']}/{settings['appenddirname'].strip(chr(34))}"
        assert redis_host.file(aof).is_directory, f"no append-only files in {aof}"


def test_the_balancer_cannot_use_redis(lb_host: Host, redis: Tier) -> None:
    answer = probe_closed(lb_host, redis.address, redis["port"], send="PING\r\n")
    if redis.firewall:
        assert answer in CLOSED, answer
    else:
        # Reachable, but nothing works without a password.
        assert answer.startswith("connected: -NOAUTH"), answer
