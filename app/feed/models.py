from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone

CAPTION_MAX = 500
COMMENT_MAX = 1000


def image_path(instance: Post, filename: str) -> str:
    """A fresh name per upload: never the client's file name, never a collision between servers."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else "jpg"
    return f"posts/{timezone.now():%Y/%m}/{uuid.uuid4().hex}.{ext}"


class Post(models.Model):
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="posts"
    )
    image = models.ImageField(upload_to=image_path, width_field="width", height_field="height")
    width = models.PositiveIntegerField(default=0, editable=False)
    height = models.PositiveIntegerField(default=0, editable=False)
    caption = models.CharField(max_length=CAPTION_MAX, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Post {self.pk} by {self.author}"

    def get_absolute_url(self) -> str:
        return reverse("feed:detail", args=[self.pk])


class Like(models.Model):
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="likes")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="likes"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["post", "user"], name="one_like_per_user")]

    def __str__(self) -> str:
        return f"{self.user} likes {self.post_id}"


class Comment(models.Model):
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comments"
    )
    body = models.TextField(max_length=COMMENT_MAX)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Comment {self.pk} on {self.post_id}"


@receiver(post_delete, sender=Post, dispatch_uid="feed.delete_post_image")
def delete_post_image(sender, instance: Post, **kwargs) -> None:
    """Remove the image with its post, also when a user's deletion cascades to the post.

    Only once the transaction commits: a rolled-back delete must keep its image.
    """
    name, storage = instance.image.name, instance.image.storage
    if name:
        transaction.on_commit(lambda: storage.delete(name))
