"""What only Google Cloud Storage needs, against a real GCS API (fake-gcs-server).

Uploads, deletes, names, URLs and collectstatic run on GCS in test_storage.py (`store`).
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.management import CommandError, call_command
from django.test import Client

from config import env
from tests.conftest import gcs_env
from tests.servers import LOOPBACK, free_port


@pytest.mark.django_db
def test_readyz_all_ok_against_the_emulator(redis_cache, gcs_storage):
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "cache": "ok", "storage": "ok"}


@pytest.fixture
def missing_bucket(settings, gcs_server, gcs_key_file) -> str:
    settings.STORAGES = env.storages(
        gcs_env(gcs_server, gcs_key_file, "no-such-bucket"), django_settings.BASE_DIR
    )
    return (
        f"error: RuntimeError: GCS bucket 'no-such-bucket' does not exist at {gcs_server.url}: "
        "create it (docs/production.md) or set the right bucket"
    )


@pytest.mark.django_db
def test_readyz_names_a_missing_bucket(missing_bucket):
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["storage"] == missing_bucket


def test_check_ready_names_a_missing_bucket(missing_bucket):
    out = StringIO()
    with pytest.raises(CommandError, match="Not ready: storage"):
        call_command("check_ready", "storage", stdout=out)
    assert out.getvalue() == f"storage: {missing_bucket}\n"


@pytest.mark.django_db
def test_readyz_names_a_down_emulator_within_seconds(settings, gcs_key_file, gcs_server):
    settings.STORAGES = env.storages(
        {
            **gcs_env(gcs_server, gcs_key_file),
            "DJANGO_GCS_EMULATOR_URL": f"http://{LOOPBACK}:{free_port()}",
        },
        django_settings.BASE_DIR,
    )
    started = time.monotonic()
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["storage"].startswith("error: ConnectionError")
    # The client library would retry for two minutes; a probe must not hang a worker.
    assert time.monotonic() - started < 10


@pytest.fixture
def recording_proxy(gcs_server) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A pass-through to the emulator that keeps the headers of every request it forwards."""
    seen: list[dict[str, str]] = []

    class Forward(BaseHTTPRequestHandler):
        def forward(self) -> None:
            seen.append({name.lower(): value for name, value in self.headers.items()})
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            upstream = http.client.HTTPConnection(LOOPBACK, gcs_server.port, timeout=10)
            upstream.request(self.command, self.path, body, dict(self.headers))
            reply = upstream.getresponse()
            data = reply.read()
            self.send_response(reply.status)
            for name, value in reply.getheaders():
                if name.lower() not in ("connection", "content-length", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            upstream.close()

        do_GET = do_POST = do_PUT = do_DELETE = forward

        def log_message(self, *args) -> None:
            pass

    proxy = ThreadingHTTPServer((LOOPBACK, 0), Forward)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield f"http://{LOOPBACK}:{proxy.server_address[1]}", seen
    proxy.shutdown()
    proxy.server_close()


def test_storage_sends_no_token_and_needs_no_storage_emulator_host(
    settings, gcs_server, gcs_key_file, recording_proxy
):
    # The client library would also obey STORAGE_EMULATOR_HOST; the app must not need it.
    assert "STORAGE_EMULATOR_HOST" not in os.environ
    url, seen = recording_proxy
    settings.STORAGES = env.storages(
        {**gcs_env(gcs_server, gcs_key_file), "DJANGO_GCS_EMULATOR_URL": url},
        django_settings.BASE_DIR,
    )
    storage = storages["default"]
    name = storage.save("posts/token.txt", ContentFile(b"no token"))
    assert storage.open(name).read() == b"no token"
    storage.delete(name)
    assert len(seen) >= 4  # exists, upload, open, delete all went through the proxy
    assert not [headers for headers in seen if "authorization" in headers]
