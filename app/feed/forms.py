from __future__ import annotations

import io

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template.defaultfilters import filesizeformat
from PIL import Image, ImageOps

from feed.models import CAPTION_MAX, COMMENT_MAX, Comment, Post

# Formats browsers show everywhere; Pillow opens many more (PSD, EPS, ...) that we refuse.
ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}
MAX_PIXELS = 40_000_000


def without_metadata(image: Image.Image) -> bytes | None:
    """Re-encode a still image without EXIF/XMP (GPS position, camera serial...).

    The EXIF orientation is applied first so the picture still shows the right way up.
    Animated images are kept as uploaded (None): re-encoding them is costly and lossy.
    """
    if getattr(image, "is_animated", False) or image.format == "GIF":
        return None
    fmt = image.format
    upright = ImageOps.exif_transpose(image)
    options: dict[str, object] = {}
    if image.info.get("icc_profile"):
        options["icc_profile"] = image.info["icc_profile"]
    if fmt == "JPEG":
        options["quality"] = 90
        if upright.mode not in ("RGB", "L", "CMYK"):
            upright = upright.convert("RGB")
    elif fmt == "WEBP":
        options["quality"] = 90
    elif fmt == "PNG" and "transparency" in image.info:
        options["transparency"] = image.info["transparency"]
    buffer = io.BytesIO()
    upright.save(buffer, format=fmt, **options)
    return buffer.getvalue()


class PhotoField(forms.ImageField):
    """An image checked for size before Pillow reads it, then for format and dimensions."""

    default_error_messages = {
        "invalid_image": "This file is not an image we can read (JPEG, PNG, GIF or WebP), "
        "or it is corrupt.",
    }

    def to_python(self, data):
        if data is not None and getattr(data, "size", 0) > settings.MAX_UPLOAD_BYTES:
            raise ValidationError(
                "This file is %(size)s; the largest upload allowed is %(max)s.",
                code="too_large",
                params={
                    "size": filesizeformat(data.size),
                    "max": filesizeformat(settings.MAX_UPLOAD_BYTES),
                },
            )
        f = super().to_python(data)
        if f is None:
            return None
        image = f.image
        if image.format not in ALLOWED_FORMATS:
            raise ValidationError(
                "%(format)s images are not accepted: upload JPEG, PNG, GIF or WebP.",
                code="format",
                params={"format": image.format or "Unknown"},
            )
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ValidationError(
                "The image is %(w)s×%(h)s pixels; at most 40 megapixels are accepted.",
                code="too_many_pixels",
                params={"w": width, "h": height},
            )
        # verify() checks structure only; decoding finds truncated or damaged pixel data.
        name = f"upload.{ALLOWED_FORMATS[image.format]}"
        try:
            f.seek(0)
            with Image.open(f) as decoded:
                decoded.load()
                clean = without_metadata(decoded)
        except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds
            raise ValidationError(
                self.error_messages["invalid_image"], code="invalid_image"
            ) from exc
        finally:
            f.seek(0)
        if clean is None:
            # The stored name comes from what the file is, not from what the client called it.
            f.name = name
            return f
        return SimpleUploadedFile(name, clean, Image.MIME[image.format])
        return f


class PostForm(forms.ModelForm):
    image = PhotoField(widget=forms.ClearableFileInput(attrs={"accept": "image/*"}))
    caption = forms.CharField(
        max_length=CAPTION_MAX,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Say something about it"}),
    )

    class Meta:
        model = Post
        fields = ["image", "caption"]


class CommentForm(forms.ModelForm):
    body = forms.CharField(
        label="Comment",
        max_length=COMMENT_MAX,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Write a comment"}),
    )

    class Meta:
        model = Comment
        fields = ["body"]

    def clean_body(self) -> str:
        body = self.cleaned_data["body"].strip()
        if not body:
            raise ValidationError("A comment cannot be empty.")
        return body
