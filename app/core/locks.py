"""A lock every server sees, held in the shared database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper


class LockError(RuntimeError):
    pass


@contextmanager
def cluster_lock(name: str, connection: BaseDatabaseWrapper | None = None) -> Iterator[bool]:
    """Try once to take the named lock; yield whether it was taken, release it afterwards.

    MariaDB/MySQL: GET_LOCK with no wait, held by this database session until RELEASE_LOCK (or
    until the session ends, so a crashed holder cannot keep it). Other databases (sqlite for
    tests and single-server development) have no such lock and only one server: always taken.
    """
    connection = connection or connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "mysql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, 0)", [name])
        (taken,) = cursor.fetchone()
    if taken is None:
        raise LockError(
            f"GET_LOCK({name!r}) failed in the database (out of memory, or the session was "
            "killed); try again."
        )
    if not taken:
        yield False
        return
    try:
        yield True
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT RELEASE_LOCK(%s)", [name])
