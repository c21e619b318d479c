"""manage.py housekeeping, and the database lock that lets only one server run it at a time."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore as DBStore
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import revocation
from accounts.guests import create_guest
from accounts.models import RevokedSession
from core.locks import LockError, cluster_lock

pytestmark = pytest.mark.django_db
User = get_user_model()


class MariaDBLocks:
    """GET_LOCK and RELEASE_LOCK as MariaDB answers them, installed as sqlite functions."""

    def __init__(self, held_elsewhere: set[str] | None = None, fail: bool = False) -> None:
        self.elsewhere = set(held_elsewhere or ())
        self.ours: set[str] = set()
        self.fail = fail
        self.calls: list[tuple] = []

    def install(self, conn) -> None:
        conn.ensure_connection()
        conn.connection.create_function("GET_LOCK", 2, self.get_lock)
        conn.connection.create_function("RELEASE_LOCK", 1, self.release_lock)

    def get_lock(self, name: str, timeout: int) -> int | None:
        self.calls.append(("GET_LOCK", name, timeout))
        if self.fail:
            return None
        if name in self.elsewhere:
            return 0
        self.ours.add(name)
        return 1

    def release_lock(self, name: str) -> int | None:
        self.calls.append(("RELEASE_LOCK", name))
        if name in self.ours:
            self.ours.remove(name)
            return 1
        return 0 if name in self.elsewhere else None


class AsMariaDB:
    """The test database's connection, reporting itself as MySQL/MariaDB to cluster_lock."""

    vendor = "mysql"

    def __init__(self, conn) -> None:
        self.conn = conn

    def cursor(self):
        return self.conn.cursor()


def test_sqlite_lock_is_always_taken_without_any_sql():
    with CaptureQueriesContext(connection) as queries, cluster_lock("app.test") as taken:
        assert taken is True
    assert len(queries) == 0


def test_mariadb_lock_taken_and_released():
    locks = MariaDBLocks()
    locks.install(connection)
    with cluster_lock("app.test", AsMariaDB(connection)) as taken:
        assert taken is True
        assert locks.ours == {"app.test"}
    assert locks.calls == [("GET_LOCK", "app.test", 0), ("RELEASE_LOCK", "app.test")]
    assert locks.ours == set()


def test_mariadb_lock_held_elsewhere_is_not_waited_for_nor_released():
    locks = MariaDBLocks(held_elsewhere={"app.test"})
    locks.install(connection)
    with cluster_lock("app.test", AsMariaDB(connection)) as taken:
        assert taken is False
    assert locks.calls == [("GET_LOCK", "app.test", 0)]


def test_mariadb_lock_released_when_the_work_fails():
    locks = MariaDBLocks()
    locks.install(connection)
    with pytest.raises(ZeroDivisionError), cluster_lock("app.test", AsMariaDB(connection)):
        1 / 0  # noqa: B018 - the work fails
    assert locks.ours == set()


def test_mariadb_lock_error_is_an_error():
    MariaDBLocks(fail=True).install(connection)
    with (
        pytest.raises(LockError, match=r"GET_LOCK\('app.test'\) failed"),
        cluster_lock("app.test", AsMariaDB(connection)),
    ):
        pass


def make_session(expired: bool) -> str:
    store = DBStore()
    store["x"] = 1
    store.create()
    expire = timezone.now() + timedelta(days=-1 if expired else 1)
    Session.objects.filter(session_key=store.session_key).update(expire_date=expire)
    return store.session_key


def idle_guest(days: int):
    guest = create_guest()
    User.objects.filter(pk=guest.pk).update(last_login=timezone.now() - timedelta(days=days))
    return guest


def tombstone(key: str, age: timedelta) -> None:
    revocation.record(key)
    RevokedSession.objects.filter(redis_key=key).update(created_at=timezone.now() - age)


def housekeeping(*args: str) -> str:
    out = StringIO()
    call_command("housekeeping", *args, stdout=out)
    return out.getvalue()


def test_housekeeping_clears_sessions_guests_and_old_tombstones():
    expired, live = make_session(expired=True), make_session(expired=False)
    old_guest, recent_guest = idle_guest(days=40), idle_guest(days=2)
    session_age = timedelta(seconds=settings.SESSION_COOKIE_AGE)
    tombstone("app:1:old", session_age + timedelta(hours=1))
    tombstone("app:1:recent", timedelta(hours=1))

    assert housekeeping() == (
        "expired sessions cleared\n1 guest account(s) deleted\n1 session tombstone(s) cleared\n"
    )
    assert set(Session.objects.values_list("session_key", flat=True)) == {live}
    assert not Session.objects.filter(session_key=expired).exists()
    assert set(User.objects.values_list("pk", flat=True)) == {recent_guest.pk}
    assert not User.objects.filter(pk=old_guest.pk).exists()
    # Without Redis (local cache here) a tombstone stays until no session could outlive it.
    assert list(RevokedSession.objects.values_list("redis_key", flat=True)) == ["app:1:recent"]


def test_housekeeping_guest_days():
    idle_guest(days=10)
    assert "1 guest account(s) deleted" in housekeeping("--guest-days", "7")


def test_housekeeping_deletes_revoked_sessions_from_redis(redis_cache):
    admin = redis_cache.admin()
    admin.set("app:1:django.contrib.sessions.cached_dbrevoked", b"stale")
    tombstone("app:1:django.contrib.sessions.cached_dbrevoked", timedelta(minutes=5))
    assert housekeeping().endswith("1 session tombstone(s) cleared\n")
    assert not admin.exists("app:1:django.contrib.sessions.cached_dbrevoked")
    assert not RevokedSession.objects.exists()


def test_housekeeping_skips_while_another_server_holds_the_lock(monkeypatch):
    expired = make_session(expired=True)
    idle_guest(days=40)
    locks = MariaDBLocks(held_elsewhere={"app.housekeeping"})
    locks.install(connection)
    monkeypatch.setattr(connection, "vendor", "mysql")
    assert housekeeping() == (
        "housekeeping skipped: another server holds the database lock 'app.housekeeping'\n"
    )
    monkeypatch.undo()
    assert locks.calls == [("GET_LOCK", "app.housekeeping", 0)]
    assert Session.objects.filter(session_key=expired).exists()
    assert User.objects.count() == 1
