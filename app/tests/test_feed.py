from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import IntegrityError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from feed.forms import PostForm
from feed.models import Comment, Like, Post
from tests.conftest import image_bytes, noisy_png, upload
from tests.servers import env_without_django

pytestmark = pytest.mark.django_db


def make_post(user, caption="hello", image_file=None, **kwargs) -> Post:
    form = PostForm({"caption": caption}, {"image": image_file or upload()})
    assert form.is_valid(), form.errors
    post = form.save(commit=False)
    post.author = user
    for key, value in kwargs.items():
        setattr(post, key, value)
    post.save()
    return post


# Forms: every kind of bad image is a form error, not a crash.


def test_form_accepts_png_and_names_file_by_its_format(alice):
    form = PostForm({"caption": "x"}, {"image": upload("holiday.exe", image_bytes("PNG"))})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["image"].name == "upload.png"


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "WEBP"])
def test_form_accepts_common_formats(fmt):
    form = PostForm({}, {"image": upload(f"a.{fmt.lower()}", image_bytes(fmt))})
    assert form.is_valid(), form.errors


def test_form_rejects_non_image():
    form = PostForm({}, {"image": upload("notes.png", b"just some text, not a picture")})
    assert not form.is_valid()
    assert "not an image we can read" in str(form.errors["image"])


def test_form_rejects_corrupt_image():
    data = image_bytes("PNG", (200, 200))
    corrupt = data[:40] + b"\x00" * 50 + data[90:]
    form = PostForm({}, {"image": upload("broken.png", corrupt)})
    assert not form.is_valid()
    assert "corrupt" in str(form.errors["image"])


