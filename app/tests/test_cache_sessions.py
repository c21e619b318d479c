"""Cache and sessions against a real Redis with the production ACL (user app, keys app:*)."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from tests.servers import RedisServer, free_port

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
    from config import env

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
    from config import env

    settings.CACHES = env.caches({"DJANGO_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    # IGNORE_EXCEPTIONS: a miss, not an error page.
    assert cache.get("anything") is None
