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


def megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:g}"


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
        if data not in self.empty_values:
            self.check_header(data)
        f = super().to_python(data)
        if f is None:
            return None
        image = f.image
        # verify() checks structure only; decoding finds truncated or damaged pixel data.
        name = f"upload.{ALLOWED_FORMATS[image.format]}"
        try:
            f.seek(0)
            with Image.open(f) as decoded:
                decoded.load()
                clean = without_metadata(decoded)
        except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds
            raise self.invalid_image() from exc
        finally:
            f.seek(0)
        if clean is None:
            # The stored name comes from what the file is, not from what the client called it.
            f.name = name
            return f
        return SimpleUploadedFile(name, clean, Image.MIME[image.format])

    def invalid_image(self) -> ValidationError:
        return ValidationError(self.error_messages["invalid_image"], code="invalid_image")

    def check_header(self, data) -> None:
        """Refuse a format or a size from the header alone, before any pixel is allocated.

        Image.open is lazy: it parses the header and allocates nothing, so a 100-byte file that
        declares 40,000 × 40,000 pixels (6.4 GB decoded) is refused here for what it declares.
        """
        limit = settings.MAX_IMAGE_PIXELS
        too_many = ValidationError(
            "The image has more than %(max)s megapixels; at most %(max)s megapixels are accepted.",
            code="too_many_pixels",
            params={"max": megapixels(limit)},
        )
        try:
            data.seek(0)
            with Image.open(data) as header:
                fmt, (width, height) = header.format, header.size
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            # Pillow's own guard (feed.apps sets it to our limit, and makes the warning an error).
            raise too_many from None
        except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds
            raise self.invalid_image() from exc
        finally:
            data.seek(0)
        if fmt not in ALLOWED_FORMATS:
            raise ValidationError(
                "%(format)s images are not accepted: upload JPEG, PNG, GIF or WebP.",
                code="format",
                params={"format": fmt or "Unknown"},
            )
        if width * height > limit:
            raise ValidationError(
                "The image is %(w)s×%(h)s pixels; at most %(max)s megapixels are accepted.",
                code="too_many_pixels",
                params={"w": width, "h": height, "max": megapixels(limit)},
            )


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
