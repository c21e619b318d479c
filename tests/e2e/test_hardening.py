"""What an outsider meets at the front door: no admin pages, no version banners, TLS 1.2 or newer,
rate limits shared by every WAS, uploads refused before they are decoded, and logouts that stay
final through a Redis outage.

"Outside" is a client in its own namespace on the lab's bridge (outside.py), not in the admin
networks; the controller, whose bridge address the lab lists as an admin network, is the inside.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import struct
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cluster_support import get_host, group_hosts, host_fact
from e2e_support import (
    Cluster,
    csrf_token,
    lab,
    logged_in_as,
    pinned,
    post_form,
    sign_up,
    wait_for,
)
from outside import Outside, outside_client


@pytest.fixture(scope="module")
def outside(cluster: Cluster) -> Iterator[Outside]:
    with outside_client(cluster.inventory) as client:
        yield client


def admin_paths(cluster: Cluster) -> list[str]:
    paths = [str(p) for p in cluster.balancer["admin_paths"]]
    assert paths, "the balancer reports no admin paths"
    return [*paths, str(cluster.balancer["manager_path"])]


def test_the_outside_is_not_an_admin_network(cluster: Cluster, outside: Outside) -> None:
    networks = [str(n) for n in cluster.balancer["admin_networks"]]
    assert not any(
        ipaddress.ip_address(outside.address) in ipaddress.ip_network(n) for n in networks
    ), f"{outside.address} is inside {networks}: the refusals below would prove nothing"


@pytest.mark.parametrize("kind", ["admin", "readiness", "manager"])
def test_admin_paths_are_refused_from_outside(
    cluster: Cluster, outside: Outside, kind: str
) -> None:
    path = {"admin": "/admin/", "readiness": "/readyz", "manager": "/balancer-manager"}[kind]
    assert any(path.startswith(p) or p.startswith(path) for p in admin_paths(cluster))
    status, headers, body = outside.curl(f"{cluster.url}{path}")
    assert status == 403, f"{path} from outside answered {status}: {body[:300]}"
    assert "x-served-by" not in headers, "the request reached an application server"


def test_admin_pages_work_from_an_admin_network(cluster: Cluster) -> None:
    login = requests.get(f"{cluster.url}/admin/login/", timeout=20)
    assert login.status_code == 200 and "csrfmiddlewaretoken" in login.text
    ready = requests.get(f"{cluster.url}/readyz", timeout=20)
    assert ready.status_code == 200, ready.text


def test_the_public_pages_still_work_from_outside(cluster: Cluster, outside: Outside) -> None:
    status, headers, _ = outside.curl(f"{cluster.url}/")
    assert status == 200
    assert headers.get("x-served-by") in cluster.was


@pytest.mark.parametrize("path", ["/", "/no-such-page/", "/admin/", "/static/no-such-file.css"])
def test_no_server_names_a_version_or_gunicorn(
    cluster: Cluster, outside: Outside, path: str
) -> None:
    status, headers, body = outside.curl(f"{cluster.url}{path}")
    assert headers.get("server") == "Apache", f"{path} ({status}): Server: {headers.get('server')}"
    assert "gunicorn" not in body.lower()
    assert "Apache/2" not in body, f"{path} ({status}) shows Apache's version in its body"


def https_url(cluster: Cluster) -> str:
    port = cluster.balancer.get("https_port")
    if not port:
        pytest.skip("the balancer serves no HTTPS")
    return f"https://{cluster.lb}:{port}/healthz"


@pytest.mark.parametrize("version", ["tls1", "tls1_1"])
def test_old_tls_versions_are_refused(cluster: Cluster, outside: Outside, version: str) -> None:
    url = https_url(cluster)
    port = url.split(":")[2].split("/")[0]
    # SECLEVEL=0: the client really offers the old version; only the server can refuse it.
    proc = outside.run(
        "openssl", "s_client", "-connect", f"{cluster.lb}:{port}", f"-{version}",
        "-cipher", "DEFAULT:@SECLEVEL=0", timeout=20,
    )  # fmt: skip
    assert proc.returncode != 0, f"{version} was accepted:\n{proc.stdout[-500:]}"


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_current_tls_versions_are_served(cluster: Cluster, outside: Outside, version: str) -> None:
    url = https_url(cluster)
    proc = outside.run(
        "curl",
        "-sk",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        f"--tlsv{version}",
        "--tls-max",
        version,
        "--max-time",
        "10",
        url,
    )
    assert proc.returncode == 0 and proc.stdout == "200", (proc.stdout, proc.stderr)


def test_no_hsts_without_real_names_and_certificate(cluster: Cluster, outside: Outside) -> None:
    url = https_url(cluster)
    _, headers, _ = outside.curl(url, "-k")
    if cluster.balancer["hsts"]:
        assert "max-age=" in headers.get("strict-transport-security", "")
    else:
        assert "strict-transport-security" not in headers


# --- Rate limits ----------------------------------------------------------------------------------

# Run inside the outside namespace: POST /accounts/guest/ `count` times, each from a fresh client
# (a guest login rotates the CSRF token), and print every answer's status and serving WAS.
GUEST_FLOOD = """
import json, re, sys, requests
base, count = sys.argv[1], int(sys.argv[2])
answers = []
for _ in range(count):
    s = requests.Session()
    page = s.get(base + "/accounts/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    r = s.post(base + "/accounts/guest/", data={"csrfmiddlewaretoken": token},
               allow_redirects=False, timeout=10)
    answers.append([r.status_code, r.headers.get("X-Served-By", ""),
                    r.headers.get("Retry-After", ""), "try again" in r.text.lower()])
