"""Two gunicorn servers sharing the database, Redis and the bucket, as behind the balancer.

A browser that the balancer moves from one server to the other stays logged in, and an image
uploaded through one is listed by the other and served from the store.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings

from tests.conftest import BUCKET, image_bytes, s3_env
from tests.servers import env_without_django, free_port, stop, wait_for

APP_DIR = Path(django_settings.BASE_DIR)


def server_env(tmp_path: Path, redis_server, seaweed) -> dict[str, str]:
    return env_without_django(
        DJANGO_SECRET_KEY="shared-by-every-server-" + "k" * 40,
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_HTTPS="false",
        DJANGO_DB_NAME=str(tmp_path / "shared.sqlite3"),
        DJANGO_REDIS_URL=redis_server.app_url,
        DJANGO_LOG_LEVEL="WARNING",
        # Long windows: a test never straddles two of them.
        DJANGO_RATE_LIMITS="login=3/3600",
        **s3_env(seaweed),
    )


@pytest.fixture
def two_servers(tmp_path, redis_server, seaweed):
    environ = server_env(tmp_path, redis_server, seaweed)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=APP_DIR,
        env=environ,
        check=True,
        timeout=120,
    )
    gunicorn = shutil.which("gunicorn") or str(Path(sys.executable).parent / "gunicorn")
    servers = []
    try:
        for name in ("was1", "was2"):
            port = free_port()
            log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed by the process
            proc = subprocess.Popen(
                [
                    gunicorn,
                    "config.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "1",
                    "--timeout",
                    "60",
                ],
                cwd=APP_DIR,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            servers.append((f"http://127.0.0.1:{port}", proc))
        for url, proc in servers:
            wait_for(
                lambda url=url: requests.get(f"{url}/healthz", timeout=2).ok,
                60,
                f"gunicorn at {url}",
                proc,
            )
        yield servers
    finally:
        for _, proc in servers:
            stop(proc)


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token in page"
    return match.group(1)


def test_session_and_uploads_work_across_servers(two_servers, seaweed):
    (one, one_proc), (two, _) = two_servers
    browser = requests.Session()  # cookies are per host, not per port: like one balancer name

    page = browser.get(f"{one}/accounts/signup/", timeout=10)
    assert page.headers["X-Served-By"]
    signed_up = browser.post(
        f"{two}/accounts/signup/",
        data={
            "csrfmiddlewaretoken": csrf_token(page.text),
            "username": "dora",
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
        },
        headers={"Referer": f"{two}/accounts/signup/"},
        allow_redirects=False,
        timeout=10,
    )
    assert signed_up.status_code == 302, signed_up.text[:500]

    feed = browser.get(f"{one}/", timeout=10)
    assert '<span class="who">dora</span>' in feed.text

    posted = browser.post(
        f"{one}/posts/new/",
        data={"csrfmiddlewaretoken": csrf_token(feed.text), "caption": "shared"},
        files={"image": ("cat.png", image_bytes(), "image/png")},
        allow_redirects=False,
        timeout=30,
    )
    assert posted.status_code == 302, posted.text[:500]

    listed = browser.get(f"{two}/", timeout=10).text
    image_url = re.search(r'<img class="photo" src="(/media/posts/[^"]+)"', listed).group(1)
    with urllib.request.urlopen(f"{seaweed.endpoint}/{BUCKET}{image_url}", timeout=10) as got:
        assert got.read() == image_bytes()

    # Lose a server: the other one still knows who we are.
    stop(one_proc)
    still = browser.get(f"{two}/", timeout=10)
    assert '<span class="who">dora</span>' in still.text
    assert requests.get(f"{two}/readyz", timeout=10).json()["status"] == "ok"


def test_rate_limits_are_shared_by_the_servers(two_servers):
    (one, _), (two, _) = two_servers
    browser = requests.Session()
    token = csrf_token(browser.get(f"{one}/accounts/login/", timeout=10).text)

    def attempt(url: str) -> requests.Response:
        return browser.post(
            f"{url}/accounts/login/",
            data={"csrfmiddlewaretoken": token, "username": "nobody", "password": "wrong"},
            headers={"Referer": f"{url}/accounts/login/"},
            allow_redirects=False,
            timeout=10,
        )

    codes = [attempt(url).status_code for url in (one, two, one)]
    assert codes == [400, 400, 400]
    refused = attempt(two)  # the fourth attempt, counted on the other server too
    assert refused.status_code == 429
    assert "Too many requests" in refused.text
    assert int(refused.headers["Retry-After"]) > 0
    assert attempt(one).status_code == 429
