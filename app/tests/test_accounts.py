from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from accounts.guests import is_guest

pytestmark = pytest.mark.django_db
User = get_user_model()


def logged_in_user(client: Client):
    """Who the app thinks the client is, as the app itself reports it."""
    response = client.get(reverse("feed:index"))
    return response.wsgi_request.user


def test_signup_creates_account_and_logs_in():
    client = Client()
    response = client.post(
        reverse("accounts:signup"),
        {"username": "carol", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"},
    )
    assert response.status_code == 302
    user = User.objects.get(username="carol")
    assert user.check_password("a-long-pass-phrase")
    assert logged_in_user(client) == user


def test_signup_rejects_mismatched_passwords():
    response = Client().post(
        reverse("accounts:signup"),
        {"username": "carol", "password1": "a-long-pass-phrase", "password2": "other-phrase-x"},
    )
    assert response.status_code == 400
    assert "didn’t match" in response.content.decode()
    assert not User.objects.filter(username="carol").exists()


def test_signup_rejects_weak_password():
    response = Client().post(
        reverse("accounts:signup"),
        {"username": "carol", "password1": "123", "password2": "123"},
    )
    assert response.status_code == 400
    assert not User.objects.filter(username="carol").exists()
    assert "too short" in response.content.decode()


def test_signup_rejects_guest_names():
    response = Client().post(
        reverse("accounts:signup"),
        {
            "username": "guest-1234",
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
        },
    )
    assert response.status_code == 400
    assert "kept for guests" in response.content.decode()
    assert not User.objects.filter(username="guest-1234").exists()


def test_signup_rejects_taken_username(alice):
    response = Client().post(
        reverse("accounts:signup"),
        {"username": "alice", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"},
    )
    assert response.status_code == 400
    assert "already exists" in response.content.decode()


def test_login_and_logout(alice):
    client = Client()
    response = client.post(
        reverse("accounts:login"), {"username": "alice", "password": "pw-alice-123"}
    )
    assert response.status_code == 302
    assert logged_in_user(client) == alice
    assert client.post(reverse("accounts:logout")).status_code == 302
    assert not logged_in_user(client).is_authenticated


def test_login_wrong_password(alice):
    client = Client()
    response = client.post(reverse("accounts:login"), {"username": "alice", "password": "nope"})
    assert response.status_code == 400
    assert "correct username and password" in response.content.decode()
    assert not logged_in_user(client).is_authenticated


def test_guest_login_on_empty_database():
    assert not User.objects.exists()
    client = Client()
    response = client.post(reverse("accounts:guest"))
    assert response.status_code == 302
    user = logged_in_user(client)
    assert user.is_authenticated and is_guest(user)
    assert not user.has_usable_password()


def test_each_guest_click_is_a_new_user():
    first, second = Client(), Client()
    first.post(reverse("accounts:guest"))
    second.post(reverse("accounts:guest"))
    assert logged_in_user(first) != logged_in_user(second)
    assert User.objects.filter(username__startswith="guest-").count() == 2


def test_guest_login_returns_to_next_but_not_off_site():
    client = Client()
    response = client.post(reverse("accounts:guest"), {"next": "/guestbook/new/"})
    assert response["Location"] == "/guestbook/new/"
    response = Client().post(reverse("accounts:guest"), {"next": "//evil.example/x"})
    assert response["Location"] == reverse("feed:index")


def test_guest_login_needs_post():
    assert Client().get(reverse("accounts:guest")).status_code == 405
    assert not User.objects.exists()


def test_guest_can_post_and_sign(media_tmp):
    from tests.conftest import upload

    client = Client()
    client.post(reverse("accounts:guest"))
    assert client.post(reverse("feed:create"), {"image": upload()}).status_code == 302
    response = client.post(
        reverse("guestbook:create"),
        {"name": "Visitor", "email": "v@example.com", "message": "hi"},
    )
    assert response.status_code == 302


@pytest.mark.parametrize(
    "url", ["accounts:guest", "accounts:signup", "accounts:login", "accounts:logout"]
)
def test_csrf_enforced_on_account_forms(url):
    response = Client(enforce_csrf_checks=True).post(reverse(url), {})
    assert response.status_code == 403
    assert not User.objects.exists()


# ensure_admin


def run_ensure_admin(monkeypatch, **env: str) -> str:
    for name in ("DJANGO_ADMIN_USERNAME", "DJANGO_ADMIN_PASSWORD", "DJANGO_ADMIN_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


ADMIN = {
    "DJANGO_ADMIN_USERNAME": "root",
    "DJANGO_ADMIN_PASSWORD": "s3cret-admin-pw",
    "DJANGO_ADMIN_EMAIL": "root@example.com",
}


def test_ensure_admin_is_idempotent(monkeypatch):
    assert run_ensure_admin(monkeypatch, **ADMIN) == "created\n"
    user = User.objects.get(username="root")
    assert user.is_superuser and user.is_staff and user.check_password("s3cret-admin-pw")
    assert user.email == "root@example.com"
    assert run_ensure_admin(monkeypatch, **ADMIN) == "unchanged\n"


@pytest.mark.parametrize(
    "change",
    [
        {"DJANGO_ADMIN_PASSWORD": "another-password"},
        {"DJANGO_ADMIN_EMAIL": "new@example.com"},
    ],
)
def test_ensure_admin_updates(monkeypatch, change):
    run_ensure_admin(monkeypatch, **ADMIN)
    assert run_ensure_admin(monkeypatch, **{**ADMIN, **change}) == "updated\n"
    user = User.objects.get(username="root")
    if "DJANGO_ADMIN_PASSWORD" in change:
        assert user.check_password("another-password")
    else:
        assert user.email == "new@example.com"
    assert run_ensure_admin(monkeypatch, **{**ADMIN, **change}) == "unchanged\n"


def test_ensure_admin_promotes_existing_user(monkeypatch):
    User.objects.create_user("root", "root@example.com", "s3cret-admin-pw")
    assert run_ensure_admin(monkeypatch, **ADMIN) == "updated\n"
    assert User.objects.get(username="root").is_superuser


def test_ensure_admin_requires_env(monkeypatch):
    with pytest.raises(CommandError, match="DJANGO_ADMIN_PASSWORD"):
        run_ensure_admin(monkeypatch, DJANGO_ADMIN_USERNAME="root")
    assert not User.objects.exists()


def test_purge_guests_removes_idle_guests_and_their_images(
    media_tmp, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.guests import create_guest
    from feed.forms import PostForm
    from tests.conftest import upload

    old, fresh = create_guest(), create_guest()
    User.objects.filter(pk=old.pk).update(last_login=timezone.now() - timedelta(days=40))
    User.objects.filter(pk=fresh.pk).update(last_login=timezone.now())
    User.objects.create_user("regular")
    User.objects.filter(username="regular").update(last_login=timezone.now() - timedelta(days=400))
    form = PostForm({}, {"image": upload()})
    assert form.is_valid()
    post = form.save(commit=False)
    post.author = old
    post.save()
    image = media_tmp / post.image.name
    assert image.exists()

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("purge_guests", "--days", "30", stdout=out)
    assert out.getvalue() == "1 guest account(s) deleted\n"
    assert set(User.objects.values_list("username", flat=True)) == {fresh.username, "regular"}
    assert not image.exists()
