"""Rate limits per client address (core.ratelimit), and the client address (core.addresses)."""

from __future__ import annotations

import time

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse

from config import env
from core.addresses import client_address
from core.ratelimit import bucket
from feed.models import Comment
from tests.conftest import upload
from tests.servers import free_port

pytestmark = pytest.mark.django_db

# Long windows: a test never straddles two of them.
HOUR = 3600
WRONG = {"username": "alice", "password": "wrong-password"}
RIGHT = {"username": "alice", "password": "pw-alice-123"}


def login(client: Client, data: dict | None = None, **headers) -> int:
    return client.post(reverse("accounts:login"), data or WRONG, **headers).status_code


def test_login_limit_in_redis_with_429_page(settings, redis_cache, alice):
    settings.RATE_LIMITS = {"login": (3, HOUR)}
    client = Client()
    assert [login(client) for _ in range(3)] == [400, 400, 400]
    response = client.post(reverse("accounts:login"), RIGHT)
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many requests" in page and "try again later" in page
    assert 0 < int(response["Retry-After"]) <= HOUR
    assert login(client, RIGHT) == 429  # even the right password: the limit is per address
    assert client.get(reverse("accounts:login")).status_code == 200  # GETs do not count
    assert login(Client(REMOTE_ADDR="198.51.100.7"), RIGHT) == 302  # another address
    # One counter for everybody behind this address, in Redis, expiring with its window.
    admin = redis_cache.admin()
    [key] = admin.keys(f"app:1:ratelimit:login:127.0.0.1:{HOUR}:*")
    assert int(admin.get(key)) == 5
    assert 0 < admin.ttl(key) <= HOUR + 1


ANONYMOUS_POSTS = {
    "login": ("accounts:login", []),
    "signup": ("accounts:signup", []),
    "guest": ("accounts:guest", []),
    "post": ("feed:create", []),
    "comment": ("feed:comment", [1]),
    "guestbook": ("guestbook:create", []),
}


@pytest.mark.parametrize("scope", list(ANONYMOUS_POSTS))
def test_every_scope_is_limited_and_only_its_own_posts_count(settings, scope):
    settings.RATE_LIMITS = {scope: (1, HOUR)}
    name, args = ANONYMOUS_POSTS[scope]
    client = Client()
    assert client.post(reverse(name, args=args)).status_code != 429
    assert client.post(reverse(name, args=args)).status_code == 429
    for other, (other_name, other_args) in ANONYMOUS_POSTS.items():
        if other != scope:
            assert client.post(reverse(other_name, args=other_args)).status_code != 429, other


def test_limited_comments_are_not_saved(settings, alice, alice_client):
    from tests.test_feed import make_post

    settings.RATE_LIMITS = {"comment": (2, HOUR)}
    post = make_post(alice)
    url = reverse("feed:comment", args=[post.pk])
    codes = [alice_client.post(url, {"body": f"comment {i}"}).status_code for i in range(3)]
    assert codes == [302, 302, 429]
    assert Comment.objects.count() == 2


def test_limited_uploads_and_guests(settings, media_tmp):
    settings.RATE_LIMITS = {"guest": (1, HOUR), "post": (1, HOUR)}
    client = Client()
    assert client.post(reverse("accounts:guest")).status_code == 302
    assert Client().post(reverse("accounts:guest")).status_code == 429  # same address
    assert client.post(reverse("feed:create"), {"image": upload()}).status_code == 302
    assert client.post(reverse("feed:create"), {"image": upload()}).status_code == 429


def test_window_resets(settings, alice):
    settings.RATE_LIMITS = {"login": (1, 2)}
    time.sleep(2 - time.time() % 2 + 0.01)  # at the start of a window
    client = Client()
    assert [login(client), login(client)] == [400, 429]
    time.sleep(2 - time.time() % 2 + 0.01)  # the next window
    assert login(client) == 400


def test_limits_switched_off(settings, alice):
    settings.RATE_LIMITS = env.rate_limits({"DJANGO_RATE_LIMITS": "off"})
    client = Client()
    assert {login(client) for _ in range(12)} == {400}


def test_defaults_apply(alice):
    client = Client()
    assert [login(client) for _ in range(11)] == [400] * 10 + [429]


def test_cache_down_fails_open(settings, alice):
    settings.CACHES = env.caches({"DJANGO_REDIS_URL": f"redis://app:x@127.0.0.1:{free_port()}/0"})
    settings.RATE_LIMITS = {"login": (1, HOUR)}
    client = Client()
    assert [login(client) for _ in range(3)] == [400, 400, 400]
    assert login(client, RIGHT) == 302


def test_forwarded_for_from_a_client_is_ignored(settings, alice):
    settings.RATE_LIMITS = {"login": (2, HOUR)}
    settings.TRUSTED_PROXIES = frozenset({"10.77.0.11"})
    client = Client()  # REMOTE_ADDR 127.0.0.1: not a balancer
    codes = [login(client, HTTP_X_FORWARDED_FOR=f"203.0.113.{i}") for i in range(3)]
    assert codes == [400, 400, 429]


def test_forwarded_for_from_a_balancer_names_the_client(settings, alice):
    settings.RATE_LIMITS = {"login": (2, HOUR)}
    settings.TRUSTED_PROXIES = frozenset({"10.77.0.11"})
    balancer = Client(REMOTE_ADDR="10.77.0.11")
    assert [login(balancer, HTTP_X_FORWARDED_FOR="203.0.113.5") for _ in range(3)] == [
        400,
        400,
        429,
    ]
    # Another client behind the same balancer has its own count...
    assert login(balancer, HTTP_X_FORWARDED_FOR="203.0.113.6") == 400
    # ...and what a client puts in front of the balancer's entry changes nothing.
    assert login(balancer, HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.5") == 429


def request_from(remote: str, forwarded: str | None = None):
    headers = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **headers)


@pytest.mark.parametrize(
    "remote, forwarded, expected",
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not a balancer: header ignored
        ("10.77.0.11", "198.51.100.1", "198.51.100.1"),
        ("10.77.0.11", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # right-most: the balancer's
        ("10.77.0.11", "198.51.100.1,2001:DB8:0::7", "2001:db8::7"),
        ("10.77.0.11", None, "10.77.0.11"),  # the balancer itself (its own probes)
        ("10.77.0.11", "not-an-address", "10.77.0.11"),
        ("2001:db8::11", "198.51.100.1", "198.51.100.1"),
    ],
)
def test_client_address(settings, remote, forwarded, expected):
    settings.TRUSTED_PROXIES = env.trusted_proxies(
        {"DJANGO_TRUSTED_PROXIES": "10.77.0.11,2001:db8:0:0::11"}
    )
    assert client_address(request_from(remote, forwarded)) == expected


def test_ipv6_clients_are_counted_per_64():
    assert bucket("2001:db8:1:2:aaaa::1") == bucket("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert bucket("2001:db8:1:3::1") != bucket("2001:db8:1:2::1")
    assert bucket("203.0.113.5") == "203.0.113.5"
