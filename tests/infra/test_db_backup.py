"""Database backups (role db_backup, with an S3 store): every db server has the timer and the
`db-backup` command, its settings are root's alone, and the backup identity reads the media bucket
but cannot change it. The backup and the restore run in tests/e2e/test_db_restore.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster_support import group_hosts
from testinfra.host import Host

# Runs on a db host with the backup command's own settings: what the backup identity may do.
TRY_IDENTITY = """
import importlib.machinery, sys
tool = importlib.machinery.SourceFileLoader("db_backup", "/usr/local/sbin/db-backup").load_module()
settings = tool.Settings.load()
s3 = tool.s3_client(settings.endpoint, settings.access_key, settings.secret_key)
action = sys.argv[1]
try:
    if action == "list-media":
        s3.list_objects_v2(Bucket=settings.media_bucket, MaxKeys=1)
    elif action == "write-media":
        s3.put_object(Bucket=settings.media_bucket, Key="backup-identity-probe", Body=b"x")
    elif action == "write-backups":
        s3.put_object(Bucket=settings.bucket, Key="probe/backup-identity", Body=b"x")
        s3.delete_object(Bucket=settings.bucket, Key="probe/backup-identity")
except Exception as exc:
    print(getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__))
    sys.exit(1)
print("allowed")
"""


@pytest.fixture(autouse=True)
def backups_installed(inventory: Path) -> None:
    if not group_hosts(inventory, "storage"):
        pytest.skip(f"{inventory} has no S3 store: no backups")


def test_the_backup_timer_is_enabled_and_waiting(db_host: Host) -> None:
    timer = db_host.service("db-backup.timer")
    assert timer.is_enabled and timer.is_running
    assert db_host.file("/usr/local/sbin/db-backup").mode == 0o755


def test_the_backup_settings_are_roots_alone(db_host: Host) -> None:
    settings = db_host.file("/etc/db-backup.json")
    assert (settings.user, settings.group, settings.mode) == ("root", "root", 0o600)


@pytest.mark.parametrize(
    ("action", "expected"),
    [("list-media", "allowed"), ("write-backups", "allowed"), ("write-media", "AccessDenied")],
)
def test_the_backup_identity_reads_media_but_cannot_change_it(
    db_host: Host, action: str, expected: str
) -> None:
    result = db_host.run("python3 -c %s %s", TRY_IDENTITY, action)
    assert result.stdout.strip() == expected, result.stderr
