"""Read settings from the environment.

Every function takes the environment as a mapping so tests can call it with a plain dict.
Errors name the variable and say what to do, because they surface at gunicorn start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def databases(env: Mapping[str, str], base_dir: Path) -> dict[str, Any]:
    engine = env_choice(env, "DJANGO_DB_ENGINE", ("sqlite", "mysql"), "sqlite")
    if engine == "sqlite":
        return {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": env_str(env, "DJANGO_DB_NAME", str(base_dir / "db.sqlite3")),
            }
        }
    return {
        "default": {
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
            },
        }
    }


def caches(env: Mapping[str, str]) -> dict[str, Any]:
    redis_url = env.get("DJANGO_REDIS_URL", "").strip()
    if not redis_url:
        # Development only: each process has its own cache.
        return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url,
            # Keys look like "app:<version>:<key>"; the Redis ACL allows the app user only app:*.
            "KEY_PREFIX": "app",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 2,
                "SOCKET_TIMEOUT": 2,
                # A Redis outage degrades to cache misses (sessions fall back to the database)
                # instead of failing every request; /readyz still reports it.
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }


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
    common = {
        "bucket_name": env_str(env, "DJANGO_GCS_BUCKET"),
        "credentials": gcs_credentials(env_str(env, "DJANGO_GCS_CREDENTIALS")),
    }
    return {
        "default": {"BACKEND": "core.storage.MediaGCSStorage", "OPTIONS": dict(common)},
        "staticfiles": {"BACKEND": "core.storage.StaticGCSStorage", "OPTIONS": dict(common)},
    }


def gcs_credentials(path: str) -> Any:
    if not Path(path).is_file():
        raise ImproperlyConfigured(
            f"DJANGO_GCS_CREDENTIALS={path!r}: no such file. "
            "Point it at the service-account JSON key."
        )
    from google.oauth2 import service_account

    return service_account.Credentials.from_service_account_file(path)


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