def test_form_rejects_truncated_image():
    data = image_bytes("JPEG", (300, 300))
    form = PostForm({}, {"image": upload("half.jpg", data[: len(data) // 3], "image/jpeg")})
    assert not form.is_valid()


def test_form_rejects_unlisted_format():
    form = PostForm({}, {"image": upload("scan.tiff", image_bytes("TIFF"), "image/tiff")})
    assert not form.is_valid()
    assert "TIFF images are not accepted" in str(form.errors["image"])


def test_form_rejects_oversized_file(settings):
    settings.MAX_UPLOAD_BYTES = 1000
    form = PostForm({}, {"image": upload("big.png", noisy_png((100, 100)))})
    assert not form.is_valid()
    assert "the largest upload allowed is" in str(form.errors["image"])


def test_form_rejects_too_many_pixels():
    buffer = io.BytesIO()
    Image.new("1", (7000, 7000)).save(buffer, format="PNG")  # 49 MP in a few kB
    form = PostForm({}, {"image": upload("huge.png", buffer.getvalue())})
    assert not form.is_valid()
    assert "at most 24 megapixels are accepted" in str(form.errors["image"])


def png_declaring(width: int, height: int) -> bytes:
    """A valid little PNG whose header declares any size: what a decompression bomb looks like."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    pixels = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture
def decoded_sizes(monkeypatch) -> list[tuple[int, int]]:
    """The size of every image whose pixels Pillow decodes (allocates) during the test."""
    from PIL import ImageFile

    sizes: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def spy(self):
        sizes.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return sizes


def test_decompression_bomb_is_a_form_error_without_decoding(alice_client, decoded_sizes):
    bomb = png_declaring(40_000, 40_000)
    assert len(bomb) < 100
    response = alice_client.post(reverse("feed:create"), {"image": upload("bomb.png", bomb)})
    assert response.status_code == 400
    assert "at most 24 megapixels are accepted" in response.content.decode()
    assert decoded_sizes == []
    assert not Post.objects.exists()


def test_image_just_over_the_pixel_limit_is_refused_before_decoding(decoded_sizes):
    # 25 MP: over our limit but under twice it, where Pillow itself would only warn.
    buffer = io.BytesIO()
    Image.new("1", (5000, 5000)).save(buffer, format="PNG")
    form = PostForm({}, {"image": upload("big.png", buffer.getvalue())})
    assert not form.is_valid()
    assert "at most 24 megapixels are accepted" in str(form.errors["image"])
    assert decoded_sizes == []


def test_pixel_limit_from_settings(settings):
    settings.MAX_IMAGE_PIXELS = 40 * 30
    assert PostForm({}, {"image": upload("a.png", image_bytes("PNG", (40, 30)))}).is_valid()
    form = PostForm({}, {"image": upload("b.png", image_bytes("PNG", (41, 30)))})
    assert not form.is_valid()
    assert "The image is 41×30 pixels; at most 0.0012 megapixels" in str(form.errors["image"])


def test_pillow_guard_is_set_to_the_limit_in_the_app_process(tmp_path):
    """Outside the tests' warning capture: Pillow's bomb warning is an error at our limit."""
    (tmp_path / "big.png").write_bytes(png_declaring(5000, 5000))
    script = (
        "import django, warnings; django.setup(); from PIL import Image;"
        "print(Image.MAX_IMAGE_PIXELS);"
        f"Image.open({str(tmp_path / 'big.png')!r})"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=django_settings.BASE_DIR,
        env=env_without_django(
            DJANGO_SETTINGS_MODULE="config.settings",
            DJANGO_SECRET_KEY="x" * 50,
            DJANGO_MAX_IMAGE_PIXELS="20000000",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout == "20000000\n"
    assert proc.returncode != 0
    assert "PIL.Image.DecompressionBombWarning: Image size (25000000 pixels)" in proc.stderr


def test_photo_metadata_is_stripped_and_orientation_applied(alice, media_tmp):
    buffer = io.BytesIO()
    image = Image.new("RGB", (40, 30), "red")
    exif = image.getexif()
    exif[0x0112] = 6  # Orientation: shown rotated by 90 degrees
    exif[0x010F] = "SpyCam"  # Make
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 22.0, 7.0)})  # GPS position
    image.save(buffer, format="JPEG", exif=exif)
    post = make_post(alice, image_file=upload("gps.jpg", buffer.getvalue(), "image/jpeg"))
    with Image.open(media_tmp / post.image.name) as stored:
        assert stored.format == "JPEG"
        assert stored.size == (30, 40)
        stored_exif = stored.getexif()
        assert 0x010F not in stored_exif and 0x0112 not in stored_exif
        assert not stored_exif.get_ifd(0x8825)
    assert (post.width, post.height) == (30, 40)


def test_form_requires_image():
    form = PostForm({"caption": "no picture"}, {})
    assert not form.is_valid()
    assert "image" in form.errors


def test_form_rejects_long_caption():
    form = PostForm({"caption": "x" * 501}, {"image": upload()})
    assert not form.is_valid()
    assert "caption" in form.errors


# Models


def test_posts_get_unique_storage_names(alice):
    first, second = make_post(alice), make_post(alice)
    assert first.image.name != second.image.name
    assert first.image.name.startswith("posts/") and first.image.name.endswith(".png")
    assert (first.width, first.height) == (40, 30)


def test_one_like_per_user_per_post(alice):
    post = make_post(alice)
    Like.objects.create(post=post, user=alice)
    with pytest.raises(IntegrityError):
        Like.objects.create(post=post, user=alice)


def test_deleting_post_deletes_its_image(alice, media_tmp, django_capture_on_commit_callbacks):
    post = make_post(alice)
    path = media_tmp / post.image.name
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        post.delete()
    assert not path.exists()


# Views: feed


def test_feed_is_newest_first_and_paginated(alice):
    now = timezone.now()
    for i in range(12):
        make_post(alice, caption=f"caption-{i:02d}", created_at=now - timedelta(minutes=12 - i))
    page1 = Client().get(reverse("feed:index")).content.decode()
    assert page1.index("caption-11") < page1.index("caption-10")
    assert "caption-02" in page1 and "caption-01" not in page1
    assert "Page 1 of 2" in page1
    page2 = Client().get(reverse("feed:index") + "?page=2").content.decode()
    assert "caption-01" in page2 and "caption-00" in page2 and "caption-11" not in page2


def test_feed_bad_page_number_is_not_an_error(alice):
    make_post(alice)
    assert Client().get(reverse("feed:index") + "?page=abc").status_code == 200
    assert Client().get(reverse("feed:index") + "?page=999").status_code == 200


def test_post_an_image(alice_client, alice, media_tmp):
    response = alice_client.post(
        reverse("feed:create"), {"caption": "My cat", "image": upload("cat.png")}
    )
    assert response.status_code == 302
    post = Post.objects.get()
    assert post.author == alice and post.caption == "My cat"
    assert (media_tmp / post.image.name).read_bytes() == image_bytes()
    feed = alice_client.get(reverse("feed:index")).content.decode()
    assert "My cat" in feed and post.image.url in feed


def test_bad_upload_through_view_is_400_with_message(alice_client):
    response = alice_client.post(
        reverse("feed:create"), {"caption": "x", "image": upload("x.png", b"<html>")}
    )
    assert response.status_code == 400
    assert "not an image we can read" in response.content.decode()
    assert not Post.objects.exists()


def test_slightly_oversized_upload_gets_form_error(settings, alice_client):
    big = noisy_png((300, 300))
    settings.MAX_UPLOAD_BYTES = len(big) - 1
    settings.MAX_REQUEST_BYTES = len(big) + 100_000
    response = alice_client.post(reverse("feed:create"), {"image": upload("big.png", big)})
    assert response.status_code == 400
    assert "the largest upload allowed is" in response.content.decode()


def test_far_oversized_request_gets_413_before_parsing(settings, alice_client):
    settings.MAX_UPLOAD_BYTES = 1000
    settings.MAX_REQUEST_BYTES = 2000
    settings.MAX_UPLOAD_MB = 7
    response = alice_client.post(reverse("feed:create"), {"image": upload("big.png", b"x" * 5000)})
    assert response.status_code == 413
    assert "largest file you can upload is 7 MB" in response.content.decode()
    assert not Post.objects.exists()


def test_anonymous_cannot_post(media_tmp):
    response = Client().post(reverse("feed:create"), {"image": upload()})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert not Post.objects.exists()


def test_csrf_enforced_on_post(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(reverse("feed:create"), {"image": upload()})
    assert response.status_code == 403
    assert not Post.objects.exists()


def test_like_and_unlike(alice, bob_client, bob):
    post = make_post(alice)
    url = reverse("feed:like", args=[post.pk])
    assert bob_client.post(url).status_code == 302
    assert bob_client.post(url).status_code == 302  # liking twice stays one like
    assert list(post.likes.values_list("user", flat=True)) == [bob.pk]
    page = bob_client.get(post.get_absolute_url()).content.decode()
    assert 'aria-label="Unlike">♥ 1' in page
    bob_client.post(reverse("feed:unlike", args=[post.pk]))
    assert not post.likes.exists()
    page = bob_client.get(post.get_absolute_url()).content.decode()
    assert 'aria-label="Like">♡ 0' in page


def test_like_requires_post_method(alice, alice_client):
    post = make_post(alice)
    assert alice_client.get(reverse("feed:like", args=[post.pk])).status_code == 405


def test_like_redirect_never_leaves_site(alice, alice_client):
    post = make_post(alice)
    response = alice_client.post(
        reverse("feed:like", args=[post.pk]), {"next": "https://evil.example/"}
    )
    assert response["Location"] == post.get_absolute_url()
    response = alice_client.post(reverse("feed:unlike", args=[post.pk]), {"next": "/?page=2"})
    assert response["Location"] == "/?page=2"


def test_like_missing_post_is_404(alice_client):
    assert alice_client.post(reverse("feed:like", args=[999])).status_code == 404


def test_comment_is_saved_and_escaped(alice, bob_client, bob):
    post = make_post(alice)
    response = bob_client.post(
        reverse("feed:comment", args=[post.pk]), {"body": "<script>alert(1)</script> nice"}
    )
    assert response.status_code == 302
    comment = Comment.objects.get()
    assert comment.author == bob and comment.post == post
    page = bob_client.get(post.get_absolute_url()).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; nice" in page
    assert "<script>alert(1)</script>" not in page


def test_empty_comment_is_rejected(alice, alice_client):
    post = make_post(alice)
    response = alice_client.post(reverse("feed:comment", args=[post.pk]), {"body": "   "})
    assert response.status_code == 400
    assert not Comment.objects.exists()


def test_caption_is_escaped(alice, alice_client):
    make_post(alice, caption='<img src=x onerror="alert(1)">')
    page = alice_client.get(reverse("feed:index")).content.decode()
    assert "&lt;img src=x onerror=" in page
    assert '<img src=x onerror="alert(1)">' not in page


def test_delete_own_post(alice, alice_client):
    post = make_post(alice)
    response = alice_client.post(reverse("feed:delete", args=[post.pk]))
    assert response.status_code == 302
    assert not Post.objects.exists()


def test_cannot_delete_someone_elses_post(alice, bob_client):
    post = make_post(alice)
    response = bob_client.post(reverse("feed:delete", args=[post.pk]))
    assert response.status_code == 403
    assert "only delete your own posts" in response.content.decode()
    assert Post.objects.filter(pk=post.pk).exists()


def test_anonymous_cannot_delete(alice):
    post = make_post(alice)
    response = Client().post(reverse("feed:delete", args=[post.pk]))
    assert response.status_code == 302
    assert Post.objects.filter(pk=post.pk).exists()


def test_delete_button_only_on_own_posts(alice, alice_client, bob_client):
    post = make_post(alice)
    delete_url = reverse("feed:delete", args=[post.pk])
    assert delete_url in alice_client.get(reverse("feed:index")).content.decode()
    assert delete_url not in bob_client.get(reverse("feed:index")).content.decode()
