"""Readiness checks, one per dependency. Each returns None when healthy or raises."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable

from django.core.cache import caches
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.db import connections
from google.cloud.exceptions import NotFound
from storages.backends.gcloud import GoogleCloudStorage
from storages.backends.s3 import S3Storage


def check_database() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone()[0] != 1:
            raise RuntimeError("SELECT 1 returned something else")


def database_reads() -> dict[str, str]:
    """Where a plain read goes now (core.dbrouter): the alias, and the server's id there."""
    from core.dbrouter import read_alias

    alias = read_alias()
    connection = connections[alias]
    if connection.vendor != "mysql":
        return {"alias": alias, "server_id": ""}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@server_id")
            return {"alias": alias, "server_id": str(cursor.fetchone()[0])}
    except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
        return {"alias": alias, "server_id": "", "error": type(exc).__name__}


def check_cache() -> None:
    cache = caches["default"]
    key = f"readyz:{socket.gethostname()}"
    client = getattr(cache, "client", None)
    if client is not None and hasattr(client, "get_client"):
        # django-redis swallows errors (IGNORE_EXCEPTIONS), so talk to Redis directly.
        # Writing a real prefixed key also proves the ACL lets the app user use app:*.
        redis = client.get_client(write=True)
        full_key = cache.make_and_validate_key(key)
        redis.set(full_key, b"1", ex=30)
        if redis.get(full_key) != b"1":
            raise RuntimeError("value written was not read back")
        return
    cache.set(key, "1", 30)
    if cache.get(key) != "1":
        raise RuntimeError("value written was not read back")


def check_storage(storage: Storage | None = None) -> None:
    storage = storage or storages["default"]
    if isinstance(storage, S3Storage):
        storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
    elif isinstance(storage, FileSystemStorage):
        # The storage creates its directory on first save; so do we.
        os.makedirs(storage.location, exist_ok=True)
        if not os.access(storage.location, os.W_OK):
            raise RuntimeError(f"{storage.location} is not writable")
    elif isinstance(storage, GoogleCloudStorage):
        check_gcs_bucket(storage)
    else:
        storage.exists(".readyz")


def check_gcs_bucket(storage: GoogleCloudStorage) -> None:
    # storage.exists() says False for a missing bucket as for a missing object. Listing needs
    # only storage.objects.list, which the app's key has (buckets.get it may lack); no retries
    # for up to two minutes: a probe must answer within seconds.
    blobs = storage.bucket.list_blobs(max_results=1, timeout=5, retry=None)
    try:
        next(iter(blobs), None)
    except NotFound:
        raise RuntimeError(
            f"GCS bucket {storage.bucket_name!r} does not exist at {storage.client.api_endpoint}: "
            "create it (docs/production.md) or set the right bucket"
        ) from None


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "cache": check_cache,
    "storage": check_storage,
}


def run_checks(names: Iterable[str] | None = None) -> dict[str, str]:
    """Run the named checks (all by default): "ok" or "error: <type>: <message>" for each."""
    results = {}
    for name in names or CHECKS:
        try:
            CHECKS[name]()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
        else:
            results[name] = "ok"
    return results
