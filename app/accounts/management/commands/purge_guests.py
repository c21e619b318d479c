"""Delete guest users idle for a while, with their posts, images, comments and entries."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db.models import Q
from django.utils import timezone

from accounts.guests import GUEST_PREFIX


class Command(BaseCommand):
    help = "Delete guest accounts not used for --days days (default 30). Prints the count."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=30)

    def handle(self, *args, days: int, **options) -> None:
        cutoff = timezone.now() - timedelta(days=days)
        idle = Q(last_login__lt=cutoff) | Q(last_login__isnull=True, date_joined__lt=cutoff)
        guests = get_user_model().objects.filter(idle, username__startswith=GUEST_PREFIX)
        count = 0
        for user in guests.iterator():
            user.delete()  # cascades; feed's post_delete signal removes the images
            count += 1
        self.stdout.write(f"{count} guest account(s) deleted")