print(json.dumps(answers))
"""


def test_guest_accounts_are_rate_limited_alike_on_every_was(
    cluster: Cluster, outside: Outside
) -> None:
    proc = outside.run(sys.executable, "-c", GUEST_FLOOD, cluster.url, "100", timeout=300)
    assert proc.returncode == 0, proc.stderr
    answers = json.loads(proc.stdout)
    statuses = [a[0] for a in answers]
    assert set(statuses) <= {302, 429}, statuses
    first_refusal = statuses.index(429)
    assert first_refusal > 0, "the very first guest was refused"
    assert 429 not in statuses[:first_refusal] and set(statuses[first_refusal:]) == {429}, statuses
    refused_by = {a[1] for a in answers if a[0] == 429}
    assert refused_by == set(cluster.was), f"429 came from {refused_by}, not from every WAS"
    assert all(a[2].isdigit() and a[3] for a in answers if a[0] == 429), "429 without Retry-After"


# --- Uploads --------------------------------------------------------------------------------------


def declared_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height pixels (its data is a few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def gunicorn_peak_memory(cluster: Cluster, was: str) -> tuple[int, int]:
    """Sum of every gunicorn process's peak RSS on a WAS (an upper bound of its peak), and the
    unit's MemoryMax, in bytes."""
    fact = host_fact(get_host(cluster.inventory, was), "django_was")
    service = shlex.quote(str(fact["service"]))
    script = (
        f"pids=$(systemctl show -p MainPID --value {service}); "
        f"cg=$(systemctl show -p ControlGroup --value {service}); "
        "for f in /sys/fs/cgroup/unified$cg/cgroup.procs /sys/fs/cgroup$cg/cgroup.procs; do "
        '[ -r "$f" ] && pids="$pids $(cat $f)"; done; '
        "for p in $(echo $pids | tr ' ' '\\n' | sort -u); do "
        "awk '/VmHWM/ {print $2}' /proc/$p/status 2>/dev/null; done; "
        f"echo max $(systemctl show -p MemoryMax --value {service})"
    )
    lines = lab(cluster.inventory, "ssh", was, script).split()
    limit = int(lines[-1])
    peaks = [int(x) * 1024 for x in lines[:-2]]
    assert peaks, f"no gunicorn process found on {was}"
    return sum(peaks), limit


@pytest.mark.parametrize(("width", "height"), [(40_000, 40_000), (8_000, 5_000)])
def test_an_image_bomb_is_a_form_error_and_memory_stays_bounded(
    cluster: Cluster, width: int, height: int
) -> None:
    was = sorted(cluster.was)[0]
    client = pinned(cluster, was)
    sign_up(cluster, client, f"bomb{uuid.uuid4().hex[:8]}")
    bomb = declared_png(width, height)
    assert len(bomb) < 200
    response = post_form(
        client,
        f"{cluster.url}/posts/new/",
        {"caption": "not really an image"},
        files={"image": ("bomb.png", bomb, "image/png")},
    )
    assert 400 <= response.status_code < 500, response.status_code
    assert "megapixels" in response.text, response.text[:2000]
    peak, limit = gunicorn_peak_memory(cluster, was)
    assert peak < limit, f"gunicorn on {was} peaked at {peak} bytes, above its limit {limit}"


# --- Sessions -------------------------------------------------------------------------------------


def redis_services(cluster: Cluster) -> list[tuple[str, str]]:
    """Every Redis host and its service: an outage stops them all (with Sentinel, stopping one
    would only move the master)."""
    return [
        (name, str(host_fact(get_host(cluster.inventory, name), "redis")["service"]))
        for name in group_hosts(cluster.inventory, "redis")
    ]


def session_cookies(cluster: Cluster, session: requests.Session) -> dict[str, Any]:
    """The session cookie alone: no CSRF token, no sticky cookie (a replay meets every WAS)."""
    return {c.name: c.value for c in session.cookies if c.name not in ("csrftoken", cluster.cookie)}


def test_a_logout_during_a_redis_outage_stays_final(cluster: Cluster) -> None:
    was = sorted(cluster.was)[0]
    client = pinned(cluster, was)
    username = f"logout{uuid.uuid4().hex[:8]}"
    sign_up(cluster, client, username)
    assert logged_in_as(client.get(f"{cluster.url}/", timeout=10).text) == username
    cookies = session_cookies(cluster, client)
    outage = redis_services(cluster)
    time.sleep(2)  # Redis syncs its append-only file every second: the session survives the stop
    for redis, service in outage:
        lab(cluster.inventory, "ssh", redis, f"systemctl stop {shlex.quote(service)}")
    try:
        # Logging out is a POST (Django's LogoutView); the feed page holds the CSRF token.
        token = csrf_token(client.get(f"{cluster.url}/", timeout=10).text)
        response = client.post(
            f"{cluster.url}/accounts/logout/",
            data={"csrfmiddlewaretoken": token},
            headers={"Referer": f"{cluster.url}/"},
            timeout=30,
        )
        assert response.status_code == 200 and logged_in_as(response.text) == ""
    finally:
        for redis, service in outage:
            lab(cluster.inventory, "ssh", redis, f"systemctl start {shlex.quote(service)}")
    wait_for(
        "the cluster to be ready with Redis back",
        lambda: requests.get(f"{cluster.url}/readyz", timeout=10).status_code == 200 or None,
        60,
    )
    replay = requests.Session()
    replay.cookies.update(cookies)
    for _ in range(len(cluster.was) * 2):
        page = replay.get(f"{cluster.url}/", timeout=10)
        assert page.status_code == 200
        assert logged_in_as(page.text) == "", "the old session came back after Redis returned"
