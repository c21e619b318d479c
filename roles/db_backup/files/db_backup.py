#!/usr/bin/python3
"""db-backup: physical backups of this MariaDB server into an S3 bucket, and what a restore needs.

  db-backup run                  back up now (the systemd timer runs this on every db server:
                                 a replica backs up, the primary says why it does not)
  db-backup list [--json]        the complete backups in the bucket, oldest first
  db-backup fetch NAME --to DIR  download a backup (NAME or `latest`), check it against its
                                 manifest, unpack it, and print its manifest (JSON)
  db-backup restore-media NAME   copy the media objects that backup lists back into the media
                                 bucket, with a writer's keys read from stdin (two lines: access
                                 key, secret key; never on a command line)

A backup NAME (its UTC time, 20261205T031500Z) is, in the backup bucket:
  db/NAME/data.tar.gz      the prepared copy of the data directory (mariadb-backup)
  db/NAME/manifest.json    written last: a backup without one is incomplete and never used
  binlog/SERVER/TIME-FILE  the binary logs of each server, for point-in-time recovery (TIME:
                           when the log was created, so a new history never replaces one)
  media/KEY                every media object ever backed up; a manifest lists the ones that
                           existed at its time
Retention keeps the newest `keep` backups, the media objects they list, and the binary logs
written since the oldest of them.

Settings: /etc/db-backup.json (root only), written by the db_backup role.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG = Path("/etc/db-backup.json")
CHUNK = 1024 * 1024
# mariadb-backup writes one of these into a backup, with the position of its data.
BINLOG_INFO = ("mariadb_backup_binlog_info", "xtrabackup_binlog_info")
SLAVE_INFO = ("mariadb_backup_slave_info", "xtrabackup_slave_info")
CHECKPOINTS = ("mariadb_backup_checkpoints", "xtrabackup_checkpoints")
BINLOG_MAGIC = b"\xfebin"
# How long a replica whose IO thread is (re)connecting may take before the backup gives up.
CONNECTING_SECONDS = 30


class BackupError(Exception):
    """Something a person must fix; the message says what."""


@dataclass
class Settings:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    media_bucket: str
    server: str
    keep: int
    from_primary: bool
    work_dir: Path
    datadir: Path
    binlog_basename: str

    @classmethod
    def load(cls, path: Path = CONFIG) -> Settings:
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise BackupError(f"cannot read {path}: {exc.strerror}; run site.yml") from exc
        missing = [f for f in cls.__dataclass_fields__ if f not in data]
        if missing:
            raise BackupError(f"{path} lacks {', '.join(missing)}; run site.yml")
        data["work_dir"], data["datadir"] = Path(data["work_dir"]), Path(data["datadir"])
        return cls(**data)


# --- Pure decisions, unit-tested -----------------------------------------------------------------


def backup_name(moment: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(moment))


def should_back_up(read_only: bool, replicating: bool, from_primary: bool) -> tuple[bool, str]:
    """Whether this server backs up, and why (or why not)."""
    if replicating:
        return True, "a replica"
    if read_only:
        raise BackupError(
            "this server is read-only and replicates from no one: its data may be stale. Repair "
            "replication (playbooks/db.yml) before backing up from it"
        )
    if from_primary:
        return True, "the only server"
    return False, "the primary: a replica takes the backups"


def data_position(files: dict[str, str], binlog: bool) -> str:
    """The GTID position of a backup's data, from the files mariadb-backup wrote into it (the
    last line of the binlog info counts). "" for a server without binary logs (one server)."""
    for name in BINLOG_INFO:
        lines = files.get(name, "").strip().splitlines()
        fields = lines[-1].split("\t") if lines else []
        if len(fields) >= 3 and fields[2].strip():
            return fields[2].strip()
    for name in SLAVE_INFO:
        for part in files.get(name, "").split("'"):
            if part.count("-") >= 2 and part.replace("-", "").replace(",", "").isdigit():
                return part
    if not binlog:
        return ""
    raise BackupError("mariadb-backup recorded no GTID position in the backup")


def kept_and_pruned(names: list[str], keep: int) -> tuple[list[str], list[str]]:
    """Of the complete backups' names (sortable times), the newest `keep` stay."""
    ordered = sorted(names)
    cut = max(len(ordered) - max(keep, 1), 0)
    return ordered[cut:], ordered[:cut]


