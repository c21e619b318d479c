"""Reads from a database replica, with read-your-writes.

Writes (and migrations) always go to "default", the writer address that follows the primary.
A read goes to a replica alias ("replica_<n>", one per database server, config.env) when one is
known to be healthy and read-only: a server that accepts writes is the primary, and reading there
through its own address would bypass the writer address. With none, reads go to "default" too,
so the site keeps working while the replicas are down.

Read-your-writes: once a request writes, its later reads go to "default"; and for
READ_YOUR_WRITES_SECONDS after a client's last write (a cookie carries the moment), its requests
read from "default" too, since a replica may not have applied the write yet.

A replica that dies under a read: the view's database error is caught here, the replica is left
alone for a while, and a safe request (GET, HEAD, OPTIONS) runs once more reading from "default";
the client sees a slower page, not an error. Replica connections give up after a few seconds
(config.env), so a dead one costs that long once per worker.
"""

from __future__ import annotations

import contextvars
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse

# For the current request: the client wrote lately (its cookie says so), or this request wrote.
client_wrote_lately: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "client_wrote_lately", default=False
)
request_wrote: contextvars.ContextVar[bool] = contextvars.ContextVar("request_wrote", default=False)
# The replica alias this request read from ("" for none), and the one a view's error came from.
read_from: contextvars.ContextVar[str] = contextvars.ContextVar("read_from", default="")
replica_failed: contextvars.ContextVar[str] = contextvars.ContextVar("replica_failed", default="")

log = logging.getLogger(__name__)

REPLICA_PREFIX = "replica_"
PIN_COOKIE = "dbpin"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# How long a replica's health is trusted, and how long one that failed is left alone.
HEALTH_SECONDS = 5.0
FAILED_SECONDS = 15.0

_health: dict[str, tuple[bool, float]] = {}
_health_lock = threading.Lock()


def replica_aliases() -> list[str]:
    return [alias for alias in settings.DATABASES if alias.startswith(REPLICA_PREFIX)]


def serves_reads(alias: str) -> bool:
    """Whether the server behind `alias` answers and is a replica (read-only). MariaDB says so
    with @@read_only; other engines (the tests' SQLite) have no replicas to tell apart."""
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            if connection.vendor != "mysql":
                cursor.execute("SELECT 1")
                return True
            cursor.execute("SELECT @@read_only")
            return bool(cursor.fetchone()[0])
    except Exception:
        # A half-open connection must not be reused when the server is back.
        connection.close()
        raise


def healthy(alias: str, probe: Callable[[str], bool] = serves_reads) -> bool:
    """`probe`'s answer for `alias`, remembered for HEALTH_SECONDS; an error counts as no."""
    now = time.monotonic()
    with _health_lock:
        known = _health.get(alias)
    if known is not None and now - known[1] < (HEALTH_SECONDS if known[0] else FAILED_SECONDS):
        return known[0]
    try:
        ok = probe(alias)
    except Exception:  # noqa: BLE001 - any failure means: do not read there for a while
        ok = False
    with _health_lock:
        _health[alias] = (ok, now)
    return ok


def mark_failed(alias: str) -> None:
    """Leave `alias` alone for FAILED_SECONDS, from now."""
    with _health_lock:
        _health[alias] = (False, time.monotonic())


def forget_health() -> None:
    with _health_lock:
        _health.clear()


def read_alias() -> str:
    """Where a read goes now: a healthy replica, else "default"."""
    if client_wrote_lately.get() or request_wrote.get():
        return "default"
    candidates = [alias for alias in replica_aliases() if healthy(alias)]
    if not candidates:
        return "default"
    alias = random.choice(candidates)  # noqa: S311 - spreading reads, not security
    read_from.set(alias)
    return alias


class ReplicaRouter:
    """DATABASE_ROUTERS entry: writes to "default", reads as read_alias() says."""

    def db_for_read(self, model: type, **hints: Any) -> str:
        return read_alias()

    def db_for_write(self, model: type, **hints: Any) -> str:
        request_wrote.set(True)
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        # Every alias holds the same data.
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == "default"


Handler = Callable[[HttpRequest], HttpResponse]


class read_your_writes:  # noqa: N801 - named like the other middleware, which are functions
    """Pin a client's reads to the writer for a while after it writes, and run a safe request
    again on the writer when the replica it read from failed under it (see the module)."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self.seconds = float(getattr(settings, "READ_YOUR_WRITES_SECONDS", 5))

    def __call__(self, request: HttpRequest) -> HttpResponse:
        pinned_until = request.COOKIES.get(PIN_COOKIE, "")
        lately = pinned_until.replace(".", "", 1).isdigit() and float(pinned_until) > time.time()
        unsafe = request.method not in SAFE_METHODS
        tokens = (
            client_wrote_lately.set(lately),
            request_wrote.set(unsafe),
            read_from.set(""),
            replica_failed.set(""),
        )
        try:
            response = self.get_response(request)
            failed = replica_failed.get()
            if failed and not unsafe:
                mark_failed(failed)
                log.warning(
                    "database %s failed under a read (the error above); left alone for %.0f s, "
                    "%s %s runs again on the writer",
                    failed,
                    FAILED_SECONDS,
                    request.method,
                    request.path,
                )
                client_wrote_lately.set(True)
                replica_failed.set("")
                response = self.get_response(request)
            # Only a request that wrote starts (or extends) the window.
            if request_wrote.get() and replica_aliases():
                response.set_cookie(
                    PIN_COOKIE,
                    f"{time.time() + self.seconds:.1f}",
                    max_age=int(self.seconds) + 1,
                    httponly=True,
                    samesite="Lax",
                    secure=request.is_secure(),
                )
            return response
        finally:
            client_wrote_lately.reset(tokens[0])
            request_wrote.reset(tokens[1])
            read_from.reset(tokens[2])
            replica_failed.reset(tokens[3])

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """Remember a database error on the replica this request read from; Django then answers
        500 as usual, and __call__ decides whether to run the request again."""
        alias = read_from.get()
        if (
            alias
            and isinstance(exception, (OperationalError, InterfaceError))
            and connections[alias].errors_occurred
        ):
            replica_failed.set(alias)
