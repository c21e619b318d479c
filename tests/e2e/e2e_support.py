"""Helpers of the end-to-end tests: the lab's inventory, the balancer URL, lab commands."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import requests
from cluster_support import BIN, REPO, address, group_hosts

ARTIFACTS = REPO / "artifacts"
T = TypeVar("T")


@dataclass(frozen=True)
class Cluster:
    inventory: Path
    lb: str
    was: dict[str, str]  # route (inventory name) -> address

    @property
    def url(self) -> str:
        return f"http://{self.lb}"


def read_cluster(inventory: Path) -> Cluster:
    was = {h: address(inventory, h) for h in group_hosts(inventory, "was")}
    return Cluster(inventory, address(inventory, group_hosts(inventory, "lb")[0]), was)


def lab(inventory: Path, *args: str) -> str:
    proc = subprocess.run(
        [str(BIN / "lab"), "-i", str(inventory), *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"lab {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60) -> T:
    """Poll probe until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
        except requests.RequestException:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def served_by(response: requests.Response) -> str:
    return response.headers.get("X-Served-By", "")


def pinned(cluster: Cluster, route: str) -> requests.Session:
    """A client whose ROUTEID cookie sends it to one WAS."""
    session = requests.Session()
    session.cookies.set("ROUTEID", f".{route}", domain=cluster.lb, path="/")
    return session


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token in the form"
    return match.group(1)


def post_form(
    session: requests.Session,
    url: str,
    data: dict[str, str],
    files: dict[str, tuple[str, bytes, str]] | None = None,
) -> requests.Response:
    """GET a form for its CSRF token, then POST it, like a browser."""
    page = session.get(url, timeout=10)
    page.raise_for_status()
    payload = {"csrfmiddlewaretoken": csrf_token(page.text), **data}
    return session.post(url, data=payload, files=files, timeout=30, headers={"Referer": url})


def sign_up(cluster: Cluster, session: requests.Session, username: str) -> None:
    password = "Correct-Horse-Battery-42"
    response = post_form(
        session,
        f"{cluster.url}/accounts/signup/",
        {"username": username, "password1": password, "password2": password},
    )
    assert response.status_code == 200 and logged_in_as(response.text) == username, response.text[
        :2000
    ]


def logged_in_as(html: str) -> str:
    """The user a page says is logged in (the header's `who`), or ""."""
    match = re.search(r'<span class="who">([^<]+)</span>', html)
    return match.group(1) if match else ""


def serves_again(cluster: Cluster, route: str) -> bool:
    """One probe pinned to `route` (a fresh client each time: failover re-pins a client)."""
    return served_by(pinned(cluster, route).get(f"{cluster.url}/healthz", timeout=5)) == route


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()