def media_to_prune(
    backed_up: dict[str, float], manifests: list[dict[str, Any]], before: float
) -> set[str]:
    """Media copies (key -> when copied) that no kept backup lists and that were copied before
    `before` (the oldest kept backup's time): a copy made since may belong to a backup that
    another replica is still taking."""
    listed: set[str] = set()
    for manifest in manifests:
        listed.update(manifest["media"])
    return {key for key, copied in backed_up.items() if key not in listed and copied < before}


def binlog_key(server: str, name: str, header: bytes) -> str:
    """Where a binary log goes: its creation time (the timestamp of its first event) comes first,
    so a log that a new history (a restore, a rebuild) names again never replaces an older one."""
    created = int.from_bytes(header[4:8], "little") if header[:4] == BINLOG_MAGIC else 0
    return f"binlog/{server}/{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(created))}-{name}"


def check_download(name: str, manifest: dict[str, Any], sha256: str, size: int) -> None:
    if size != manifest["data_bytes"] or sha256 != manifest["data_sha256"]:
        raise BackupError(
            f"backup {name} does not match its manifest (got {size} bytes, sha256 {sha256[:12]}; "
            f"the manifest says {manifest['data_bytes']} bytes, sha256 "
            f"{manifest['data_sha256'][:12]}): it would not restore. Choose another backup "
            "(db-backup list)"
        )


# --- The bucket ----------------------------------------------------------------------------------


def s3_client(endpoint: str, access_key: str, secret_key: str) -> Any:
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
    )


