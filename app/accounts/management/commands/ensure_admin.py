"""Create or update the superuser named in the environment; print created, updated or unchanged.

Ansible runs this on every converge and uses the single word for changed_when.
"""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction


class Command(BaseCommand):
    help = (
        "Ensure the superuser DJANGO_ADMIN_USERNAME exists with DJANGO_ADMIN_PASSWORD and "
        "DJANGO_ADMIN_EMAIL. Prints created, updated or unchanged."
    )

    def handle(self, *args, **options) -> None:
        username = os.environ.get("DJANGO_ADMIN_USERNAME", "").strip()
        password = os.environ.get("DJANGO_ADMIN_PASSWORD", "")
        email = os.environ.get("DJANGO_ADMIN_EMAIL", "").strip()
        missing = [
            name
            for name, value in (
                ("DJANGO_ADMIN_USERNAME", username),
                ("DJANGO_ADMIN_PASSWORD", password),
            )
            if not value
        ]
        if missing:
            raise CommandError(f"Set {' and '.join(missing)} in the environment.")

        User = get_user_model()
        with transaction.atomic():
            user = User.objects.select_for_update().filter(username=username).first()
            if user is None:
                User.objects.create_superuser(username=username, email=email, password=password)
                self.stdout.write("created")
                return
            changed = []
            if not user.check_password(password):
                user.set_password(password)
                changed.append("password")
            if user.email != email:
                user.email = email
                changed.append("email")
            for flag in ("is_active", "is_staff", "is_superuser"):
                if not getattr(user, flag):
                    setattr(user, flag, True)
                    changed.append(flag)
            if changed:
                user.save()
                self.stdout.write("updated")
            else:
                self.stdout.write("unchanged")
