"""Media and static files in a real SeaweedFS bucket, with URLs that point at the balancer."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from config import env
from core.storage import MediaGCSStorage, StaticGCSStorage
from feed.models import Post
from tests.conftest import BUCKET, image_bytes, upload


def object_keys(seaweed, prefix: str, bucket: str = BUCKET) -> set[str]:
    client = seaweed.client()
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


@pytest.mark.django_db
def test_posted_image_lands_in_bucket_under_media(s3_storage, alice_client):
    response = alice_client.post(reverse("feed:create"), {"caption": "s3", "image": upload()})
    assert response.status_code == 302
    post = Post.objects.get()
    key = f"media/{post.image.name}"
    assert key in object_keys(s3_storage, "media/posts/")
    # The URL is relative to the balancer, unsigned, and names the key below media/.
    assert post.image.url == f"/media/{post.image.name}"
    assert post.image.url in alice_client.get("/").content.decode()
    # What Apache does for /media/...: an anonymous GET of <store>/<bucket>/media/<name>.
    with urllib.request.urlopen(f"{s3_storage.endpoint}/{BUCKET}/{key}", timeout=10) as got:
        assert got.read() == image_bytes()
        assert got.headers["Content-Type"] == "image/png"
        assert got.headers["Cache-Control"] == "public, max-age=31536000, immutable"


@pytest.mark.django_db
def test_deleting_post_removes_object(s3_storage, alice_client, django_capture_on_commit_callbacks):
    alice_client.post(reverse("feed:create"), {"image": upload()})
    post = Post.objects.get()
    key = f"media/{post.image.name}"
    assert key in object_keys(s3_storage, "media/posts/")
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(reverse("feed:delete", args=[post.pk]))
    assert key not in object_keys(s3_storage, "media/posts/")


def test_anonymous_writes_are_refused(s3_storage):
    request = urllib.request.Request(
        f"{s3_storage.endpoint}/{BUCKET}/media/intruder.txt", data=b"x", method="PUT"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403


def test_media_names_never_overwrite(s3_storage):
    storage = storages["default"]
    first = storage.save("posts/same.txt", ContentFile(b"one"))
    second = storage.save("posts/same.txt", ContentFile(b"two"))
    assert first != second
    assert storage.open(first).read() == b"one"
    storage.delete(first)
    storage.delete(second)


def test_urls_respect_configured_prefixes(s3_storage, settings):
    settings.MEDIA_URL = "/files/"
    settings.STATIC_URL = "/assets/"
    assert storages["default"].url("posts/a b.png") == "/files/posts/a%20b.png"
    assert storages["staticfiles"].url("core/app.css") == "/assets/core/app.css"


def test_gcs_urls_point_at_balancer_without_network():
    media = MediaGCSStorage(bucket_name="bucket")
    static = StaticGCSStorage(bucket_name="bucket")
    assert media.url("posts/x.jpg") == "/media/posts/x.jpg"
    assert static.url("core/app.css") == "/static/core/app.css"
    assert (media.location, static.location) == ("media", "static")


def test_collectstatic_uploads_then_skips_unchanged(settings, seaweed, tmp_path):
    bucket = seaweed.make_bucket("static-test")
    settings.STORAGES = env.storages(
        {
            "DJANGO_STORAGE": "s3",
            "DJANGO_S3_ENDPOINT_URL": seaweed.endpoint,
            "DJANGO_S3_BUCKET": bucket,
            "DJANGO_S3_ACCESS_KEY": seaweed.access_key,
            "DJANGO_S3_SECRET_KEY": seaweed.secret_key,
        },
        django_settings.BASE_DIR,
    )
    first = collectstatic()
    assert first["copied"] > 1 and first["unmodified"] == 0
    css = seaweed.client().get_object(Bucket=bucket, Key="static/core/app.css")
    assert b"Snapshots" in css["Body"].read()
    assert css["ContentType"] == "text/css"
    assert "static/admin/css/base.css" in object_keys(seaweed, "static/admin/", bucket)

    second = collectstatic()
    assert second == {"copied": 0, "unmodified": first["copied"]}


def collectstatic() -> dict[str, int]:
    out = StringIO()
    call_command("collectstatic", "--noinput", stdout=out)
    text = out.getvalue()
    copied = re.search(r"(\d+) static files? copied", text)
    unmodified = re.search(r"(\d+) unmodified", text)
    assert copied, text
    return {
        "copied": int(copied.group(1)),
        "unmodified": int(unmodified.group(1)) if unmodified else 0,
    }


@pytest.mark.django_db
def test_static_tag_uses_balancer_url(s3_storage, settings):
    from django.templatetags.static import static

    assert static("core/app.css") == "/static/core/app.css"
    assert 'href="/static/core/app.css"' in Client().get("/accounts/login/").content.decode()
