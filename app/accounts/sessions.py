"""Sessions in Redis and the database, where a logout is final even during a Redis outage.

Django's cached_db store, on the "sessions" cache alias, which raises instead of ignoring Redis
errors: reads and saves fall back to the database, and a Redis key that could not be deleted or
updated is recorded as a tombstone (accounts.revocation) instead of being silently left behind.
The app runs under WSGI, so only the synchronous methods are adapted.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.db import SessionStore as DBStore

from accounts import revocation

logger = logging.getLogger(__name__)


class SessionStore(cached_db.SessionStore):
    def load(self) -> dict[str, Any]:
        try:
            data = self._cache.get(self.cache_key)
        except Exception as exc:  # noqa: BLE001 - any cache failure: the database has the truth
            self._warn("read", exc)
            data = None
        if data is not None:
            return data
        stored = self._get_session_from_db()
        if stored is None:
            return {}
        data = self.decode(stored.session_data)
        try:
            self._cache.set(self.cache_key, data, self.get_expiry_age(expiry=stored.expire_date))
        except Exception as exc:  # noqa: BLE001 - nothing stale is left: the copy was missing
            self._warn("refill", exc)
        return data

    def exists(self, session_key: str | None) -> bool:
        if not session_key:
            return False
        try:
            if self.cache_key_prefix + session_key in self._cache:
                return True
        except Exception as exc:  # noqa: BLE001 - ask the database instead
            self._warn("check", exc)
        return DBStore.exists(self, session_key)

    def save(self, must_create: bool = False) -> None:
        DBStore.save(self, must_create)
        key = self.cache_key
        try:
            self._cache.set(key, self._session, self.get_expiry_age())
        except Exception as exc:  # noqa: BLE001 - an older copy may sit in Redis: revoke it
            self._warn("update", exc)
            revocation.record(self._cache.make_key(key))

    def delete(self, session_key: str | None = None) -> None:
        DBStore.delete(self, session_key)
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        key = self.cache_key_prefix + session_key
        try:
            self._cache.delete(key)
        except Exception as exc:  # noqa: BLE001 - Redis keeps the copy: revoke it
            self._warn("delete", exc)
            revocation.record(self._cache.make_key(key))

    def _warn(self, action: str, exc: Exception) -> None:
        logger.warning(
            "Session %s in Redis failed, using the database (%s: %s)",
            action,
            type(exc).__name__,
            exc,
        )
