"""Read settings from the environment.

Every function takes the environment as a mapping so tests can call it with a plain dict.
Errors name the variable and say what to do, because they surface at gunicorn start-up.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def env_str(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    """Return a variable; without a default a missing or empty one is an error."""
    value = env.get(name, "")
    if value.strip():
        return value.strip()
    if default is None:
        raise ImproperlyConfigured(
            f"The environment variable {name} is required but is not set. "
            f"Set it in the service's environment file (see app/README.md)."
        )
    return default


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use one of true/false, 1/0, yes/no, on/off."
    )


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if value < 0:
        raise ImproperlyConfigured(f"{name}={raw!r} must not be negative.")
    return value


def env_list(env: Mapping[str, str], name: str, default: list[str] | None = None) -> list[str]:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env_str(env, name, default).lower()
    if value not in choices:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not supported: use one of {', '.join(choices)}."
        )
    return value


def url_prefix(value: str) -> str:
    """MEDIA_URL and STATIC_URL must end with a slash; accept them without."""
    return value if value.endswith("/") else value + "/"


# Seconds a read on a replica may wait for the server (core.dbrouter).
REPLICA_IO_TIMEOUT = 5


def databases(env: Mapping[str, str], base_dir: Path) -> dict[str, Any]:
    engine = env_choice(env, "DJANGO_DB_ENGINE", ("sqlite", "mysql"), "sqlite")
    if engine == "sqlite":
        return {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": env_str(env, "DJANGO_DB_NAME", str(base_dir / "db.sqlite3")),
            }
        }
    default: dict[str, Any] = {
        "ENGINE": "django.db.backends.mysql",
        "NAME": env_str(env, "DJANGO_DB_NAME"),
        "USER": env_str(env, "DJANGO_DB_USER"),
        "PASSWORD": env_str(env, "DJANGO_DB_PASSWORD"),
        "HOST": env_str(env, "DJANGO_DB_HOST"),
        "PORT": str(env_int(env, "DJANGO_DB_PORT", 3306)),
        # Reuse connections for a minute; health checks drop ones MariaDB closed meanwhile.
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "charset": "utf8mb4",
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
            "connect_timeout": 5,
            **db_tls_options(env),
        },
    }
    databases = {"default": default}
    # One alias per database server for reads (core.dbrouter): a server that is down costs a
    # one-second connect attempt, one that dies under a read five seconds (then the read runs
    # again on "default"); either is left alone for a while.
    for n, host in enumerate(db_replicas(env)):
        databases[f"replica_{n}"] = {
            **default,
            "HOST": host,
            "OPTIONS": {
                **default["OPTIONS"],
                "connect_timeout": 1,
                "read_timeout": REPLICA_IO_TIMEOUT,
                "write_timeout": REPLICA_IO_TIMEOUT,
            },
            "TEST": {"MIRROR": "default"},
        }
    return databases


def db_replicas(env: Mapping[str, str]) -> list[str]:
    """DJANGO_DB_REPLICAS: the database servers' own addresses, comma-separated ("" for none)."""
    raw = env.get("DJANGO_DB_REPLICAS", "").strip()
    hosts = [h.strip() for h in raw.split(",")] if raw else []
    bad = [h for h in hosts if not h or not re.fullmatch(r"[A-Za-z0-9.\-]+", h)]
    if bad:
        raise ImproperlyConfigured(
            f"DJANGO_DB_REPLICAS is {raw!r}: give the database servers' addresses, separated by "
            "commas (e.g. 10.0.0.21,10.0.0.22), with no port and no empty item; leave it empty "
            "to read from DJANGO_DB_HOST only."
        )
    return hosts


def db_tls_options(env: Mapping[str, str]) -> dict[str, Any]:
    """TLS to the database, verified against the CA in DJANGO_DB_SSL_CA."""
    ca = env.get("DJANGO_DB_SSL_CA", "").strip()
    if not ca:
        return {}
    if not Path(ca).is_file():
        raise ImproperlyConfigured(
            f"DJANGO_DB_SSL_CA is {ca}, which is not a readable file: point it at the PEM "
            "certificate of the CA that issued the database server's certificate, or unset it "
            "for an unencrypted connection."
        )
    return {"ssl": {"ca": ca}, "ssl_mode": "VERIFY_IDENTITY"}


