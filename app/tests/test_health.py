from __future__ import annotations

import json
import socket
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.test import Client

from config import env
from tests.conftest import s3_env
from tests.servers import env_without_django, free_port

HOSTNAME = socket.gethostname()
PROBE_HOST = "10.77.0.11:8000"  # what mod_proxy_hcheck sends: a member's IP, not a site name


def test_healthz_is_tiny_and_ok():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert response["X-Served-By"] == HOSTNAME
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_any_host_over_plain_http_with_https_on(settings, path):
    settings.SECURE_SSL_REDIRECT = True
    client = Client(HTTP_HOST=PROBE_HOST)
    assert client.get(path).status_code == 200
    # The same Host on an ordinary page is refused, and the scheme redirected: the probes
    # are the exception, not a hole in host validation.
    assert client.get("/").status_code == 400
    assert Client().get("/").status_code == 301


def test_healthz_touches_no_dependency(settings, seaweed):
    # Cache and store pointed at ports nobody listens on, no database access allowed
    # (no django_db mark): /healthz must not care.
    settings.CACHES = env.caches({"DJANGO_REDIS_URL": f"redis://app:x@127.0.0.1:{free_port()}/0"})
    settings.STORAGES = env.storages(
        {**s3_env(seaweed), "DJANGO_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"},
        django_settings.BASE_DIR,
    )
    response = Client().get("/healthz")
    assert response.status_code == 200


@pytest.mark.django_db
def test_readyz_all_ok_against_real_servers(redis_cache, s3_storage):
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "storage": "ok"},
        # No replica in the tests' settings: reads go to the writer (SQLite has no server id).
        "database_reads": {"alias": "default", "server_id": ""},
    }
    # The probe key lives under the app: prefix the Redis ACL allows.
    assert redis_cache.admin().get(f"app:1:readyz:{HOSTNAME}") == b"1"


@pytest.mark.django_db
def test_readyz_names_a_down_cache(settings, s3_storage):
    settings.CACHES = env.caches({"DJANGO_REDIS_URL": f"redis://app:x@127.0.0.1:{free_port()}/0"})
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["storage"] == "ok"
    assert body["checks"]["cache"].startswith("error: ConnectionError")


@pytest.mark.django_db
def test_readyz_names_a_cache_refusing_the_app_user(settings, redis_server, s3_storage):
    settings.CACHES = env.caches(
        {"DJANGO_REDIS_URL": f"redis://app:wrong-password@127.0.0.1:{redis_server.port}/0"}
    )
    body = Client().get("/readyz").json()
    assert body["checks"]["cache"].startswith("error:")
    assert body["checks"]["storage"] == "ok"


@pytest.mark.django_db
def test_readyz_names_a_down_store(settings, seaweed, redis_cache):
    settings.STORAGES = env.storages(
        {**s3_env(seaweed), "DJANGO_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"},
        django_settings.BASE_DIR,
    )
    response = Client().get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["storage"].startswith("error: EndpointConnectionError")
    assert checks["cache"] == "ok" and checks["database"] == "ok"


@pytest.mark.django_db
def test_readyz_names_a_missing_bucket(settings, seaweed, redis_cache):
    settings.STORAGES = env.storages(
        s3_env(seaweed, bucket="no-such-bucket"), django_settings.BASE_DIR
    )
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["storage"].startswith("error: ClientError")


def with_down_database(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    """Python in a separate process whose database cannot be opened.

    The database connection is fixed at start, as on a real server.
    """
    return subprocess.run(
        [sys.executable, *args],
        cwd=django_settings.BASE_DIR,
        env=env_without_django(
            DJANGO_SETTINGS_MODULE="config.settings",
            DJANGO_SECRET_KEY="x" * 50,
            DJANGO_ALLOWED_HOSTS="testserver",
            DJANGO_HTTPS="false",
            DJANGO_DB_NAME=str(tmp_path / "missing-dir" / "db.sqlite3"),
            DJANGO_MEDIA_ROOT=str(tmp_path),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_readyz_names_a_down_database(tmp_path):
    script = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/readyz');"
        "print(json.dumps({'code': r.status_code, 'body': r.json()}))"
    )
    proc = with_down_database(["-c", script], tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 503
    assert result["body"]["checks"]["database"].startswith("error: OperationalError")
    assert result["body"]["checks"]["cache"] == "ok"
    assert result["body"]["checks"]["storage"] == "ok"


def test_check_ready_exits_1_and_names_what_failed(tmp_path):
    # The installer runs it before migrate: a non-zero status stops the deploy.
    proc = with_down_database(["manage.py", "check_ready"], tmp_path)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("database: error: OperationalError")
    assert lines[1:] == ["cache: ok", "storage: ok"]
    assert "CommandError: Not ready: database." in proc.stderr


@pytest.mark.django_db
def test_check_ready_prints_one_line_per_check():
    out = StringIO()
    call_command("check_ready", stdout=out)
    assert out.getvalue() == "database: ok\ncache: ok\nstorage: ok\n"


def test_check_ready_runs_only_the_named_checks():
    # No django_db mark: a database check here would fail the test.
    out = StringIO()
    call_command("check_ready", "storage", "cache", stdout=out)
    assert out.getvalue() == "storage: ok\ncache: ok\n"


def test_check_ready_refuses_unknown_names():
    with pytest.raises(
        CommandError, match="Unknown check disk: use any of database, cache, storage"
    ):
        call_command("check_ready", "storage", "disk")


@pytest.mark.django_db
def test_every_page_says_who_served_it(alice_client):
    for path in ("/", "/guestbook/", "/no-such-page/", "/accounts/login/"):
        response = alice_client.get(path)
        assert response["X-Served-By"] == HOSTNAME
    page = alice_client.get("/").content.decode()
    assert f'<code class="served-by">{HOSTNAME}</code>' in page


@pytest.mark.django_db
def test_every_answer_names_the_release_it_came_from(settings, alice_client):
    settings.RELEASE = "0123456789abcdef"
    for path in ("/", "/healthz", "/no-such-page/"):
        assert alice_client.get(path)["X-App-Release"] == "0123456789abcdef"
    page = alice_client.get("/").content.decode()
    assert '<code class="release">0123456789abcdef</code>' in page


def test_the_release_comes_from_the_release_file(tmp_path):
    from config import release

    assert release.read(tmp_path) == "dev", "a checkout without RELEASE is dev"
    (tmp_path / "RELEASE").write_text("0123456789abcdef\n")
    assert release.read(tmp_path) == "0123456789abcdef"


@pytest.mark.django_db
def test_413_also_says_who_served_it(settings, alice_client):
    settings.MAX_REQUEST_BYTES = 10
    response = alice_client.post("/posts/new/", {"caption": "x" * 100})
    assert response.status_code == 413
    assert response["X-Served-By"] == HOSTNAME
