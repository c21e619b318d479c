from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from guestbook.models import Entry

pytestmark = pytest.mark.django_db

VALID = {"name": "Alice", "email": "alice@example.com", "message": "Lovely photos!"}


def make_entry(user, **fields) -> Entry:
    return Entry.objects.create(author=user, **{**VALID, **fields})


def test_write_entry(alice_client, alice):
    response = alice_client.post(reverse("guestbook:create"), VALID)
    entry = Entry.objects.get()
    assert response.status_code == 302 and response["Location"] == entry.get_absolute_url()
    assert entry.author == alice and entry.message == "Lovely photos!"


def test_list_is_public_and_newest_first(alice):
    make_entry(alice, message="first message")
    make_entry(alice, message="second message")
    page = Client().get(reverse("guestbook:index")).content.decode()
    assert page.index("second message") < page.index("first message")


def test_view_entry_hides_email_from_others(alice, bob_client, alice_client):
    entry = make_entry(alice)
    assert "alice@example.com" not in bob_client.get(entry.get_absolute_url()).content.decode()
    assert "alice@example.com" not in Client().get(reverse("guestbook:index")).content.decode()
    assert "alice@example.com" in alice_client.get(entry.get_absolute_url()).content.decode()


def test_missing_entry_is_404():
    assert Client().get(reverse("guestbook:detail", args=[404])).status_code == 404


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"email": "not-an-email"}, "email"),
        ({"name": ""}, "name"),
        ({"message": "   "}, "message"),
        ({"name": "x" * 101}, "name"),
        ({"message": "x" * 2001}, "message"),
    ],
)
def test_invalid_entry_is_rejected(alice_client, bad, field):
    response = alice_client.post(reverse("guestbook:create"), {**VALID, **bad})
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert not Entry.objects.exists()


def test_anonymous_cannot_write():
    response = Client().post(reverse("guestbook:create"), VALID)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert not Entry.objects.exists()


def test_csrf_enforced(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse("guestbook:create"), VALID).status_code == 403
    assert not Entry.objects.exists()


def test_message_is_escaped(alice, alice_client):
    entry = make_entry(alice, name="<b>Al</b>", message="<script>steal()</script>")
    for url in (reverse("guestbook:index"), entry.get_absolute_url()):
        page = Client().get(url).content.decode()
        assert "&lt;script&gt;steal()&lt;/script&gt;" in page and "<script>steal" not in page
        assert "&lt;b&gt;Al&lt;/b&gt;" in page


def test_delete_own_entry(alice, alice_client):
    entry = make_entry(alice)
    assert alice_client.post(reverse("guestbook:delete", args=[entry.pk])).status_code == 302
    assert not Entry.objects.exists()


def test_cannot_delete_someone_elses_entry(alice, bob_client):
    entry = make_entry(alice)
    response = bob_client.post(reverse("guestbook:delete", args=[entry.pk]))
    assert response.status_code == 403
    assert Entry.objects.filter(pk=entry.pk).exists()


def test_delete_needs_post(alice, alice_client):
    entry = make_entry(alice)
    assert alice_client.get(reverse("guestbook:delete", args=[entry.pk])).status_code == 405
    assert Entry.objects.filter(pk=entry.pk).exists()


def test_guests_do_not_share_entries():
    first, second = Client(), Client()
    first.post(reverse("accounts:guest"))
    second.post(reverse("accounts:guest"))
    first.post(reverse("guestbook:create"), VALID)
    entry = Entry.objects.get()
    assert second.post(reverse("guestbook:delete", args=[entry.pk])).status_code == 403
    assert first.post(reverse("guestbook:delete", args=[entry.pk])).status_code == 302