def caches(env: Mapping[str, str]) -> dict[str, Any]:
    """The "default" cache (rate limits, anything cached) and "sessions" (accounts.sessions)."""
    redis_url = env.get("DJANGO_REDIS_URL", "").strip()
    if not redis_url:
        # Development only: each process has its own cache.
        locmem = "django.core.cache.backends.locmem.LocMemCache"
        return {
            "default": {"BACKEND": locmem},
            "sessions": {"BACKEND": locmem, "LOCATION": "sessions"},
        }
    from accounts.revocation import connection_class_for

    sentinels = redis_sentinels(env)

    def redis_cache(ignore_exceptions: bool) -> dict[str, Any]:
        options: dict[str, Any] = {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 2,
            "SOCKET_TIMEOUT": 2,
            "IGNORE_EXCEPTIONS": ignore_exceptions,
            # Every new connection first deletes the sessions logged out while Redis was
            # unreachable (accounts.revocation). Both aliases share one pool per URL.
            "CONNECTION_POOL_KWARGS": {
                "connection_class": connection_class_for(redis_url, sentinel=bool(sentinels))
            },
        }
        if sentinels:
            # The URL's host is the master's name: every new connection asks the sentinels where
            # that master is, and a connection to a demoted master is dropped on its first write.
            # Reads go to the master too, so a session written is the session read next.
            options.update(
                {
                    "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
                    "SENTINELS": sentinels,
                    "SENTINEL_KWARGS": {
                        "password": env.get("DJANGO_REDIS_SENTINEL_PASSWORD", "") or None,
                        "socket_connect_timeout": 1,
                        "socket_timeout": 1,
                    },
                }
            )
        return {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url,
            # Keys look like "app:<version>:<key>"; the Redis ACL allows the app user only app:*.
            "KEY_PREFIX": "app",
            "OPTIONS": options,
        }

    return {
        # A Redis outage degrades to cache misses instead of failing every request; /readyz
        # still reports it.
        "default": redis_cache(ignore_exceptions=True),
        # Errors are visible here: the session store falls back to the database itself and
        # records the deletes it could not make, which a silent failure would lose.
        "sessions": redis_cache(ignore_exceptions=False),
    }


def redis_sentinels(env: Mapping[str, str]) -> list[tuple[str, int]]:
    """DJANGO_REDIS_SENTINELS ("address:port,..."; IPv6 as [address]:port) as (host, port) pairs."""
    text = env.get("DJANGO_REDIS_SENTINELS", "").strip()
    found = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, _, port = item.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(
                f"DJANGO_REDIS_SENTINELS holds {item!r}, which is not address:port. Write the "
                "sentinels as a comma-separated list, e.g. 10.0.0.31:26379,10.0.0.32:26379."
            )
        found.append((host, int(port)))
    return found


# Rate-limited actions and their default limits: (POSTs, per seconds) per client address.
RATE_LIMITS = {
    "login": (10, 60),
    "signup": (5, 600),
    "guest": (5, 600),
    "post": (30, 60),
    "comment": (30, 60),
    "guestbook": (10, 60),
}


def rate_limits(env: Mapping[str, str]) -> dict[str, tuple[int, int]]:
    """DJANGO_RATE_LIMITS, e.g. "login=10/60,guest=5/600", over the defaults; enabled scopes only.

    Empty: the defaults. "off": no limits at all. A count of 0 switches one scope off.
    """
    raw = env.get("DJANGO_RATE_LIMITS", "").strip()
    if raw.lower() == "off":
        return {}
    limits = dict(RATE_LIMITS)
    scopes = ", ".join(RATE_LIMITS)
    for entry in (item.strip() for item in raw.split(",")):
        if not entry:
            continue
        scope, equals, rate = (part.strip() for part in entry.partition("="))
        count, slash, seconds = (part.strip() for part in rate.partition("/"))
        if not (equals and slash and count.isdigit() and seconds.isdigit() and int(seconds) > 0):
            raise ImproperlyConfigured(
                f"DJANGO_RATE_LIMITS: {entry!r} is not scope=count/seconds (whole numbers, "
                f"seconds at least 1), e.g. login=10/60. Scopes: {scopes}. A count of 0 "
                "switches a scope off; DJANGO_RATE_LIMITS=off switches all of them off."
            )
        if scope.lower() not in RATE_LIMITS:
            raise ImproperlyConfigured(
                f"DJANGO_RATE_LIMITS: {entry!r} names no rate-limited action: use one of {scopes}."
            )
        limits[scope.lower()] = (int(count), int(seconds))
    return {scope: limit for scope, limit in limits.items() if limit[0] > 0}


def trusted_proxies(env: Mapping[str, str]) -> frozenset[str]:
    """DJANGO_TRUSTED_PROXIES: the balancers' addresses, whose X-Forwarded-For is believed."""
    addresses = set()
    for item in env_list(env, "DJANGO_TRUSTED_PROXIES"):
        try:
            addresses.add(str(ipaddress.ip_address(item)))
        except ValueError:
            raise ImproperlyConfigured(
                f"DJANGO_TRUSTED_PROXIES: {item!r} is not an IP address. List the addresses the "
                "balancers connect to this server from, comma-separated, e.g. "
                "10.77.0.11,10.77.0.12 (no networks, no host names)."
            ) from None
    return frozenset(addresses)


def max_image_pixels(env: Mapping[str, str]) -> int:
    value = env_int(env, "DJANGO_MAX_IMAGE_PIXELS", 24_000_000)
    if value < 1:
        raise ImproperlyConfigured(
            "DJANGO_MAX_IMAGE_PIXELS=0 would refuse every image: give the largest width × height "
            "to accept, e.g. 24000000."
        )
    return value


