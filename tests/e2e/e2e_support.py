"""Helpers of the end-to-end tests: the cluster as the inventory and the balancer describe it,
the balancer URL, lab commands."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
from cluster_support import (  # noqa: F401 - the e2e tests import the page helpers here
    BIN,
    REPO,
    address,
    csrf_token,
    get_host,
    group_hosts,
    host_fact,
    logged_in_as,
    post_form,
    rendered,
    sign_up,
)

ARTIFACTS = REPO / "artifacts"
T = TypeVar("T")


@dataclass(frozen=True)
class Cluster:
    """The cluster under test: names from the inventory, settings from the roles' local facts."""

    inventory: Path
    lb_name: str  # the first balancer
    lb: str  # the front door the tests go through: the floating address, else lb_name's address
    floating: str  # the balancers' floating address ("" without one)
    balancer: dict[str, Any]  # its apache_lb fact: port, sticky cookie, paths, service, members
    db_name: str  # the first database host
    db_user: str  # the application's MariaDB account (mariadb fact)
    was: dict[str, str]  # inventory name (also the host name, X-Served-By) -> address

    @property
    def url(self) -> str:
        port = int(self.balancer["http_port"])
        return f"http://{self.lb}" if port == 80 else f"http://{self.lb}:{port}"

    @property
    def cookie(self) -> str:
        """The sticky cookie: <cookie>=.<route> pins a client to one WAS."""
        return str(self.balancer["sticky_cookie"])

    @property
    def routes(self) -> dict[str, str]:
        """Balancer route of each WAS, by inventory name."""
        return {m["name"]: m["route"] for m in self.balancer["members"]}


def read_cluster(inventory: Path) -> Cluster:
    lb_name = group_hosts(inventory, "lb")[0]
    db_name = group_hosts(inventory, "db")[0]
    floating = str(rendered(inventory, lb_name)["cluster_lb_floating_address"] or "")
    return Cluster(
        inventory=inventory,
        lb_name=lb_name,
        lb=floating or address(inventory, lb_name),
        floating=floating,
        balancer=host_fact(get_host(inventory, lb_name), "apache_lb"),
        db_name=db_name,
        db_user=str(host_fact(get_host(inventory, db_name), "mariadb")["app_user"]),
        was={h: address(inventory, h) for h in group_hosts(inventory, "was")},
    )


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


def pinned(cluster: Cluster, was: str) -> requests.Session:
    """A client whose sticky cookie sends it to one WAS (by inventory name)."""
    session = requests.Session()
    session.cookies.set(cluster.cookie, f".{cluster.routes[was]}", domain=cluster.lb, path="/")
    return session


def serves_again(cluster: Cluster, was: str) -> bool:
    """One probe pinned to `was` (a fresh client each time: failover re-pins a client)."""
    health = f"{cluster.url}{cluster.balancer['health_path']}"
    return served_by(pinned(cluster, was).get(health, timeout=5)) == was


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()
