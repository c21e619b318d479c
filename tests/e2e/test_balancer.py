"""Through the balancer: spread, stickiness, failover without logout, shared media, static files."""

from __future__ import annotations

import re
import uuid
from io import BytesIO

import requests
from e2e_support import (
    Cluster,
    lab,
    logged_in_as,
    pinned,
    png_bytes,
    post_form,
    served_by,
    serves_again,
    sign_up,
    wait_for,
)
from PIL import Image

# A static file linked by its hashed name (core/app.3f2a0b1c9d8e.css): the plain name, the suffix.
HASHED_STATIC = re.compile(r'(?:href|src)="(/static/[^"]+)\.[0-9a-f]{12}(\.[A-Za-z0-9]+)"')


def test_pages_render_and_spread_over_every_was(cluster: Cluster) -> None:
    seen = set()
    for _ in range(8 * len(cluster.was)):
        response = requests.get(f"{cluster.url}/", timeout=10)  # no cookie kept
        assert response.status_code == 200
        assert "<html" in response.text.lower()
        seen.add(served_by(response))
    assert seen == set(cluster.was)


def test_the_sticky_cookie_keeps_a_client_on_one_was(cluster: Cluster) -> None:
    session = requests.Session()
    first = session.get(f"{cluster.url}/", timeout=10)
    route = session.cookies.get(cluster.cookie)
    expected = cluster.routes.get(served_by(first))
    assert route == f".{expected}", f"the balancer sets {cluster.cookie} to the serving WAS"
    servers = {served_by(session.get(f"{cluster.url}/guestbook/", timeout=10)) for _ in range(10)}
    assert servers == {served_by(first)}


def test_killing_the_pinned_was_neither_errors_nor_logs_out(cluster: Cluster) -> None:
    session = requests.Session()
    username = f"fail{uuid.uuid4().hex[:8]}"
    sign_up(cluster, session, username)
    victim = served_by(session.get(f"{cluster.url}/", timeout=10))
    assert session.cookies.get(cluster.cookie) == f".{cluster.routes.get(victim)}"

    lab(cluster.inventory, "kill", victim)
    try:
        after = session.get(f"{cluster.url}/", timeout=15)
        assert after.status_code == 200
        assert served_by(after) not in ("", victim)
        assert logged_in_as(after.text) == username, "the session survived the loss of its WAS"
    finally:
        lab(cluster.inventory, "start", victim)

    wait_for(f"{victim} to serve again", lambda: serves_again(cluster, victim), 120)


def test_an_upload_through_one_was_is_served_by_another(cluster: Cluster) -> None:
    first, second = sorted(cluster.was)[:2]
    uploader = pinned(cluster, first)
    sign_up(cluster, uploader, f"media{uuid.uuid4().hex[:8]}")
    image = png_bytes((200, 30, 90))
    caption = f"shared media {uuid.uuid4().hex[:6]}"
    response = post_form(
        uploader,
        f"{cluster.url}/posts/new/",
        {"caption": caption},
        files={"image": ("e2e.png", image, "image/png")},
    )
    assert response.status_code == 200 and served_by(response) == first
    match = re.search(
        rf'<img class="photo" src="([^"]+)" alt="{re.escape(caption)}"', response.text
    )
    assert match, "the feed shows the new post's image"
    url = match.group(1)
    media = cluster.balancer["media_path"]
    assert url.startswith(media), "media is served through the balancer, not the store"

    via_first = uploader.get(f"{cluster.url}{url}", timeout=10)
    via_second = pinned(cluster, second).get(f"{cluster.url}{url}", timeout=10)
    assert via_first.status_code == via_second.status_code == 200
    assert via_second.content == via_first.content
    assert Image.open(BytesIO(via_second.content)).size == (64, 48)


def test_static_files_come_from_the_store_and_hashed_ones_are_kept_a_year(
    cluster: Cluster,
) -> None:
    """Pages link static files by hashed name; the balancer serves them from the object store
    (never from a WAS) with a year's immutable lifetime, and the plain name for minutes only."""
    page = requests.get(f"{cluster.url}/", timeout=10)
    found = HASHED_STATIC.search(page.text)
    assert found, "the page links a static file by its hashed name"
    hashed = found.group(0).split('"')[1]
    plain = found.group(1) + found.group(2)
    answers = {path: requests.get(f"{cluster.url}{path}", timeout=10) for path in (hashed, plain)}
    for path, answer in answers.items():
        assert answer.status_code == 200, (path, answer.status_code)
        assert served_by(answer) == "", f"{path} came from {served_by(answer)}, not the store"
        assert "set-cookie" not in answer.headers
    assert answers[hashed].headers.get("Cache-Control") == "public, max-age=31536000, immutable"
    assert answers[plain].headers.get("Cache-Control") == "public, max-age=300"
