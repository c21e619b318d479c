"""MariaDB replication (role mariadb, two or more db hosts): one primary that accepts writes,
replicas that follow it with GTID over TLS, semi-sync with the AFTER_SYNC wait point, binary logs
on every server, and a writer's floating address held by the primary only."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest
from cluster_support import address, get_host, group_hosts, mariadb_app_command
from testinfra.host import Host


def variables(host: Host, query: str) -> dict[str, str]:
    """Name -> value rows (SHOW VARIABLES / SHOW STATUS, or any two-column query), run as root."""
    out = host.check_output("mariadb --batch --skip-column-names -e %s", query)
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def replica_status(host: Host) -> dict[str, str]:
    """SHOW SLAVE STATUS as a dict ({} on a server that follows no one)."""
    out = host.check_output("mariadb --batch -e 'SHOW SLAVE STATUS'").splitlines()
    return dict(zip(out[0].split("\t"), out[1].split("\t"), strict=False)) if len(out) > 1 else {}


@functools.cache
def writable_servers(inventory: Path) -> tuple[str, ...]:
    """The db hosts whose MariaDB accepts writes (read_only off)."""
    names = group_hosts(inventory, "db")
    return tuple(
        name
        for name in names
        if variables(get_host(inventory, name), "SELECT 'read_only', @@read_only")["read_only"]
        == "0"
    )


@pytest.fixture
def replicated(db_fact: dict[str, Any]) -> None:
    if not db_fact["replication"]:
        pytest.skip("the inventory has one database server: nothing replicates")


@pytest.fixture
def primary(inventory: Path, replicated: None) -> Host:
    writable = writable_servers(inventory)
    assert len(writable) == 1, f"servers accepting writes: {writable or 'none'}"
    host = get_host(inventory, writable[0])
    host.inventory_name = writable[0]  # type: ignore[attr-defined]
    host.address = address(inventory, writable[0])  # type: ignore[attr-defined]
    return host


def test_exactly_one_server_accepts_writes(primary: Host, db_host: Host) -> None:
    read_only = variables(db_host, "SELECT 'read_only', @@read_only")["read_only"]
    assert read_only == ("0" if db_host.inventory_name == primary.inventory_name else "1")


def test_every_server_keeps_binary_logs_with_gtid(db_host: Host, replicated: None) -> None:
    settings = variables(
        db_host,
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN"
        " ('log_bin', 'log_slave_updates', 'gtid_strict_mode', 'binlog_format', 'sync_binlog')",
    )
    assert settings == {
        "log_bin": "ON",
        "log_slave_updates": "ON",
        "gtid_strict_mode": "ON",
        "binlog_format": "ROW",
        "sync_binlog": "1",
    }


def test_every_server_has_its_own_id(inventory: Path, replicated: None) -> None:
    ids = [
        variables(get_host(inventory, n), "SELECT 'id', @@server_id")["id"]
        for n in group_hosts(inventory, "db")
    ]
    assert len(set(ids)) == len(ids), ids


def test_replicas_follow_the_primary_over_tls_with_gtid(primary: Host, db_host: Host) -> None:
    status = replica_status(db_host)
    if db_host.inventory_name == primary.inventory_name:
        assert status == {}, "the primary replicates from someone"
        return
    assert status["Master_Host"] == primary.address
    assert status["Slave_IO_Running"] == "Yes", status["Last_IO_Error"]
    assert status["Slave_SQL_Running"] == "Yes", status["Last_SQL_Error"]
    # Current_Pos: a former primary that rejoined (its own writes count in its position).
    assert status["Using_Gtid"] in ("Slave_Pos", "Current_Pos")
    assert status["Master_SSL_Allowed"] == "Yes"
    assert status["Master_SSL_Verify_Server_Cert"] == "Yes"


def test_semi_sync_is_on_with_the_after_sync_wait_point(primary: Host, db_host: Host) -> None:
    settings = variables(
        db_host,
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN"
        " ('rpl_semi_sync_master_enabled', 'rpl_semi_sync_slave_enabled',"
        " 'rpl_semi_sync_master_wait_point')",
    )
    assert settings == {
        "rpl_semi_sync_master_enabled": "ON",
        "rpl_semi_sync_slave_enabled": "ON",
        "rpl_semi_sync_master_wait_point": "AFTER_SYNC",
    }
    if db_host.inventory_name != primary.inventory_name:
        status = variables(db_host, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_slave_status'")
        assert status["Rpl_semi_sync_slave_status"] == "ON"


def test_a_commit_on_the_primary_waits_for_a_replica(
    primary: Host, db_fact: dict[str, Any]
) -> None:
    # A write that changes nothing but is logged and replicated like any other. The first one
    # may be what switches semi-sync back on (after the replica caught up): it is not counted.
    write = f"CREATE DATABASE IF NOT EXISTS `{db_fact['database']}`"
    acknowledged = "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_yes_tx'"
    primary.check_output("mariadb -e %s", write)
    before = int(variables(primary, acknowledged)["Rpl_semi_sync_master_yes_tx"])
    primary.check_output("mariadb -e %s", write)
    status = variables(primary, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_%'")
    assert status["Rpl_semi_sync_master_status"] == "ON", "commits do not wait for a replica"
    assert int(status["Rpl_semi_sync_master_clients"]) >= 1
    assert int(status["Rpl_semi_sync_master_yes_tx"]) == before + 1


def test_replicas_reach_the_primarys_last_transaction(primary: Host, db_host: Host) -> None:
    if db_host.inventory_name == primary.inventory_name:
        pytest.skip("the primary is where the transactions come from")
    position = variables(primary, "SELECT 'gtid', @@gtid_binlog_pos")["gtid"]
    assert position, "the primary has written nothing to its binary log"
    reached = variables(db_host, f"SELECT 'reached', MASTER_GTID_WAIT('{position}', 20)")
    # 0: reached; -1: still behind after 20 s.
    assert reached["reached"] == "0", f"{db_host.inventory_name} is behind {position}"


def test_the_app_tables_are_alike_on_every_server(primary: Host, db_host: Host) -> None:
    query = "SELECT 'migrations', COUNT(*) FROM app.django_migrations"
    assert variables(db_host, query) == variables(primary, query)


def test_the_writer_address_is_held_by_the_primary_only(
    primary: Host, db_host: Host, db_fact: dict[str, Any]
) -> None:
    floating = db_fact["floating_address"]
    assert floating, "two or more db hosts need cluster_db_floating_address"
    held = re.findall(r"inet (\S+)/", db_host.check_output("ip -4 -o addr show"))
    assert (floating in held) == (db_host.inventory_name == primary.inventory_name), held


def test_the_app_writes_through_the_writer_address_to_the_primary(
    primary: Host, was_host: Host, was_fact: dict[str, Any]
) -> None:
    primary_id = variables(primary, "SELECT 'id', @@server_id")["id"]
    result = was_host.run(mariadb_app_command(was_fact["env_file"], "SELECT @@server_id"))
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == primary_id


def test_a_replica_refuses_the_apps_writes(
    primary: Host, db_host: Host, was_host: Host, was_fact: dict[str, Any]
) -> None:
    if db_host.inventory_name == primary.inventory_name:
        pytest.skip("the primary takes writes")
    # Deletes nothing anywhere; a read-only server refuses it before looking.
    query = "DELETE FROM django_session WHERE session_key = ''"
    result = was_host.run(mariadb_app_command(was_fact["env_file"], query, server=db_host.address))
    assert result.rc != 0
    assert "read-only" in result.stderr, result.stderr
