from __future__ import annotations

import io
import json
import os
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from PIL import Image

from config import env
from tests.servers import LOOPBACK, FakeGCSServer, RedisServer, SeaweedServer, free_port

BUCKET = "app-test"
ObjectServer = SeaweedServer | FakeGCSServer


@pytest.fixture(scope="session", autouse=True)
def loopback_only() -> Iterator[None]:
    """The suite talks to 127.0.0.1 only: looking up any other name (Google's) fails the test."""
    lookup = socket.getaddrinfo

    def loopback_lookup(host, *args, **kwargs):
        if host not in (LOOPBACK, "localhost", None):
            raise OSError(f"the tests may only connect to {LOOPBACK}, not to {host!r}")
        return lookup(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", loopback_lookup)
        yield


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def serving(server: ObjectServer) -> Iterator[ObjectServer]:
    """Start an object store with the test bucket, hand it out, stop it by its PID."""
    server.start()
    server.make_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory) -> Iterator[SeaweedServer]:
    yield from serving(SeaweedServer(tmp_path_factory.mktemp("seaweed")))


def s3_env(server: SeaweedServer, bucket: str = BUCKET) -> dict[str, str]:
    return {
        "DJANGO_STORAGE": "s3",
        "DJANGO_S3_ENDPOINT_URL": server.endpoint,
        "DJANGO_S3_BUCKET": bucket,
        "DJANGO_S3_ACCESS_KEY": server.access_key,
        "DJANGO_S3_SECRET_KEY": server.secret_key,
    }


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory) -> Iterator[FakeGCSServer]:
    yield from serving(FakeGCSServer(tmp_path_factory.mktemp("fake-gcs")))


def service_account_key() -> dict[str, str]:
    """A service-account key shaped like the JSON Google hands out, with a fresh RSA key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    email = "snapshots-app@snapshots-lab.iam.gserviceaccount.com"
    return {
        "type": "service_account",
        "project_id": "snapshots-lab",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem.decode(),
        "client_email": email,
        "client_id": "123456789012345678901",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        # A port nobody listens on, not oauth2.googleapis.com: if the app ever asked for a
        # token, the test would fail (after the client's retries) instead of talking to Google.
        "token_uri": f"http://{LOOPBACK}:{free_port()}/token",
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email}",
        "universe_domain": "googleapis.com",
    }


@pytest.fixture(scope="session")
def gcs_key_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gcs-key") / "service-account.json"
    path.write_text(json.dumps(service_account_key(), indent=2))
    return path


def gcs_env(server: FakeGCSServer, key_file: Path, bucket: str = BUCKET) -> dict[str, str]:
    return {
        "DJANGO_STORAGE": "gcs",
        "DJANGO_GCS_BUCKET": bucket,
        "DJANGO_GCS_CREDENTIALS": str(key_file),
        "DJANGO_GCS_EMULATOR_URL": server.url,
    }


@pytest.fixture(autouse=True)
def fresh_caches() -> None:
    """Each test starts with empty local caches (rate-limit counters), as on a fresh server."""
    for cache in caches.all(initialized_only=True):
        cache.clear()


@pytest.fixture(autouse=True)
def media_tmp(settings, tmp_path):
    """Each test gets its own media directory on the filesystem backend."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": settings.MEDIA_ROOT},
        },
    }
    return tmp_path / "media"


@pytest.fixture
def redis_cache(settings, redis_server) -> Iterator[RedisServer]:
    """The production cache configuration, talking to the real Redis as ACL user app."""
    settings.CACHES = env.caches({"DJANGO_REDIS_URL": redis_server.app_url})
    yield redis_server
    redis_server.admin().flushall()


@pytest.fixture
def s3_storage(settings, seaweed) -> SeaweedServer:
    """The production storage configuration against the real SeaweedFS."""
    settings.STORAGES = env.storages(s3_env(seaweed), django_settings.BASE_DIR)
    return seaweed


@pytest.fixture
def gcs_storage(settings, gcs_server, gcs_key_file) -> FakeGCSServer:
    """The production storage configuration against the real fake-gcs-server."""
    settings.STORAGES = env.storages(gcs_env(gcs_server, gcs_key_file), django_settings.BASE_DIR)
    return gcs_server


@dataclass
class Store:
    """A real object store, and the app's environment for one of its buckets."""

    server: ObjectServer
    environ: Callable[[str], dict[str, str]]

    def use(self, settings, bucket: str = BUCKET) -> None:
        settings.STORAGES = env.storages(self.environ(bucket), django_settings.BASE_DIR)


@pytest.fixture(params=["s3", "gcs"])
def store(request, settings) -> Store:
    """The production storage configuration, on SeaweedFS (S3) and on fake-gcs-server (GCS)."""
    if request.param == "s3":
        server = request.getfixturevalue("seaweed")
        store = Store(server, partial(s3_env, server))
    else:
        server = request.getfixturevalue("gcs_server")
        store = Store(server, partial(gcs_env, server, request.getfixturevalue("gcs_key_file")))
    store.use(settings)
    return store


def collectstatic() -> dict[str, int]:
    out = io.StringIO()
    call_command("collectstatic", "--noinput", stdout=out)
    text = out.getvalue()
    copied = re.search(r"(\d+) static files? copied", text)
    unmodified = re.search(r"(\d+) unmodified", text)
    assert copied, text
    return {
        "copied": int(copied.group(1)),
        "unmodified": int(unmodified.group(1)) if unmodified else 0,
    }


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (40, 30), color="teal") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def noisy_png(size: tuple[int, int]) -> bytes:
    """A PNG that does not compress: its size grows with its pixel count."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(name: str = "photo.png", data: bytes | None = None, content_type: str = "image/png"):
    return SimpleUploadedFile(name, image_bytes() if data is None else data, content_type)


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", "pw-bob-123")


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(bob) -> Client:
    client = Client()
    client.force_login(bob)
    return client
