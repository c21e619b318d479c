"""The restore drill: posts with images, a backup from the replica, then every database server's
data and the media bucket destroyed; playbooks/db-restore.yml brings every post and every image
back, byte for byte, with a replica following the restored primary. Before that, a restore that
would replace a live database, and a backup that does not match its manifest, are refused with
nothing changed."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import pytest
import requests
from cluster_support import (
    address,
    describe,
    get_host,
    group_hosts,
    host_fact,
    post_form,
    run_playbook,
)
from drills import DbServers
from e2e_support import Cluster, png_bytes, sign_up, wait_for

COLORS = [(250, 10, 10), (10, 250, 10), (10, 10, 250), (240, 200, 20)]
# Copies a backup under a new name with one byte of its data changed (run on a db host, as root,
# with the backup command's own settings): a backup that no longer matches its manifest.
TAMPER = """
import importlib.machinery, json, sys
tool = importlib.machinery.SourceFileLoader("db_backup", "/usr/local/sbin/db-backup").load_module()
settings = tool.Settings.load()
s3 = tool.s3_client(settings.endpoint, settings.access_key, settings.secret_key)
source, target = sys.argv[1], sys.argv[2]
key = f"db/{source}/data.tar.gz"
data = bytearray(s3.get_object(Bucket=settings.bucket, Key=key)["Body"].read())
data[len(data) // 2] ^= 0xFF
manifest = tool.chosen(tool.manifests(s3, settings.bucket), source, settings.bucket)
manifest["name"] = target
s3.put_object(Bucket=settings.bucket, Key=f"db/{target}/data.tar.gz", Body=bytes(data))
s3.put_object(Bucket=settings.bucket, Key=f"db/{target}/manifest.json", Body=json.dumps(manifest))
"""


@pytest.fixture
def servers(cluster: Cluster) -> DbServers:
    if not group_hosts(cluster.inventory, "storage"):
        pytest.skip(f"{cluster.inventory} has no S3 store: no backups")
    return DbServers.read(cluster.inventory)


def post_images(cluster: Cluster, prefix: str) -> dict[str, str]:
    """Post one image per colour; returns caption -> the image's URL path through the balancer."""
    session = requests.Session()
    sign_up(cluster, session, f"restore{uuid.uuid4().hex[:8]}")
    posted = {}
    for number, color in enumerate(COLORS):
        caption = f"{prefix}{number}"
        response = post_form(
            session,
            f"{cluster.url}/posts/new/",
            {"caption": caption},
            files={"image": (f"restore{number}.png", png_bytes(color), "image/png")},
        )
        assert response.status_code == 200, response.text[:500]
        found = re.search(
            rf'<img class="photo" src="([^"]+)" alt="{re.escape(caption)}"', response.text
        )
        assert found, f"the feed shows the post {caption}"
        posted[caption] = found.group(1)
    return posted


def image_bytes(cluster: Cluster, posted: dict[str, str]) -> dict[str, bytes | int]:
    """Each image's bytes through the balancer (its status code when that is not 200)."""
    got: dict[str, bytes | int] = {}
    for caption, url in posted.items():
        response = requests.get(f"{cluster.url}{url}", timeout=10)
        got[caption] = response.content if response.status_code == 200 else response.status_code
    return got


def set_aside(inventory: Path, name: str) -> set[str]:
    """The data directories a restore has moved aside on a db host."""
    listed = get_host(inventory, name).run("ls -d /var/lib/mysql.before-restore-*")
    return set(listed.stdout.split())


def restore(cluster: Cluster, where: Path, extra: str) -> tuple[bool, str]:
    runner = run_playbook("playbooks/db-restore.yml", cluster.inventory, where, cmdline=extra)
    return runner.status == "successful", describe(runner)


def test_a_lost_database_and_bucket_come_back_from_a_backup(
    cluster: Cluster, servers: DbServers, tmp_path: Path
) -> None:
    inventory = cluster.inventory
    primary = servers.primary()
    replicas = [n for n in servers.names if n != primary]
    backer = replicas[0] if replicas else primary
    prefix = f"restore-{uuid.uuid4().hex[:8]}-"
    posted = post_images(cluster, prefix)
    before = image_bytes(cluster, posted)
    assert all(isinstance(b, bytes) and b[:4] == b"\x89PNG" for b in before.values()), before
    wait_for(f"{backer} to hold the posts", lambda: servers.captions(backer, prefix) == set(posted))

    # A backup now, from the replica (the primary's timer declines: it is not a replica).
    backer_host = get_host(inventory, backer)
    started = backer_host.run("systemctl start db-backup.service")
    log = backer_host.run("journalctl -u db-backup.service -n 20 --no-pager -o cat").stdout
    assert started.rc == 0, f"{started.stderr}\n{log}"
    print(f"\nbackup on {backer}: {log.strip().splitlines()[-1]}")
    listing = json.loads(backer_host.check_output("db-backup list --json"))
    latest = listing[-1]
    assert latest["server"] == backer
    store = group_hosts(inventory, "storage")[0]
    # The balancer's /media/<name> is the object media/<name> of the bucket.
    media_keys = {"media/" + url.rsplit("/media/", 1)[-1] for url in posted.values()}
    assert media_keys <= set(latest["media"]), "the backup lists every new image"
    if replicas:
        declined = get_host(inventory, primary).run("db-backup run")
        assert declined.rc == 0 and "a replica takes the backups" in declined.stdout

    # Bad input first: a live database is not replaced; a tampered backup is refused on the host.
    aside_before = {name: set_aside(inventory, name) for name in servers.names}
    ok, out = restore(cluster, tmp_path / "live", f"-e db_restore_host={primary}")
    assert not ok and "the database is not lost, and a restore would replace it" in out, out
    tampered = "19990101T000000Z"
    backer_host.check_output("python3 -c %s %s %s", TAMPER, latest["name"], tampered)
    ok, out = restore(
        cluster,
        tmp_path / "tampered",
        f"-e db_restore_host={primary} -e db_backup={tampered} -e db_restore_force=true",
    )
    assert not ok and f"{primary}: db-backup fetch: backup {tampered} does not match" in out, out
    assert servers.writable() == [primary], "the refused restores changed nothing"
    for name in servers.names:
        assert servers.captions(name, prefix) == set(posted), f"{name} lost data"
        assert set_aside(inventory, name) == aside_before[name], f"{name}'s data was moved aside"

    # The loss: every database server's data, and the media bucket.
    for name in servers.names:
        get_host(inventory, name).check_output(
            "systemctl stop mariadb && rm -rf /var/lib/mysql && install -d -o mysql /var/lib/mysql"
        )
    weed = "/opt/seaweedfs/venv/bin/weed shell -master=127.0.0.1:9333 -filer=127.0.0.1:8888"
    bucket = host_fact(get_host(inventory, store), "object_storage")["bucket"]
    get_host(inventory, store).check_output(f"echo 's3.bucket.delete -name {bucket}' | {weed}")
    gone = image_bytes(cluster, posted)
    assert not any(isinstance(b, bytes) for b in gone.values()), "the images are gone"

    began = time.monotonic()
    ok, out = restore(cluster, tmp_path / "restore", f"-e db_restore_host={primary}")
    assert ok, out
    print(f"restore drill: db-restore.yml took {time.monotonic() - began:.0f} s")

    # Every post and every image back, byte for byte, through the balancer.
    assert servers.writable() == [primary]
    assert servers.captions(primary, prefix) == set(posted)
    for replica in replicas:
        wait_for(
            f"{replica} to follow {primary}",
            lambda r=replica: servers.source(r) == address(inventory, primary),
        )
        assert servers.captions(replica, prefix) == set(posted)

    def every_image() -> dict[str, bytes | int] | None:
        got = image_bytes(cluster, posted)
        return got if all(isinstance(b, bytes) for b in got.values()) else None

    def feed() -> str | None:
        response = requests.get(f"{cluster.url}/", timeout=10)
        return response.text if response.status_code == 200 else None

    assert wait_for("the images through the balancer", every_image) == before
    assert f"{prefix}{len(COLORS) - 1}" in wait_for("the feed to load", feed)
