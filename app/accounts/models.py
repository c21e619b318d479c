from django.db import models
from django.utils import timezone


class RevokedSession(models.Model):
    """A session's Redis key that could not be deleted because Redis was unreachable.

    accounts.revocation deletes the key from Redis on every new Redis connection, then this row.
    """

    redis_key = models.CharField(max_length=250, unique=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.redis_key
