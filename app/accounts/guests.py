"""Guest accounts: one fresh user per "continue as guest" click.

Nothing is looked up or seeded beforehand, so guest login works on an empty database. A fresh user
per click keeps "delete your own post" meaningful for guests: one guest cannot delete another's.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

GUEST_PREFIX = "guest-"


def create_guest() -> AbstractBaseUser:
    User = get_user_model()
    while True:
        username = f"{GUEST_PREFIX}{secrets.token_hex(4)}"
        if not User.objects.filter(username=username).exists():
            break
    user = User(username=username, first_name="Guest")
    user.set_unusable_password()
    user.save()
    return user


def is_guest(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.get_username().startswith(GUEST_PREFIX))
