from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ValidationError

from accounts.guests import GUEST_PREFIX


class SignUpForm(UserCreationForm):
    def clean_username(self) -> str:
        username = super().clean_username()
        if username and username.lower().startswith(GUEST_PREFIX):
            raise ValidationError(f"Names starting with “{GUEST_PREFIX}” are kept for guests.")
        return username
