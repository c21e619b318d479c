"""Logouts that stay final through a Redis outage.

Sessions live in the database and in Redis (accounts.sessions). While Redis is unreachable a
logout still deletes the database row, but the Redis copy survives (Redis persists to disk) and
would log the old cookie in again once Redis is back. So the session store records every Redis
key it could not delete or update (a RevokedSession row, a "tombstone"), and every new Redis
connection deletes those keys, then their tombstones, before it carries any command. A restarted
Redis breaks every connection opened before, so nothing reads a revoked key once Redis is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.sentinel import SentinelManagedConnection

logger = logging.getLogger(__name__)

BATCH = 500
_table_seen = False


def table_exists() -> bool:
    """Whether migrations created the tombstone table (check_ready runs before migrate)."""
    global _table_seen
    if not _table_seen:
        from django.db import connection

        from accounts.models import RevokedSession

        _table_seen = RevokedSession._meta.db_table in connection.introspection.table_names()
    return _table_seen


def record(redis_key: str) -> None:
    """Remember a Redis key that must not be read again (its delete or update failed)."""
    from django.utils import timezone

    from accounts.models import RevokedSession

    # Refresh the time of an existing tombstone: housekeeping expires them by age.
    if not RevokedSession.objects.filter(redis_key=redis_key).update(created_at=timezone.now()):
        RevokedSession.objects.bulk_create(
            [RevokedSession(redis_key=redis_key)], ignore_conflicts=True
        )


def purge(delete: Callable[[list[str]], object]) -> int:
    """Delete every recorded key with delete(keys), then its tombstone; return how many."""
    from django.db import transaction

    from accounts.models import RevokedSession

    if not table_exists():
        return 0
    total = 0
    while True:
        # A savepoint: a failure here must not break a transaction the caller has open.
        with transaction.atomic():
            rows = list(
                RevokedSession.objects.order_by("pk").values_list("pk", "redis_key")[:BATCH]
            )
            if rows:
                delete([key for _, key in rows])
                RevokedSession.objects.filter(pk__in=[pk for pk, _ in rows]).delete()
        total += len(rows)
        if len(rows) < BATCH:
            return total


class PurgeOnConnect:
    """Mixin for redis-py connections: purge revoked sessions before the first command."""

    def on_connect_check_health(self, check_health: bool = True) -> None:
        super().on_connect_check_health(check_health=check_health)  # type: ignore[misc]
        try:
            purged = purge(self._delete)
        except RedisError:
            raise  # redis-py drops this connection; the caller sees a Redis error
        except Exception as exc:  # noqa: BLE001 - database errors of any driver
            # Fail closed: a connection that could not purge might read a revoked session.
            raise RedisConnectionError(
                "Redis connection not used: the sessions logged out while Redis was unreachable "
                f"could not be read from the database ({type(exc).__name__}: {exc}). The next "
                "connection tries again."
            ) from exc
        if purged:
            logger.warning(
                "Deleted %d session(s) from Redis that were logged out during an outage", purged
            )

    def _delete(self, keys: list[str]) -> None:
        self.send_command("DEL", *keys, check_health=False)  # type: ignore[attr-defined]
        self.read_response()  # type: ignore[attr-defined]


class PurgingConnection(PurgeOnConnect, Connection):
    pass


class PurgingSSLConnection(PurgeOnConnect, SSLConnection):
    pass


class PurgingUnixConnection(PurgeOnConnect, UnixDomainSocketConnection):
    pass


class PurgingSentinelConnection(PurgeOnConnect, SentinelManagedConnection):
    """To the master the sentinels name (redis.sentinel), purging like the others."""


def connection_class_for(url: str, sentinel: bool = False) -> type[Connection]:
    """The purging connection class for a Redis URL (an explicit class overrides the scheme's),
    or for the master behind sentinels."""
    if sentinel:
        return PurgingSentinelConnection
    scheme = urlsplit(url).scheme
    if scheme == "rediss":
        return PurgingSSLConnection
    if scheme == "unix":
        return PurgingUnixConnection
    return PurgingConnection
