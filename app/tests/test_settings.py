"""The environment contract: names, defaults, errors, and production checks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from config import env
from tests.servers import env_without_django, free_port

APP_DIR = Path(django_settings.BASE_DIR)
PRODUCTION = {
    "DJANGO_SECRET_KEY": "q8Zr!x2@Lm#4vB7^nW1$kT9&pY3*eH6(jU0)sD5-fG8+aC2=zX4",
    "DJANGO_ALLOWED_HOSTS": "photos.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://photos.example.com",
}


def django_process(args: list[str], **environ: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=APP_DIR,
        env=env_without_django(DJANGO_SETTINGS_MODULE="config.settings", **environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_in_process(names: list[str], **environ: str) -> dict:
    script = (
        "import json; from django.conf import settings;"
        f"print(json.dumps({{n: getattr(settings, n) for n in {names!r}}}, default=str))"
    )
    proc = django_process(["-c", script], **environ)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# Helpers


@pytest.mark.parametrize(
    "raw, expected",
    [("true", True), ("1", True), ("Yes", True), ("false", False), ("0", False), ("off", False)],
)
def test_env_bool(raw, expected):
    assert env.env_bool({"X": raw}, "X", not expected) is expected


def test_env_bool_default_and_error():
    assert env.env_bool({}, "X", True) is True
    with pytest.raises(ImproperlyConfigured, match="X='maybe' is not a boolean"):
        env.env_bool({"X": "maybe"}, "X", True)


def test_env_list():
    assert env.env_list({"H": " a.example, b.example ,,"}, "H") == ["a.example", "b.example"]
    assert env.env_list({}, "H") == []


def test_required_variable_names_itself():
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY is required"):
        env.env_str({"DJANGO_SECRET_KEY": "  "}, "DJANGO_SECRET_KEY")


def test_unknown_choice_lists_choices():
    with pytest.raises(ImproperlyConfigured, match="use one of filesystem, s3, gcs"):
        env.storages({"DJANGO_STORAGE": "ftp"}, APP_DIR)


def test_sqlite_is_the_default_database():
    db = env.databases({}, APP_DIR)["default"]
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == str(APP_DIR / "db.sqlite3")


def test_mysql_database():
    db = env.databases(
        {
            "DJANGO_DB_ENGINE": "mysql",
            "DJANGO_DB_NAME": "app",
            "DJANGO_DB_USER": "app",
            "DJANGO_DB_PASSWORD": "pw",
            "DJANGO_DB_HOST": "10.77.0.21",
        },
        APP_DIR,
    )["default"]
    assert db["ENGINE"] == "django.db.backends.mysql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "app",
        "app",
        "pw",
        "10.77.0.21",
        "3306",
    )
    assert db["OPTIONS"]["charset"] == "utf8mb4"
    assert "STRICT_TRANS_TABLES" in db["OPTIONS"]["init_command"]
    assert db["CONN_HEALTH_CHECKS"] is True and 0 < db["CONN_MAX_AGE"] <= 300


def test_mysql_needs_its_credentials():
    with pytest.raises(ImproperlyConfigured, match="DJANGO_DB_PASSWORD"):
        env.databases(
            {"DJANGO_DB_ENGINE": "mysql", "DJANGO_DB_NAME": "a", "DJANGO_DB_USER": "a"}, APP_DIR
        )


MYSQL = {
    "DJANGO_DB_ENGINE": "mysql",
    "DJANGO_DB_NAME": "app",
    "DJANGO_DB_USER": "app",
    "DJANGO_DB_PASSWORD": "pw",
    "DJANGO_DB_HOST": "10.77.0.21",
}


def test_mysql_tls_verifies_the_server_against_the_ca(tmp_path):
    ca = tmp_path / "db-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    options = env.databases({**MYSQL, "DJANGO_DB_SSL_CA": str(ca)}, APP_DIR)["default"]["OPTIONS"]
    assert options["ssl"] == {"ca": str(ca)}
    assert options["ssl_mode"] == "VERIFY_IDENTITY"
    assert options["charset"] == "utf8mb4"  # the other options stay
    # Unset or empty (what the installer renders without a CA): no TLS options at all.
    for environ in (MYSQL, {**MYSQL, "DJANGO_DB_SSL_CA": ""}):
        options = env.databases(environ, APP_DIR)["default"]["OPTIONS"]
        assert "ssl" not in options and "ssl_mode" not in options


def test_mysql_tls_ca_must_exist(tmp_path):
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(ImproperlyConfigured, match=f"DJANGO_DB_SSL_CA.*{re.escape(str(missing))}"):
        env.databases({**MYSQL, "DJANGO_DB_SSL_CA": str(missing)}, APP_DIR)


def test_mysql_client_library_takes_the_tls_options(tmp_path):
    """mysqlclient refuses ssl_mode with NotSupportedError on client libraries without it."""
    import MySQLdb

    ca = tmp_path / "db-ca.pem"
    ca.write_text("")
    options = env.databases({**MYSQL, "DJANGO_DB_SSL_CA": str(ca)}, APP_DIR)["default"]["OPTIONS"]
    with pytest.raises(MySQLdb.OperationalError) as error:
        # Nobody listens there: getting as far as connecting proves the options were accepted.
        MySQLdb.connect(
            host="127.0.0.1",
            port=free_port(),
            user="app",
            connect_timeout=2,
            ssl=options["ssl"],
            ssl_mode=options["ssl_mode"],
        )
    assert error.value.args[0] == 2002  # can't connect, not an option error


def test_mysql_tls_ca_missing_fails_at_start(tmp_path):
    proc = django_process(
        ["manage.py", "check"],
        **PRODUCTION,
        **MYSQL,
        DJANGO_DB_SSL_CA=str(tmp_path / "db-ca.pem"),
    )
    assert proc.returncode != 0
    assert "ImproperlyConfigured: DJANGO_DB_SSL_CA" in proc.stderr


def test_mysql_driver_is_installed():
    import MySQLdb  # noqa: F401 - mysqlclient built against libmysqlclient
    from django.db.backends.mysql import base  # noqa: F401


# Rate limits, client addresses, image size


def test_rate_limits_defaults():
    limits = env.rate_limits({})
    assert limits == env.RATE_LIMITS
    assert set(limits) == {"login", "signup", "guest", "post", "comment", "guestbook"}
    assert limits["guest"] == (5, 600)


def test_rate_limits_override_and_switch_off():
    limits = env.rate_limits({"DJANGO_RATE_LIMITS": " login=3/30 , Guest=0/600,"})
    assert limits["login"] == (3, 30)
    assert "guest" not in limits  # a count of 0 switches the scope off
    assert limits["post"] == (30, 60)  # the others keep their defaults
    assert env.rate_limits({"DJANGO_RATE_LIMITS": "off"}) == {}
    assert env.rate_limits({"DJANGO_RATE_LIMITS": "OFF"}) == {}


@pytest.mark.parametrize(
    "entry", ["login", "login=10", "login=ten/60", "login=10/0", "login=-1/60", "login=1/60/2"]
)
def test_rate_limits_bad_entry_is_named_with_the_format(entry):
    with pytest.raises(ImproperlyConfigured) as error:
        env.rate_limits({"DJANGO_RATE_LIMITS": f"guest=5/600,{entry}"})
    text = str(error.value)
    assert text.startswith(f"DJANGO_RATE_LIMITS: {entry!r} is not scope=count/seconds")
    assert "e.g. login=10/60" in text and "Scopes: login, signup, guest" in text


def test_rate_limits_unknown_scope():
    with pytest.raises(ImproperlyConfigured, match="'logon=1/60' names no rate-limited action"):
        env.rate_limits({"DJANGO_RATE_LIMITS": "logon=1/60"})


def test_trusted_proxies():
    assert env.trusted_proxies({}) == frozenset()
    proxies = env.trusted_proxies({"DJANGO_TRUSTED_PROXIES": "10.77.0.11, 2001:db8:0::1"})
    assert proxies == {"10.77.0.11", "2001:db8::1"}
    for bad in ("lb1.example", "10.77.0.0/24"):
        with pytest.raises(ImproperlyConfigured, match=f"DJANGO_TRUSTED_PROXIES: '{bad}' is not"):
            env.trusted_proxies({"DJANGO_TRUSTED_PROXIES": f"10.77.0.11,{bad}"})


def test_max_image_pixels():
    assert env.max_image_pixels({}) == 24_000_000
    assert env.max_image_pixels({"DJANGO_MAX_IMAGE_PIXELS": "1000000"}) == 1_000_000
    with pytest.raises(ImproperlyConfigured, match="DJANGO_MAX_IMAGE_PIXELS=0 would refuse"):
        env.max_image_pixels({"DJANGO_MAX_IMAGE_PIXELS": "0"})


def test_hardening_settings_from_env():
    values = settings_in_process(
        ["RATE_LIMITS", "TRUSTED_PROXIES", "MAX_IMAGE_PIXELS"],
        **PRODUCTION,
        DJANGO_RATE_LIMITS="off",
        DJANGO_TRUSTED_PROXIES="10.77.0.11",
        DJANGO_MAX_IMAGE_PIXELS="5000000",
    )
    assert values == {
        "RATE_LIMITS": {},
        "TRUSTED_PROXIES": str(frozenset({"10.77.0.11"})),
        "MAX_IMAGE_PIXELS": 5_000_000,
    }


def test_bad_rate_limits_fail_at_start():
    proc = django_process(["manage.py", "check"], **PRODUCTION, DJANGO_RATE_LIMITS="login=lots")
    assert proc.returncode != 0
    assert "DJANGO_RATE_LIMITS: 'login=lots' is not scope=count/seconds" in proc.stderr


def test_redis_cache_prefix_and_locmem_fallback():
    redis = env.caches({"DJANGO_REDIS_URL": "redis://app:pw@10.77.0.31:6379/0"})["default"]
    assert redis["BACKEND"] == "django_redis.cache.RedisCache"
    assert redis["LOCATION"] == "redis://app:pw@10.77.0.31:6379/0"
    assert redis["KEY_PREFIX"] == "app"
    local = env.caches({})["default"]
    assert local["BACKEND"].endswith("LocMemCache")


def test_sessions_cache_shows_redis_errors_and_both_purge_on_connect():
    from accounts.revocation import PurgingConnection, PurgingSSLConnection

    caches = env.caches({"DJANGO_REDIS_URL": "redis://app:pw@10.77.0.31:6379/0"})
    assert caches["default"]["OPTIONS"]["IGNORE_EXCEPTIONS"] is True
    assert caches["sessions"]["OPTIONS"]["IGNORE_EXCEPTIONS"] is False
    assert caches["sessions"]["KEY_PREFIX"] == "app"
    for alias in ("default", "sessions"):
        pool = caches[alias]["OPTIONS"]["CONNECTION_POOL_KWARGS"]
        assert pool == {"connection_class": PurgingConnection}
    tls = env.caches({"DJANGO_REDIS_URL": "rediss://app:pw@10.77.0.31:6380/0"})
    assert tls["sessions"]["OPTIONS"]["CONNECTION_POOL_KWARGS"]["connection_class"] is (
        PurgingSSLConnection
    )
    assert env.caches({})["sessions"]["BACKEND"].endswith("LocMemCache")


def test_s3_storage_options():
    stores = env.storages(
        {
            "DJANGO_STORAGE": "s3",
            "DJANGO_S3_ENDPOINT_URL": "http://10.77.0.41:8333",
            "DJANGO_S3_BUCKET": "app",
            "DJANGO_S3_ACCESS_KEY": "ak",
            "DJANGO_S3_SECRET_KEY": "sk",
        },
        APP_DIR,
    )
    media, static = stores["default"], stores["staticfiles"]
    assert media["BACKEND"] == "core.storage.MediaS3Storage"
    assert static["BACKEND"] == "core.storage.StaticS3Storage"
    options = media["OPTIONS"]
    assert options["endpoint_url"] == "http://10.77.0.41:8333"
    assert options["region_name"] == "us-east-1"
    assert options["addressing_style"] == "path"
    assert options["client_config"].s3 == {"addressing_style": "path"}
    assert options["client_config"].signature_version == "s3v4"


def gcs_storages(key_file: Path, **extra: str) -> dict:
    return env.storages(
        {
            "DJANGO_STORAGE": "gcs",
            "DJANGO_GCS_BUCKET": "media",
            "DJANGO_GCS_CREDENTIALS": str(key_file),
            **extra,
        },
        APP_DIR,
    )


def test_gcs_storage_options(gcs_key_file):
    key = json.loads(gcs_key_file.read_text())
    stores = gcs_storages(gcs_key_file, DJANGO_GCS_EMULATOR_URL="http://10.77.0.51:4443/")
    assert {name: store["BACKEND"] for name, store in stores.items()} == {
        "default": "core.storage.MediaGCSStorage",
        "staticfiles": "core.storage.StaticGCSStorage",
    }
    options = stores["staticfiles"]["OPTIONS"]
    assert (options["bucket_name"], options["project_id"], options["emulator_url"]) == (
        "media",
        key["project_id"],
        "http://10.77.0.51:4443",
    )
    assert options["credentials"].service_account_email == key["client_email"]
    # Without an emulator the client talks to Google with the key.
    assert gcs_storages(gcs_key_file)["default"]["OPTIONS"]["emulator_url"] == ""


def broken_key(key: dict) -> dict[str, object]:
    """Each way a key file can be wrong, as what to write into it."""
    authorized_user = {"type": "authorized_user", "client_id": "x", "refresh_token": "y"}
    pem = key["private_key"].splitlines()
    return {
        "not JSON": "client_email = app@example.com",
        "not UTF-8": b"\xff\xfe{}",
        "JSON but not an object": [key],
        "authorized_user": authorized_user,
        "external_account": {**key, "type": "external_account"},
        "no type": {k: v for k, v in key.items() if k != "type"},
        "missing fields": {k: v for k, v in key.items() if k not in ("client_email", "token_uri")},
        "empty field": {**key, "project_id": " "},
        "bad private key": {**key, "private_key": "\n".join(pem[:10] + pem[-1:])},
    }


@pytest.mark.parametrize(
    "case, message",
    [
        ("not JSON", r"not JSON \(Expecting value: line 1 column 1"),
        ("not UTF-8", "not JSON"),
        ("JSON but not an object", "JSON but not an object"),
        ("authorized_user", "'authorized_user', but it must be a service-account key"),
        ("external_account", "'external_account', but it must be a service-account key"),
        ("no type", '"type" is missing, but it must be a service-account key'),
        ("missing fields", "the key lacks client_email, token_uri "),
        ("empty field", "the key lacks project_id "),
        ("bad private key", "its private_key does not load \\(ValueError: "),
    ],
)
def test_gcs_key_file_errors_say_what_is_wrong(tmp_path, gcs_key_file, case, message):
    key = json.loads(gcs_key_file.read_text())
    content = broken_key(key)[case]
    path = tmp_path / "key.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ImproperlyConfigured, match=message) as error:
        gcs_storages(path)
    text = str(error.value)
    assert text.startswith(f"DJANGO_GCS_CREDENTIALS={str(path)!r}: ")
    assert "service account" in text  # how to fix it
    # Not a line of the private key, even when it is the part that is wrong.
    assert not any(line in text for line in key["private_key"].splitlines()[1:-1])


@pytest.mark.parametrize(
    "path, message",
    [("missing.json", "no such file"), (".", "cannot read the file \\(Is a directory\\)")],
)
def test_gcs_key_file_must_be_a_readable_file(tmp_path, path, message):
    with pytest.raises(ImproperlyConfigured, match=f"DJANGO_GCS_CREDENTIALS=.*: {message}"):
        gcs_storages(tmp_path / path)


@pytest.mark.parametrize("url", ["10.77.0.51:4443", "ftp://10.77.0.51", "http://", "http:///b"])
def test_gcs_emulator_url_must_be_http_with_a_host(gcs_key_file, url):
    expected = f"DJANGO_GCS_EMULATOR_URL='{url}' is not an http:// or https:// URL with a host"
    with pytest.raises(ImproperlyConfigured, match=re.escape(expected)):
        gcs_storages(gcs_key_file, DJANGO_GCS_EMULATOR_URL=url)


# Whole settings, loaded the way gunicorn loads them


def test_missing_secret_key_fails_at_start_with_clear_message():
    proc = django_process(["manage.py", "check"])
    assert proc.returncode != 0
    assert "DJANGO_SECRET_KEY is required but is not set" in proc.stderr


def test_bad_gcs_key_fails_at_start(tmp_path):
    key = tmp_path / "key.json"
    key.write_text('{"type": "authorized_user"}')
    proc = django_process(
        ["manage.py", "check"],
        **PRODUCTION,
        DJANGO_STORAGE="gcs",
        DJANGO_GCS_BUCKET="media",
        DJANGO_GCS_CREDENTIALS=str(key),
        DJANGO_GCS_EMULATOR_URL="http://127.0.0.1:4443",
    )
    assert proc.returncode != 0
    assert "ImproperlyConfigured" in proc.stderr
    assert "it must be a service-account key" in proc.stderr


def test_check_deploy_is_clean_with_production_settings():
    proc = django_process(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    # The one silenced check is W004 (no HSTS from the app): the balancer sends it.
    assert "System check identified no issues (1 silenced)." in proc.stdout


def test_check_deploy_silences_nothing_when_the_app_sends_hsts():
    proc = django_process(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        **PRODUCTION,
        DJANGO_HSTS_SECONDS="31536000",
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "System check identified no issues (0 silenced)." in proc.stdout


def test_hsts_is_off_unless_configured():
    names = [
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SILENCED_SYSTEM_CHECKS",
    ]
    assert settings_in_process(names, **PRODUCTION) == {
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
        "SILENCED_SYSTEM_CHECKS": ["security.W004"],
    }
    assert settings_in_process(names, **PRODUCTION, DJANGO_HSTS_SECONDS="600") == {
        "SECURE_HSTS_SECONDS": 600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SILENCED_SYSTEM_CHECKS": [],
    }


def test_https_defaults_on():
    values = settings_in_process(
        [
            "DEBUG",
            "SECURE_SSL_REDIRECT",
            "SESSION_COOKIE_SECURE",
            "CSRF_COOKIE_SECURE",
            "SECURE_HSTS_SECONDS",
            "SECURE_PROXY_SSL_HEADER",
            "USE_X_FORWARDED_HOST",
            "SESSION_ENGINE",
            "ALLOWED_HOSTS",
            "CSRF_TRUSTED_ORIGINS",
        ],
        **PRODUCTION,
    )
    assert values["DEBUG"] is False
    assert values["SECURE_SSL_REDIRECT"] and values["SESSION_COOKIE_SECURE"]
    assert values["CSRF_COOKIE_SECURE"] and values["SECURE_HSTS_SECONDS"] == 0
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["USE_X_FORWARDED_HOST"] is False
    assert values["SESSION_ENGINE"] == "accounts.sessions"
    assert values["ALLOWED_HOSTS"] == ["photos.example.com"]
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://photos.example.com"]


def test_lab_turns_https_off():
    values = settings_in_process(
        ["SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "SECURE_HSTS_SECONDS"],
        **PRODUCTION,
        DJANGO_HTTPS="false",
    )
    assert values == {
        "SECURE_SSL_REDIRECT": False,
        "SESSION_COOKIE_SECURE": False,
        "SECURE_HSTS_SECONDS": 0,
    }


def test_upload_limit_and_urls_from_env():
    values = settings_in_process(
        ["MAX_UPLOAD_BYTES", "MEDIA_URL", "STATIC_URL", "LOGGING"],
        **PRODUCTION,
        DJANGO_MAX_UPLOAD_MB="3",
        DJANGO_MEDIA_URL="/m",
        DJANGO_STATIC_URL="/s/",
        DJANGO_LOG_LEVEL="warning",
    )
    assert values["MAX_UPLOAD_BYTES"] == 3 * 1024 * 1024
    assert (values["MEDIA_URL"], values["STATIC_URL"]) == ("/m/", "/s/")
    assert values["LOGGING"]["root"]["level"] == "WARNING"
