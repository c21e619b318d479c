"""Periodic cleanup, run by a timer on every server: only one server at a time does the work.

Expired sessions (clearsessions), idle guest accounts (purge_guests), and the tombstones of
sessions logged out during a Redis outage (deleted from Redis if it is up, dropped once expired).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts import revocation
from accounts.models import RevokedSession
from core.locks import cluster_lock

LOCK_NAME = "app.housekeeping"


class Command(BaseCommand):
    help = (
        "Delete expired sessions, idle guest accounts (purge_guests) and old session "
        "tombstones; skip when another server holds the housekeeping lock."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--guest-days", type=int, default=30, help="idle days before a guest is deleted"
        )

    def handle(self, *args, guest_days: int, **options) -> None:
        with cluster_lock(LOCK_NAME) as taken:
            if not taken:
                self.stdout.write(
                    f"housekeeping skipped: another server holds the database lock {LOCK_NAME!r}"
                )
                return
            call_command("clearsessions")
            self.stdout.write("expired sessions cleared")
            call_command("purge_guests", "--days", str(guest_days), stdout=self.stdout)
            self.stdout.write(f"{self.purge_tombstones()} session tombstone(s) cleared")

    def purge_tombstones(self) -> int:
        """Delete revoked sessions from Redis now, and drop tombstones older than any session."""
        purged = 0
        client = getattr(caches[settings.SESSION_CACHE_ALIAS], "client", None)
        if client is not None and hasattr(client, "get_client"):
            try:
                # A new connection purges on connect; purge() covers a pooled one as well.
                redis = client.get_client(write=True)
                purged = revocation.purge(lambda keys: redis.delete(*keys))
            except Exception as exc:  # noqa: BLE001 - Redis down: only expiry is left to do
                self.stderr.write(f"Redis not reachable, tombstones kept for later ({exc})")
        # A Redis copy expires with its session, so an older tombstone guards nothing.
        cutoff = timezone.now() - timedelta(seconds=settings.SESSION_COOKIE_AGE)
        expired, _ = RevokedSession.objects.filter(created_at__lt=cutoff).delete()
        return purged + expired
