"""Cache and sessions against a real Redis with the production ACL (user app, keys app:*)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.core.cache import cache, caches
from django.test import Client
from django.urls import reverse

from accounts import revocation
from accounts.models import RevokedSession
from config import env
from tests.servers import RedisServer, env_without_django, free_port

APP_DIR = Path(django_settings.BASE_DIR)

pytestmark = pytest.mark.django_db


def whoami(client: Client) -> str:
    return client.get(reverse("feed:index")).wsgi_request.user.get_username()


def test_cache_round_trip_as_restricted_app_user(redis_cache):
    cache.set("greeting", {"hello": "world"}, 30)
    assert cache.get("greeting") == {"hello": "world"}
    keys = [key.decode() for key in redis_cache.admin().keys("*")]
    assert keys == ["app:1:greeting"]


def test_app_user_cannot_touch_keys_outside_its_prefix(redis_cache):
    import redis

    app = redis.Redis.from_url(redis_cache.app_url)
    app.set("app:ok", 1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.set("other:key", 1)


def test_sessions_live_in_redis_and_database(redis_cache, alice):
    client = Client()
    client.post(reverse("accounts:login"), {"username": "alice", "password": "pw-alice-123"})
    session_key = client.cookies["sessionid"].value
    cached = redis_cache.admin().keys(f"app:1:django.contrib.sessions.cached_db{session_key}")
    assert len(cached) == 1
    assert Session.objects.filter(session_key=session_key).exists()


def test_redis_losing_its_data_logs_nobody_out(redis_cache, alice):
    client = Client()
    client.post(reverse("accounts:login"), {"username": "alice", "password": "pw-alice-123"})
    redis_cache.admin().flushall()  # what a Redis restart without persistence looks like
    assert whoami(client) == "alice"
    # ...and the session is cached again for the next request.
    session_key = client.cookies["sessionid"].value
    assert redis_cache.admin().exists(f"app:1:django.contrib.sessions.cached_db{session_key}")


def test_site_keeps_working_while_redis_is_down(settings, tmp_path, alice):
    own = RedisServer(tmp_path / "redis").start()
    try:
        settings.CACHES = env.caches({"DJANGO_REDIS_URL": own.app_url})
        client = Client()
        client.post(reverse("accounts:login"), {"username": "alice", "password": "pw-alice-123"})
        assert whoami(client) == "alice"
    finally:
        own.stop()
    # Redis is gone: pages still render and the login still holds, from the database.
    response = client.get(reverse("feed:index"))
    assert response.status_code == 200
    assert response.wsgi_request.user.get_username() == "alice"
    assert Client().get(reverse("guestbook:index")).status_code == 200
    assert Client().get("/readyz").status_code == 503


def test_redis_url_with_nobody_listening_fails_fast(settings):
    settings.CACHES = env.caches({"DJANGO_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    # IGNORE_EXCEPTIONS: a miss, not an error page.
    assert cache.get("anything") is None


def test_app_user_may_not_run_scripts(redis_cache):
    """The production ACL has no EVAL: the app's counters must not need django-redis' Lua incr."""
    import redis

    app = redis.Redis.from_url(redis_cache.app_url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.eval("return 1", 0)


# A logout is final, Redis outage or not (accounts.sessions, accounts.revocation).


def session_redis_key(session_key: str) -> str:
    return f"app:1:django.contrib.sessions.cached_db{session_key}"


def test_logout_during_redis_outage_stays_final_after_redis_returns(settings, tmp_path, alice):
    own = RedisServer(tmp_path / "redis", persistent=True).start()
    try:
        settings.CACHES = env.caches({"DJANGO_REDIS_URL": own.app_url})
        client = Client()
        client.post(reverse("accounts:login"), {"username": "alice", "password": "pw-alice-123"})
        cookie = client.cookies["sessionid"].value
        redis_key = session_redis_key(cookie)
        assert own.admin().exists(redis_key)

        own.stop()
        response = client.post(reverse("accounts:logout"))
        assert response.status_code == 302
        assert not Session.objects.filter(session_key=cookie).exists()
        assert list(RevokedSession.objects.values_list("redis_key", flat=True)) == [redis_key]

        own.start()  # same port, same directory: the append-only file brings the data back
        # This is the copy a plain cached_db store would read and log the cookie in with.
        assert own.admin().exists(redis_key)

        replay = Client()
        replay.cookies["sessionid"] = cookie
        assert whoami(replay) == ""
        assert not own.admin().exists(redis_key)
        assert not RevokedSession.objects.exists()
        # And Redis serves sessions again as before.
        fresh = Client()
        fresh.post(reverse("accounts:login"), {"username": "alice", "password": "pw-alice-123"})
        assert own.admin().exists(session_redis_key(fresh.cookies["sessionid"].value))
    finally:
        own.stop()


def test_without_redis_the_site_serves_and_logins_work(settings, alice):
    settings.CACHES = env.caches({"DJANGO_REDIS_URL": f"redis://app:x@127.0.0.1:{free_port()}/0"})
    client = Client()
    response = client.post(
        reverse("accounts:login"), {"username": "alice", "password": "pw-alice-123"}
    )
    assert response.status_code == 302
    assert whoami(client) == "alice"
    assert client.get(reverse("guestbook:index")).status_code == 200
    assert client.post(reverse("accounts:logout")).status_code == 302
    assert whoami(client) == ""
    guest = Client()
    assert guest.post(reverse("accounts:guest")).status_code == 302
    assert whoami(guest).startswith("guest-")
    # Every session written meanwhile may have an older copy in Redis: all are revoked.
    assert RevokedSession.objects.count() >= 2


def test_a_new_redis_connection_deletes_revoked_sessions_first(redis_cache):
    admin = redis_cache.admin()
    revoked, kept = session_redis_key("revoked"), session_redis_key("kept")
    admin.set(revoked, b"stale")
    admin.set(kept, b"live")
    revocation.record(revoked)
    pool = caches["sessions"].client.get_client().connection_pool
    pool.disconnect()  # what a Redis restart does to every pooled connection
    assert caches["sessions"].get("anything") is None
    assert not admin.exists(revoked)
    assert admin.exists(kept)
    assert not RevokedSession.objects.exists()


def cache_check(tmp_path, redis_server, database: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check_ready", "cache"],
        cwd=APP_DIR,
        env=env_without_django(
            DJANGO_SETTINGS_MODULE="config.settings",
            DJANGO_SECRET_KEY="x" * 50,
            DJANGO_HTTPS="false",
            DJANGO_DB_NAME=str(database),
            DJANGO_MEDIA_ROOT=str(tmp_path / "media"),
            DJANGO_REDIS_URL=redis_server.app_url,
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cache_check_passes_before_migrate(tmp_path, redis_server):
    # The installer checks readiness before migrate: no tombstone table yet, nothing to purge.
    proc = cache_check(tmp_path, redis_server, tmp_path / "empty.sqlite3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "cache: ok\n"


def test_redis_is_not_used_when_revoked_sessions_cannot_be_read(tmp_path, redis_server):
    # Fail closed: a connection that could not purge might serve a logged-out session.
    proc = cache_check(tmp_path, redis_server, tmp_path / "missing-dir" / "db.sqlite3")
    assert proc.returncode == 1
    assert proc.stdout.startswith(
        "cache: error: ConnectionError: Redis connection not used: the sessions logged out "
        "while Redis was unreachable could not be read from the database (OperationalError"
    )