def storages(env: Mapping[str, str], base_dir: Path) -> dict[str, Any]:
    """The STORAGES setting: media ("default") and static files share one backend kind."""
    kind = env_choice(env, "DJANGO_STORAGE", ("filesystem", "s3", "gcs"), "filesystem")
    if kind == "filesystem":
        return {
            "default": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": media_root(env, base_dir)},
            },
            "staticfiles": {
                "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage",
            },
        }
    if kind == "s3":
        from botocore.config import Config

        common = {
            "endpoint_url": env_str(env, "DJANGO_S3_ENDPOINT_URL"),
            "bucket_name": env_str(env, "DJANGO_S3_BUCKET"),
            "access_key": env_str(env, "DJANGO_S3_ACCESS_KEY"),
            "secret_key": env_str(env, "DJANGO_S3_SECRET_KEY"),
            "region_name": env_str(env, "DJANGO_S3_REGION", "us-east-1"),
            "addressing_style": "path",
            "signature_version": "s3v4",
            # A dead store must fail /readyz and uploads in seconds, not hang a worker.
            "client_config": Config(
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                connect_timeout=3,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        }
        return {
            "default": {"BACKEND": "core.storage.MediaS3Storage", "OPTIONS": dict(common)},
            "staticfiles": {"BACKEND": "core.storage.StaticS3Storage", "OPTIONS": dict(common)},
        }
    credentials = gcs_credentials(env_str(env, "DJANGO_GCS_CREDENTIALS"))
    common = {
        "bucket_name": env_str(env, "DJANGO_GCS_BUCKET"),
        "credentials": credentials,
        "project_id": credentials.project_id,
        "emulator_url": gcs_emulator_url(env),
    }
    return {
        "default": {"BACKEND": "core.storage.MediaGCSStorage", "OPTIONS": dict(common)},
        "staticfiles": {"BACKEND": "core.storage.StaticGCSStorage", "OPTIONS": dict(common)},
    }


GCS_KEY_FIELDS = ("client_email", "private_key", "project_id", "token_uri")


def gcs_credentials(path: str) -> Any:
    """Load the service-account key, or say what is wrong with the file and how to fix it.

    Checked at start even with an emulator, so a bad key fails in the lab as in production.
    Messages never quote the private key.
    """
    where = f"DJANGO_GCS_CREDENTIALS={path!r}"
    fix = "Download a JSON key of the service account (IAM > Service accounts > Keys) to that path."
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ImproperlyConfigured(f"{where}: no such file. {fix}") from None
    except OSError as exc:
        raise ImproperlyConfigured(
            f"{where}: cannot read the file ({exc.strerror}). "
            "Point it at the key file and make that readable by the user the app runs as."
        ) from None
    except UnicodeDecodeError:
        raise ImproperlyConfigured(f"{where}: not JSON (not even UTF-8 text). {fix}") from None
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{where}: not JSON ({exc}). {fix}") from None
    if not isinstance(info, dict):
        raise ImproperlyConfigured(
            f"{where}: JSON but not an object (a {type(info).__name__}). {fix}"
        )
    if info.get("type") != "service_account":
        got = repr(info["type"]) if "type" in info else "missing"
        raise ImproperlyConfigured(
            f'{where}: "type" is {got}, but it must be a service-account key '
            '("type": "service_account"), not e.g. an authorized_user (gcloud login) or '
            f"external_account (workload identity federation) file. {fix}"
        )
    missing = [name for name in GCS_KEY_FIELDS if not str(info.get(name) or "").strip()]
    if missing:
        raise ImproperlyConfigured(
            f"{where}: the key lacks {', '.join(missing)} (missing or empty). {fix}"
        )
    from google.oauth2 import service_account

    try:
        return service_account.Credentials.from_service_account_info(info)
    except Exception as exc:  # noqa: BLE001 - whatever the crypto library raises, say so
        raise ImproperlyConfigured(
            f"{where}: its private_key does not load ({type(exc).__name__}: {exc}). {fix}"
        ) from None


def gcs_emulator_url(env: Mapping[str, str]) -> str:
    """A GCS emulator's base URL (tests and labs), or "" for Google itself."""
    raw = env_str(env, "DJANGO_GCS_EMULATOR_URL", "")
    parts = urlsplit(raw)
    if raw and (parts.scheme not in ("http", "https") or not parts.hostname):
        raise ImproperlyConfigured(
            f"DJANGO_GCS_EMULATOR_URL={raw!r} is not an http:// or https:// URL with a host, "
            "e.g. http://10.77.0.51:4443. Leave it empty to use Google Cloud Storage."
        )
    return raw.rstrip("/")


def media_root(env: Mapping[str, str], base_dir: Path) -> str:
    return env_str(env, "DJANGO_MEDIA_ROOT", str(base_dir / "var" / "media"))


def static_root(env: Mapping[str, str], base_dir: Path) -> str:
    return env_str(env, "DJANGO_STATIC_ROOT", str(base_dir / "var" / "static"))


def logging_config(env: Mapping[str, str]) -> dict[str, Any]:
    level = env_str(env, "DJANGO_LOG_LEVEL", "INFO").upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ImproperlyConfigured(
            f"DJANGO_LOG_LEVEL={level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL."
        )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Request errors are logged once by django.request; keep its level in step.
            "django": {"handlers": ["console"], "level": level, "propagate": False},
        },
    }
