"""Media and static files in a real bucket, with URLs that point at the balancer.

The tests taking `store` run twice: on SeaweedFS (S3) and on fake-gcs-server (GCS).
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.test import Client
from django.urls import reverse

from feed.models import Post
from tests.conftest import BUCKET, collectstatic, image_bytes, upload


@pytest.mark.django_db
def test_posted_image_lands_in_bucket_under_media(store, alice_client):
    response = alice_client.post(reverse("feed:create"), {"caption": "x", "image": upload()})
    assert response.status_code == 302
    post = Post.objects.get()
    key = f"media/{post.image.name}"
    assert key in store.server.object_names(BUCKET, "media/posts/")
    # The URL is relative to the balancer, unsigned, and names the key below media/.
    assert post.image.url == f"/media/{post.image.name}"
    assert post.image.url in alice_client.get("/").content.decode()
    # What Apache does for /media/...: an anonymous GET of <store>/<bucket>/media/<name>.
    with urllib.request.urlopen(store.server.public_url(BUCKET, key), timeout=10) as got:
        assert got.read() == image_bytes()
        assert got.headers["Content-Type"] == "image/png"
        assert got.headers["Cache-Control"] == "public, max-age=31536000, immutable"


@pytest.mark.django_db
def test_deleting_post_removes_object(store, alice_client, django_capture_on_commit_callbacks):
    alice_client.post(reverse("feed:create"), {"image": upload()})
    post = Post.objects.get()
    key = f"media/{post.image.name}"
    assert key in store.server.object_names(BUCKET, "media/posts/")
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(reverse("feed:delete", args=[post.pk]))
    assert key not in store.server.object_names(BUCKET, "media/posts/")


def test_anonymous_writes_are_refused(s3_storage):
    request = urllib.request.Request(
        f"{s3_storage.endpoint}/{BUCKET}/media/intruder.txt", data=b"x", method="PUT"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403


def test_media_names_never_overwrite(store):
    storage = storages["default"]
    first = storage.save("posts/same.txt", ContentFile(b"one"))
    second = storage.save("posts/same.txt", ContentFile(b"two"))
    assert first != second
    assert storage.open(first).read() == b"one"
    storage.delete(first)
    storage.delete(second)


def test_urls_respect_configured_prefixes(store, settings):
    settings.MEDIA_URL = "/files/"
    settings.STATIC_URL = "/assets/"
    assert storages["default"].url("posts/a b.png") == "/files/posts/a%20b.png"
    assert storages["staticfiles"].url("core/app.css") == "/assets/core/app.css"


def test_collectstatic_uploads_then_skips_unchanged(store, settings):
    bucket = store.server.make_bucket("static-test")
    store.use(settings, bucket)
    first = collectstatic()
    assert first["copied"] > 1 and first["unmodified"] == 0
    with urllib.request.urlopen(store.server.public_url(bucket, "static/core/app.css")) as css:
        assert b"Snapshots" in css.read()
        assert css.headers["Content-Type"] == "text/css"
    assert "static/admin/css/base.css" in store.server.object_names(bucket, "static/admin/")

    # Unchanged files are skipped: the store reports when each object was last written.
    second = collectstatic()
    assert second == {"copied": 0, "unmodified": first["copied"]}


@pytest.mark.django_db
def test_static_tag_uses_balancer_url(s3_storage, settings):
    from django.templatetags.static import static

    # Before collectstatic has written this release's manifest: the unhashed name.
    assert static("core/app.css") == "/static/core/app.css"
    assert 'href="/static/core/app.css"' in Client().get("/accounts/login/").content.decode()


def fetch(store, bucket: str, url: str) -> bytes:
    """What the balancer serves for a /static/ URL: the bucket's object, anonymously."""
    public = store.server.public_url(bucket, url.lstrip("/"))
    with urllib.request.urlopen(public, timeout=10) as got:
        assert got.status == 200
        return got.read()


@pytest.mark.django_db
def test_two_releases_serve_their_own_hashed_static_files_side_by_side(store, settings, tmp_path):
    """A rolling deploy: release b's collectstatic adds its files beside release a's."""
    from django.templatetags.static import static

    bucket = store.server.make_bucket("static-releases")
    settings.RELEASE = "release-a"
    store.use(settings, bucket)
    collectstatic()
    old = static("core/app.css")
    assert re.fullmatch(r"/static/core/app\.[0-9a-f]{12}\.css", old), old
    assert f'href="{old}"' in Client().get("/accounts/login/").content.decode()

    changed = tmp_path / "core"
    changed.mkdir()
    (changed / "app.css").write_text("body { color: rebeccapurple; }\n")
    settings.STATICFILES_DIRS = [str(tmp_path)]  # found before the app's own core/app.css
    settings.RELEASE = "release-b"
    store.use(settings, bucket)
    collectstatic()
    new = static("core/app.css")
    assert new != old and re.fullmatch(r"/static/core/app\.[0-9a-f]{12}\.css", new), new
    assert fetch(store, bucket, new) == b"body { color: rebeccapurple; }\n"
    assert b"Snapshots" in fetch(store, bucket, old), "release a's pages still find their file"
    manifests = store.server.object_names(bucket, "static/staticfiles-")
    assert manifests == {"static/staticfiles-release-a.json", "static/staticfiles-release-b.json"}

    # Release b again (a re-run of the deploy): nothing copied, nothing rewritten.
    before = store.server.object_names(bucket, "static/core/")
    assert collectstatic()["copied"] == 0
    assert store.server.object_names(bucket, "static/core/") == before
    assert static("core/app.css") == new
