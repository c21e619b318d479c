"""Redis replication and Sentinel (roles redis and sentinel), as the app sees them: every
sentinel names the same master, knows every replica and every other sentinel; replicas copy the
master; Sentinel answers on the private address and loopback, with a password only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cluster_support import (
    FactReader,
    address,
    group_hosts,
    redis_pairs,
    sentinel_command,
)
from testinfra.host import Host


@pytest.fixture(scope="module")
def sentinels(inventory: Path) -> list[str]:
    names = group_hosts(inventory, "sentinel")
    if not names:
        pytest.skip(f"{inventory} has no sentinel group: one Redis, no Sentinel")
    return names


def ask(was_host: Host, was_fact: dict[str, Any], sentinel: str, port: int, *command: str) -> str:
    result = was_host.run(sentinel_command(was_fact["env_file"], sentinel, port, *command))
    assert result.rc == 0, result.stderr
    return result.stdout


def test_every_sentinel_names_the_same_master_from_the_redis_group(
    inventory: Path,
    sentinels: list[str],
    was_host: Host,
    was_fact: dict[str, Any],
    read_fact: FactReader,
) -> None:
    redis_addresses = {address(inventory, n) for n in group_hosts(inventory, "redis")}
    named = set()
    for name in sentinels:
        fact = read_fact(name, "sentinel")
        out = ask(
            was_host,
            was_fact,
            address(inventory, name),
            fact["port"],
            "SENTINEL",
            "get-master-addr-by-name",
            fact["master_name"],
        )
        named.add(out.split()[0])
    assert len(named) == 1, f"the sentinels disagree: {named}"
    assert named <= redis_addresses


def test_each_sentinel_knows_the_replicas_and_the_other_sentinels(
    inventory: Path,
    sentinels: list[str],
    was_host: Host,
    was_fact: dict[str, Any],
    read_fact: FactReader,
) -> None:
    redis_hosts = group_hosts(inventory, "redis")
    for name in sentinels:
        fact = read_fact(name, "sentinel")
        where = (address(inventory, name), fact["port"])
        master = redis_pairs(
            ask(was_host, was_fact, *where, "SENTINEL", "MASTER", fact["master_name"])
        )
        assert master["flags"] == "master", master
        assert int(master["num-slaves"]) == len(redis_hosts) - 1
        assert int(master["num-other-sentinels"]) == len(sentinels) - 1
        assert int(master["quorum"]) == len(sentinels) // 2 + 1 == fact["quorum"]
        listed = ask(was_host, was_fact, *where, "SENTINEL", "REPLICAS", fact["master_name"])
        replicas = [redis_pairs(block) for block in split_blocks(listed)]
        expected = {address(inventory, n) for n in redis_hosts} - {master["ip"]}
        assert {r["ip"] for r in replicas} == expected
        for replica in replicas:
            assert replica["flags"] == "slave", replica
            assert replica["master-link-status"] == "ok", replica


def split_blocks(text: str) -> list[str]:
    """redis-cli prints a list of field/value lists flat: each block starts at its "name" field."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line == "name" and i % 2 == 0]
    return ["\n".join(lines[a:b]) for a, b in zip(starts, [*starts[1:], len(lines)], strict=False)]


def test_sentinel_asks_for_its_password(
    inventory: Path, sentinels: list[str], was_host: Host, read_fact: FactReader
) -> None:
    for name in sentinels:
        fact = read_fact(name, "sentinel")
        result = was_host.run(
            "redis-cli -h %s -p %s PING", address(inventory, name), str(fact["port"])
        )
        assert "NOAUTH" in result.stdout + result.stderr


def test_sentinel_listens_on_the_private_address_and_loopback_only(
    sentinel_host: Host, read_fact: FactReader
) -> None:
    fact = read_fact(sentinel_host.inventory_name, "sentinel")
    assert sentinel_host.service(fact["service"]).is_running
    assert sentinel_host.service(fact["service"]).is_enabled
    port = f":{fact['port']}"
    listening = {s for s in sentinel_host.socket.get_listening_sockets() if s.endswith(port)}
    assert f"tcp://{sentinel_host.address}{port}" in listening
    assert listening <= {f"tcp://{a}{port}" for a in (sentinel_host.address, "127.0.0.1")}


def test_redis_cannot_rewrite_its_own_configuration(
    redis_host: Host, redis_fact: dict[str, Any]
) -> None:
    # Sentinel's CONFIG REWRITE would otherwise change files the role owns (and restarts for).
    assert redis_host.file(redis_fact["config_file"]).user == "root"
    assert redis_host.file(redis_fact["replication_file"]).user == "root"
    writable = redis_host.run("systemctl show -p ReadWritePaths --value %s", redis_fact["service"])
    assert "/etc/redis" not in writable.stdout
    assert "/var/lib/redis" in writable.stdout
