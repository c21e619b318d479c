"""The cache and the sessions through Redis Sentinel: real redis-server processes on loopback, a
master and a replica, and a real sentinel that names the master (DJANGO_REDIS_SENTINELS)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.core.cache import caches
from django.test import Client
from django.urls import reverse
from django_redis.pool import ConnectionFactory

from accounts import revocation
from accounts.models import RevokedSession
from config import env
from tests.servers import LOOPBACK, RedisServer, SentinelServer, wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair(tmp_path) -> Iterator[tuple[RedisServer, RedisServer, SentinelServer]]:
    """A master, its replica (set up as the installer does: masteruser/masterauth), a sentinel."""
    master = RedisServer(tmp_path / "master").start()
    replica = RedisServer(tmp_path / "replica").start()
    sentinel = None
    try:
        admin = replica.admin()
        admin.config_set("masteruser", "admin")
        admin.config_set("masterauth", master.admin_password)
        admin.replicaof(LOOPBACK, master.port)
        wait_for(lambda: admin.info("replication")["master_link_status"] == "up", 10, "replication")
        sentinel = SentinelServer(tmp_path / "sentinel", master).start()
        # A failover needs a replica the sentinel knows (it learns them from the master's INFO).
        wait_for(lambda: sentinel.knows_a_healthy_replica(), 30, "the sentinel to find the replica")
        yield master, replica, sentinel
    finally:
        for server in (sentinel, replica, master):
            if server is not None:
                server.stop()


@pytest.fixture
def sentinel_caches(settings, pair):
    master, _, sentinel = pair
    url = f"redis://app:{master.app_password}@{sentinel.service}/0"
    # django-redis keeps one pool per URL for the whole process: drop the previous test's, which
    # asks that test's (stopped) sentinel.
    ConnectionFactory._pools.pop(url, None)
    settings.CACHES = env.caches(
        {
            "DJANGO_REDIS_URL": url,
            "DJANGO_REDIS_SENTINELS": f"{LOOPBACK}:{sentinel.port}",
            "DJANGO_REDIS_SENTINEL_PASSWORD": sentinel.password,
        }
    )
    yield pair
    for name in ("default", "sessions"):
        caches[name].client.get_client().connection_pool.disconnect()
    ConnectionFactory._pools.pop(url, None)


def test_the_cache_reaches_the_master_the_sentinel_names(sentinel_caches):
    master, replica, _ = sentinel_caches
    caches["default"].set("greeting", "hello", 30)
    assert caches["default"].get("greeting") == "hello"
    assert master.admin().exists("app:1:greeting")
    wait_for(lambda: replica.admin().exists("app:1:greeting"), 5, "the replica's copy")
    connection = caches["sessions"].client.get_client().connection_pool.get_connection()
    assert isinstance(connection, revocation.PurgingSentinelConnection)


def test_a_failover_moves_the_writes_to_the_new_master_and_keeps_the_login(sentinel_caches, alice):
    master, replica, sentinel = sentinel_caches
    client = Client()
    client.post(reverse("accounts:login"), {"username": "alice", "password": "pw-alice-123"})
    assert client.get(reverse("feed:index")).wsgi_request.user.get_username() == "alice"

    sentinel.client().execute_command("SENTINEL", "FAILOVER", sentinel.service)
    deadline = time.monotonic() + 30
    while (
        sentinel.master_port() != replica.port
        or master.admin().info("replication")["role"] != "slave"
    ):
        assert time.monotonic() < deadline, "the sentinel did not promote the replica"
        time.sleep(0.2)

    # The pooled connections still lead to the old master, now a read-only replica: the first
    # write on one fails over to a new connection, which the sentinel sends to the new master.
    def writes_reach_the_new_master() -> bool:
        try:
            caches["default"].set("after", "failover", 30)
        except Exception:  # noqa: BLE001 - the write that meets the demoted master
            return False
        return bool(replica.admin().exists("app:1:after"))

    wait_for(writes_reach_the_new_master, 10, "a write on the new master")
    assert client.get(reverse("feed:index")).wsgi_request.user.get_username() == "alice"


def test_revoked_sessions_are_purged_through_the_sentinel_too(sentinel_caches):
    master, _, _ = sentinel_caches
    key = "app:1:django.contrib.sessions.cached_dbrevokedsession"
    master.admin().set(key, b"stale")
    revocation.record(key)
    caches["sessions"].client.get_client().connection_pool.disconnect()
    assert caches["sessions"].get("anything") is None
    assert not master.admin().exists(key)
    assert not RevokedSession.objects.exists()


@pytest.mark.parametrize("bad", ["10.0.0.1", "10.0.0.1:port", ":26379", "10.0.0.1:70000"])
def test_a_malformed_sentinel_list_is_refused_with_the_fix(bad):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="not address:port"):
        env.caches({"DJANGO_REDIS_URL": "redis://app:pw@app/0", "DJANGO_REDIS_SENTINELS": f"{bad}"})
