from __future__ import annotations

import io
import os
from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from config import env
from tests.servers import RedisServer, SeaweedServer

BUCKET = "app-test"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory) -> Iterator[SeaweedServer]:
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed")).start()
    server.make_bucket(BUCKET)
    yield server
    server.stop()


def s3_env(server: SeaweedServer, bucket: str = BUCKET) -> dict[str, str]:
    return {
        "DJANGO_STORAGE": "s3",
        "DJANGO_S3_ENDPOINT_URL": server.endpoint,
        "DJANGO_S3_BUCKET": bucket,
        "DJANGO_S3_ACCESS_KEY": server.access_key,
        "DJANGO_S3_SECRET_KEY": server.secret_key,
    }


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
