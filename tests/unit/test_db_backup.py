"""The backup command's decisions (roles/db_backup/files/db_backup.py): who backs up, where a
backup's data stands, what retention keeps, and a download that does not match its manifest."""

from __future__ import annotations

import pytest
from repo_module import load

backup = load("roles/db_backup/files/db_backup.py")


def test_a_replica_backs_up_and_the_primary_does_not() -> None:
    assert backup.should_back_up(read_only=True, replicating=True, from_primary=False)[0]
    go, why = backup.should_back_up(read_only=False, replicating=False, from_primary=False)
    assert not go and "primary" in why
    assert backup.should_back_up(read_only=False, replicating=False, from_primary=True)[0]


def test_a_read_only_server_that_follows_no_one_refuses() -> None:
    with pytest.raises(backup.BackupError, match="replicates from no one"):
        backup.should_back_up(read_only=True, replicating=False, from_primary=True)


def test_the_data_position_comes_from_the_binlog_info_else_the_replica_info() -> None:
    info = {"mariadb_backup_binlog_info": "mariadb-bin.000004\t1187\t0-22-431\n"}
    assert backup.data_position(info, binlog=True) == "0-22-431"
    # Newer mariadb-backup writes several lines: the last one is the position.
    lines = "mariadb-bin.000003\t99\t[]\nmariadb-bin.000004\t1187\t0-22-431\n"
    assert backup.data_position({"mariadb_backup_binlog_info": lines}, binlog=True) == "0-22-431"
    replica = {
        "mariadb_backup_slave_info": "SET GLOBAL gtid_slave_pos = '0-21-77';\n"
        "CHANGE MASTER TO master_use_gtid = slave_pos\n"
    }
    assert backup.data_position(replica, binlog=True) == "0-21-77"
    with pytest.raises(backup.BackupError, match="no GTID position"):
        backup.data_position({"mariadb_backup_binlog_info": "mariadb-bin.000004\t1187\n"}, True)
    # One server, no binary logs: mariadb-backup records no position, and none is needed.
    assert backup.data_position({}, binlog=False) == ""


def test_retention_keeps_the_newest_and_at_least_one() -> None:
    names = ["20261203T023000Z", "20261205T023000Z", "20261204T023000Z"]
    assert backup.kept_and_pruned(names, 2) == (
        ["20261204T023000Z", "20261205T023000Z"],
        ["20261203T023000Z"],
    )
    assert backup.kept_and_pruned(names, 0)[0] == ["20261205T023000Z"]


def test_media_is_pruned_only_when_no_kept_backup_lists_it_and_it_is_old() -> None:
    kept = [{"media": {"a.png": 3, "b.png": 4}}, {"media": {"b.png": 4, "c.png": 5}}]
    copied = {"a.png": 10.0, "b.png": 10.0, "c.png": 10.0, "old.png": 10.0, "new.png": 500.0}
    # new.png was copied after the oldest kept backup: another replica's backup may list it soon.
    assert backup.media_to_prune(copied, kept, before=100.0) == {"old.png"}


def test_a_binary_log_is_filed_under_its_creation_time() -> None:
    header = b"\xfebin" + (86400).to_bytes(4, "little")
    assert backup.binlog_key("db2", "mariadb-bin.000001", header) == (
        "binlog/db2/19700102T000000Z-mariadb-bin.000001"
    )


def test_a_download_that_differs_from_its_manifest_is_refused() -> None:
    manifest = {"data_bytes": 10, "data_sha256": "ab" * 32}
    backup.check_download("x", manifest, "ab" * 32, 10)
    with pytest.raises(backup.BackupError, match="does not match its manifest"):
        backup.check_download("x", manifest, "cd" * 32, 10)


def test_a_backup_name_is_its_utc_time() -> None:
    assert backup.backup_name(0) == "19700101T000000Z"