def list_keys(s3: Any, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
    keys: dict[str, dict[str, Any]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            keys[item["Key"]] = item
    return keys


def manifests(s3: Any, bucket: str) -> dict[str, dict[str, Any]]:
    """The complete backups: name -> manifest."""
    found = {}
    for key in list_keys(s3, bucket, "db/"):
        if key.endswith("/manifest.json"):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            manifest = json.loads(body)
            found[manifest["name"]] = manifest
    return found


# --- The server ----------------------------------------------------------------------------------


def sql(query: str) -> list[list[str]]:
    out = subprocess.run(
        ["mariadb", "--batch", "--skip-column-names", "-e", query],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line.split("\t") for line in out.splitlines()]


def replica_status() -> dict[str, str]:
    out = subprocess.run(
        ["mariadb", "--batch", "-e", "SHOW SLAVE STATUS"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return dict(zip(out[0].split("\t"), out[1].split("\t"), strict=False)) if len(out) > 1 else {}


def replicating() -> bool:
    status = replica_status()
    if not status:
        return False
    deadline = time.monotonic() + CONNECTING_SECONDS
    while status.get("Slave_IO_Running") == "Connecting" and time.monotonic() < deadline:
        time.sleep(3)
        status = replica_status()
    if status.get("Slave_IO_Running") != "Yes" or status.get("Slave_SQL_Running") != "Yes":
        raise BackupError(
            "this replica's replication is stopped "
            f"({status.get('Last_IO_Error') or status.get('Last_SQL_Error') or 'no error given'}): "
            "its data may be stale. Repair it (playbooks/db.yml) before backing up from it"
        )
    return True


def say(text: str) -> None:
    print(text, flush=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- Commands ------------------------------------------------------------------------------------


def run(settings: Settings) -> int:
    read_only, binlog = (v == "1" for v in sql("SELECT @@read_only, @@log_bin")[0])
    go, role = should_back_up(read_only, replicating(), settings.from_primary)
    if not go:
        say(f"{settings.server} is {role}; nothing to do here")
        return 0
    s3 = s3_client(settings.endpoint, settings.access_key, settings.secret_key)
    started = time.time()
    name = backup_name(started)
    target = settings.work_dir / name
    shutil.rmtree(settings.work_dir, ignore_errors=True)
    settings.work_dir.mkdir(mode=0o700, parents=True)
    try:
        say(f"backup {name}: copying the data of {settings.server} ({role})")
        mariadb_backup("--backup", f"--target-dir={target}", "--slave-info")
        say(f"backup {name}: preparing the copy")
        mariadb_backup("--prepare", f"--target-dir={target}")
        infos = {
            p.name: p.read_text() for p in target.iterdir() if p.name in BINLOG_INFO + SLAVE_INFO
        }
        gtid = data_position(infos, binlog)
        archive = settings.work_dir / f"{name}.tar.gz"
        with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
            tar.add(target, arcname=".")
        size, digest = archive.stat().st_size, sha256_of(archive)
        say(f"backup {name}: uploading {size / 1e6:.1f} MB")
        s3.upload_file(str(archive), settings.bucket, f"db/{name}/data.tar.gz")
        binlogs = upload_binlogs(s3, settings)
        media = copy_media(s3, settings)
        manifest = {
            "name": name,
            "server": settings.server,
            "taken_at": started,
            "seconds": round(time.time() - started, 1),
            "gtid": gtid,
            "data_bytes": size,
            "data_sha256": digest,
            "media_bucket": settings.media_bucket,
            "media": media,
        }
        s3.put_object(
            Bucket=settings.bucket,
            Key=f"db/{name}/manifest.json",
            Body=json.dumps(manifest, indent=1).encode(),
        )
    finally:
        shutil.rmtree(settings.work_dir, ignore_errors=True)
    pruned = prune(s3, settings)
    say(
        f"backup {name} of {settings.server}: {size / 1e6:.1f} MB, GTID {gtid}, "
        f"{len(media)} media objects, {binlogs} binary logs uploaded, "
        f"{len(pruned)} old backups pruned ({', '.join(pruned) or 'none'}), "
        f"{manifest['seconds']} s"
    )
    return 0


def mariadb_backup(*args: str) -> None:
    done = subprocess.run(["mariadb-backup", *args], capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-5:])
        raise BackupError(f"mariadb-backup {args[0]} failed:\n{tail}")


def upload_binlogs(s3: Any, settings: Settings) -> int:
    """Upload this server's binary logs that the bucket lacks or holds shorter (the current one
    grows). Returns how many were uploaded."""
    held = list_keys(s3, settings.bucket, f"binlog/{settings.server}/")
    uploaded = 0
    for path in sorted(settings.datadir.glob(f"{settings.binlog_basename}.[0-9]*")):
        stat = path.stat()
        with path.open("rb") as handle:
            key = binlog_key(settings.server, path.name, handle.read(8))
        known = held.get(key)
        if known is not None and known["Size"] == stat.st_size:
            continue
        s3.upload_file(
            str(path),
            settings.bucket,
            key,
            ExtraArgs={"Metadata": {"mtime": str(int(stat.st_mtime))}},
        )
        uploaded += 1
    return uploaded


def copy_media(s3: Any, settings: Settings) -> dict[str, int]:
    """Copy the media objects the backup bucket lacks; return every media key with its size."""
    present = list_keys(s3, settings.media_bucket, "")
    held = list_keys(s3, settings.bucket, "media/")
    for key, item in present.items():
        copy = held.get("media/" + key)
        if copy is None or copy["Size"] != item["Size"]:
            s3.copy_object(
                Bucket=settings.bucket,
                Key="media/" + key,
                CopySource={"Bucket": settings.media_bucket, "Key": key},
            )
    return {key: item["Size"] for key, item in present.items()}


def prune(s3: Any, settings: Settings) -> list[str]:
    found = manifests(s3, settings.bucket)
    kept, pruned = kept_and_pruned(list(found), settings.keep)
    for name in pruned:
        for key in list_keys(s3, settings.bucket, f"db/{name}/"):
            s3.delete_object(Bucket=settings.bucket, Key=key)
    if kept:
        oldest = min(found[n]["taken_at"] for n in kept)
        backed_up = {
            key.removeprefix("media/"): item["LastModified"].timestamp()
            for key, item in list_keys(s3, settings.bucket, "media/").items()
        }
        for key in media_to_prune(backed_up, [found[n] for n in kept], oldest):
            s3.delete_object(Bucket=settings.bucket, Key="media/" + key)
        for key, item in list_keys(s3, settings.bucket, "binlog/").items():
            head = s3.head_object(Bucket=settings.bucket, Key=key)
            written = float(head.get("Metadata", {}).get("mtime", item["LastModified"].timestamp()))
            if written < oldest:
                s3.delete_object(Bucket=settings.bucket, Key=key)
    return pruned


def chosen(found: dict[str, dict[str, Any]], name: str, bucket: str) -> dict[str, Any]:
    if not found:
        raise BackupError(f"the bucket {bucket} holds no complete backup")
    if name == "latest":
        return found[max(found)]
    if name not in found:
        raise BackupError(
            f"the bucket {bucket} holds no complete backup {name!r}; it holds: "
            + ", ".join(sorted(found))
        )
    return found[name]


def list_backups(settings: Settings, as_json: bool) -> int:
    s3 = s3_client(settings.endpoint, settings.access_key, settings.secret_key)
    found = manifests(s3, settings.bucket)
    if as_json:
        print(json.dumps([found[n] for n in sorted(found)]))
        return 0
    for name in sorted(found):
        m = found[name]
        say(
            f"{name}  {m['server']}  GTID {m['gtid']}  {m['data_bytes'] / 1e6:.1f} MB  "
            f"{len(m['media'])} media objects"
        )
    return 0


def fetch(settings: Settings, name: str, to: Path) -> int:
    if to.exists():
        raise BackupError(f"{to} exists: remove it or choose another directory")
    s3 = s3_client(settings.endpoint, settings.access_key, settings.secret_key)
    manifest = chosen(manifests(s3, settings.bucket), name, settings.bucket)
    name = manifest["name"]
    partial = to.with_name(to.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700, parents=True)
    archive = partial / "data.tar.gz"
    try:
        s3.download_file(settings.bucket, f"db/{name}/data.tar.gz", str(archive))
        check_download(name, manifest, sha256_of(archive), archive.stat().st_size)
        data = partial / "data"
        with tarfile.open(archive) as tar:
            tar.extractall(data, filter="data")
        checkpoints = next((data / n for n in CHECKPOINTS if (data / n).exists()), None)
        if checkpoints is None or "backup_type = log-applied" not in checkpoints.read_text():
            raise BackupError(f"backup {name} holds no prepared copy of a data directory")
        data.rename(to)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    print(json.dumps(manifest))
    return 0


def restore_media(settings: Settings, name: str) -> int:
    keys = sys.stdin.read().split()
    if len(keys) != 2:
        raise BackupError(
            "give the media bucket's writer keys on stdin: two lines, access key then secret key"
        )
    writer = s3_client(settings.endpoint, keys[0], keys[1])
    reader = s3_client(settings.endpoint, settings.access_key, settings.secret_key)
    manifest = chosen(manifests(reader, settings.bucket), name, settings.bucket)
    present = list_keys(writer, manifest["media_bucket"], "")
    copied = 0
    for key, size in sorted(manifest["media"].items()):
        if key in present and present[key]["Size"] == size:
            continue
        body = reader.get_object(Bucket=settings.bucket, Key="media/" + key)
        headers = {"ContentType": body.get("ContentType", "binary/octet-stream")}
        if body.get("CacheControl"):
            headers["CacheControl"] = body["CacheControl"]
        writer.upload_fileobj(body["Body"], manifest["media_bucket"], key, ExtraArgs=headers)
        copied += 1
    say(
        f"media of backup {manifest['name']}: {copied} objects copied back into "
        f"{manifest['media_bucket']}, {len(manifest['media']) - copied} were there"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="db-backup", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="back up now")
    listing = commands.add_parser("list", help="the complete backups")
    listing.add_argument("--json", action="store_true")
    fetching = commands.add_parser("fetch", help="download, check and unpack a backup")
    fetching.add_argument("name")
    fetching.add_argument("--to", type=Path, required=True)
    media = commands.add_parser("restore-media", help="copy a backup's media back")
    media.add_argument("name")
    args = parser.parse_args(argv)
    try:
        settings = Settings.load()
        if args.command == "run":
            return run(settings)
        if args.command == "list":
            return list_backups(settings, args.json)
        if args.command == "fetch":
            return fetch(settings, args.name, args.to)
        return restore_media(settings, args.name)
    except BackupError as exc:
        print(f"db-backup {args.command}: {exc}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(
            f"db-backup {args.command}: {exc.cmd[0]} failed: {exc.stderr.strip()}", file=sys.stderr
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
