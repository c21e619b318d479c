"""The CPU and balancer metrics writer (roles/exporters/files/host_metrics.py): where the host's
CPU comes from, its quota, Apache's balancer-manager page, and the textfile node_exporter reads."""

from __future__ import annotations

import http.server
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from repo_module import REPO, load

metrics = load("roles/exporters/files/host_metrics.py")

CPU_STAT = """usage_usec 123456789
user_usec 100000000
system_usec 23456789
nr_periods 0
nr_throttled 0
throttled_usec 0
"""
PROC_STAT = """cpu  1000 20 300 50000 400 5 6 7 80 9
cpu0 500 10 150 25000 200 2 3 3 40 4
intr 12345
"""


def cgroup(root: Path, name: str, cpu_max: str | None = None) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "cpu.stat").write_text(CPU_STAT)
    if cpu_max is not None:
        (directory / "cpu.max").write_text(cpu_max)
    return directory


# --- CPU ----------------------------------------------------------------------------------------


def test_cpu_comes_from_the_cgroup_v2_usage(tmp_path: Path) -> None:
    v2 = cgroup(tmp_path, "cgroup")
    assert metrics.cpu_seconds([v2, tmp_path / "unified"], tmp_path / "none") == (
        123.456789,
        "cgroup",
    )


def test_cpu_comes_from_the_unified_hierarchy_of_a_hybrid_host(tmp_path: Path) -> None:
    (tmp_path / "cgroup").mkdir()  # v1 controllers live below it: no cpu.stat of its own
    unified = cgroup(tmp_path, "cgroup/unified")
    assert metrics.cpu_seconds([tmp_path / "cgroup", unified]) == (123.456789, "cgroup")


def test_without_a_cgroup_cpu_is_the_machines_busy_time(tmp_path: Path) -> None:
    proc_stat = tmp_path / "stat"
    proc_stat.write_text(PROC_STAT)
    # user nice system irq softirq steal; idle and iowait are not busy, guest is inside user.
    busy = 1000 + 20 + 300 + 5 + 6 + 7
    seconds, source = metrics.cpu_seconds([tmp_path / "cgroup"], proc_stat)
    assert (seconds, source) == (busy / os.sysconf("SC_CLK_TCK"), "procstat")
    assert metrics.procstat_cpu_seconds(proc_stat, user_hz=100) == busy / 100


def test_a_cpu_stat_without_usage_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "cpu.stat").write_text("nr_periods 0\n")
    with pytest.raises(ValueError, match="no usage_usec"):
        metrics.cgroup_cpu_seconds(tmp_path)


@pytest.mark.parametrize(
    ("cpu_max", "cpus"),
    [
        ("150000 100000\n", 1.5),  # CPUQuota=150%
        ("max 100000\n", 4),  # no quota
        ("800000 100000\n", 4),  # a quota above the CPUs it may run on
        (None, 4),  # no cpu controller in this cgroup
    ],
)
def test_usable_cpus_are_the_quota_else_the_affinity(
    tmp_path: Path, cpu_max: str | None, cpus: float
) -> None:
    v2 = cgroup(tmp_path, "cgroup", cpu_max)
    assert metrics.usable_cpus([v2], affinity=4) == cpus


def test_usable_cpus_without_a_cgroup_are_the_affinity(tmp_path: Path) -> None:
    assert metrics.usable_cpus([tmp_path]) == len(os.sched_getaffinity(0))


# --- The balancer -------------------------------------------------------------------------------

NONCE = "6a1f4c2e-0b7d-4f39-9c55-3e8d2a7b1f04"
ADMIN_NONCE = "0d9e8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b"
STYLE = (
    "table {\n border-width: 1px;\n border-spacing: 3px;\n border-style: solid;\n"
    " border-color: gray;\n border-collapse: collapse;\n background-color: white;\n"
    " text-align: center;\n}\nth {\n border-width: 1px;\n padding: 2px;\n"
    " border-style: dotted;\n border-color: gray;\n background-color: lightgray;\n"
    " text-align: center;\n}\ntd {\n border-width: 1px;\n padding: 2px;\n"
    " border-style: dotted;\n border-color: gray;\n background-color: white;\n"
    " text-align: center;\n}\n"
)
MEMBER_HEADER = (
    "\n\n<table><tr><th>Worker URL</th><th>Route</th><th>RouteRedir</th><th>Factor</th>"
    "<th>Set</th><th>Status</th><th>Elected</th><th>Busy</th><th>Load</th><th>To</th>"
    "<th>From</th><th>HC Method</th><th>HC Interval</th><th>Passes</th><th>Fails</th>"
    "<th>HC uri</th><th>HC Expr</th></tr>\n"
)


def balancer_table(name: str, nonce: str, route_cookie: str, members: int) -> str:
    return (
        "<hr />\n<h3>LoadBalancer Status for "
        f'<a href="/balancer-manager?b={name}&amp;nonce={nonce}">balancer://{name}</a>'
        f" [p9b6e2f41_{name}]</h3>\n"
        "\n\n<table><tr><th>MaxMembers</th><th>StickySession</th><th>DisableFailover</th>"
        "<th>Timeout</th><th>FailoverAttempts</th><th>Method</th><th>Path</th><th>Active</th>"
        f"</tr>\n<tr><td>{members} [{members} Used]</td>\n<td>{route_cookie}</td><td>Off</td>\n"
        "<td>0</td><td>3</td>\n<td>byrequests</td>\n<td>/</td>\n<td>Yes</td>\n</tr>\n</table>\n"
        "<br />" + MEMBER_HEADER
    )


def member_row(balancer: str, nonce: str, url: str, route: str, status: str) -> str:
    return (
        f'<tr>\n<td><a href="/balancer-manager?b={balancer}&amp;w={url}&amp;nonce={nonce}">'
        f"{url}</a></td><td>{route}</td><td></td><td>1.00</td><td>0</td><td>{status}</td>"
        "<td>1520</td><td>0</td><td>0</td><td>1.2M</td><td> 35M</td><td>GET</td>"
        "<td>5000ms</td><td>1 (0)</td><td>1 (0)</td><td>/healthz/</td><td>ok2xx</td></tr>\n"
    )


# The page as Apache 2.4.62 prints it (mod_proxy_balancer.c, balancer_display_page) with
# mod_proxy_hcheck loaded: two balancers, the statuses of proxy_wstat_tbl ("Ok " is added only
# for a usable member), a member without a route, the health check expressions' table.
PAGE = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n'
    "<html><head><title>Balancer Manager</title>\n"
    f"<style type='text/css'>\n{STYLE}</style>\n</head>\n"
    "<body><h1>Load Balancer Manager for 127.0.0.1</h1>\n\n"
    "<dl><dt>Server Version: Apache/2.4.62 (Debian)</dt>\n"
    "<dt>Server Built: 2024-10-04T15:21:08</dt>\n"
    "<dt>Balancer changes will NOT be persisted on restart.</dt>"
    "<dt>Balancers are inherited from main server.</dt>"
    "<dt>ProxyPass settings are inherited from main server.</dt></dl>\n"
    + balancer_table("cluster", NONCE, "ROUTEID", 5)
    + member_row("cluster", NONCE, "http://10.77.0.11:8000", "was1", "Init Ok ")
    + member_row("cluster", NONCE, "http://10.77.0.12:8000", "was2", "Init Err ")
    + member_row("cluster", NONCE, "http://10.77.0.13:8000", "was3", "Init HcFl ")
    + member_row("cluster", NONCE, "http://10.77.0.14:8000", "was4", "Init Dis ")
    + member_row("cluster", NONCE, "http://10.77.0.15:8000", "was5", "Init Drn Ok ")
    + "</table>\n"
    + balancer_table("static", ADMIN_NONCE, " (None) ", 2)
    + member_row("static", ADMIN_NONCE, "http://10.77.0.11:8000", "was1", "Init Ok ")
    + member_row("static", ADMIN_NONCE, "http://10.77.0.16:8000", "", "Init Ok ")
    + "</table>\n<hr />\n"
    "\n\n<table><tr><th colspan='2'>Health check cond. expressions:</th></tr>\n"
    "<tr><th>Expr name</th><th>Expression</th></tr>\n"
    "<tr><td>ok2xx</td><td>%{REQUEST_STATUS} =~ /^[2]/</td></tr>\n"
    "</table><hr/>\n"
    "<address>Apache/2.4.62 (Debian) Server at 127.0.0.1 Port 80</address>\n"
    "</body></html>\n"
)


def test_the_balancer_manager_page_gives_each_members_state() -> None:
    assert metrics.parse_balancer_manager(PAGE) == [
        ("was1", True),
        ("was2", False),  # Err: the balancer found it failing
        ("was3", False),  # HcFl: it fails its health check
        ("was4", False),  # Dis: disabled by hand
        ("was5", False),  # Drn: draining, no new requests
        ("10.77.0.16", True),  # no route: its URL's host
    ]


def test_a_member_down_in_any_balancer_is_down() -> None:
    second = member_row("static", ADMIN_NONCE, "http://10.77.0.11:8000", "was1", "Init Ok ")
    assert second in PAGE
    page = PAGE.replace(second, second.replace("Init Ok ", "Init Stop "))
    assert metrics.parse_balancer_manager(page)[0] == ("was1", False)


@pytest.mark.parametrize(
    ("status", "up"),
    [
        ("Init Ok ", True),
        ("Init Ign Ok ", True),
        ("Init Stby Ok ", True),
        ("Init Err ", False),
        ("Init HcFl ", False),
        ("Init Dis ", False),
        ("Init Stop ", False),
        ("Init Drn Ok ", False),
        ("??? ", False),
    ],
)
def test_a_member_is_up_only_when_ok_and_in_service(status: str, up: bool) -> None:
    assert metrics.member_is_up(status) is up


def test_older_pages_without_health_check_columns_are_read() -> None:
    page = (
        "<table><tr><th>Worker URL</th><th>Route</th><th>RouteRedir</th><th>Factor</th>"
        "<th>Set</th><th>Status</th><th>Elected</th></tr>\n"
        '<tr>\n<td><a href="/balancer-manager?b=c&w=http://was1.lab:8000">'
        "http://was1.lab:8000</a></td><td></td><td></td><td>1</td><td>0</td>"
        "<td>Init Err </td><td>3</td></tr>\n</table>\n"
    )
    assert metrics.parse_balancer_manager(page) == [("was1.lab", False)]


@pytest.mark.parametrize(
    "page", ["", "<html><body><h1>Not Found</h1></body></html>", "<table><tr><td>1</td></tr>"]
)
def test_a_page_without_members_table_is_not_a_balancer_manager(page: str) -> None:
    with pytest.raises(ValueError, match="no table of balancer members"):
        metrics.parse_balancer_manager(page)


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGE.encode("iso-8859-1")
        self.send_response(200 if self.path == "/balancer-manager" else 404)
        self.send_header("Content-Type", "text/html; charset=ISO-8859-1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def apache() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_page_is_read_directly_whatever_the_proxy_settings(
    apache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens there
    members = metrics.read_balancer_manager(f"{apache}/balancer-manager")
    assert members[0] == ("was1", True)
    with pytest.raises(OSError, match="404"):
        metrics.read_balancer_manager(f"{apache}/elsewhere")


# --- The textfile -------------------------------------------------------------------------------

EXPECTED = """\
# HELP cluster_host_cpu_seconds_total CPU time used by this host's own cgroup (see cluster_host_cpu_source).
# TYPE cluster_host_cpu_seconds_total counter
cluster_host_cpu_seconds_total 123.456789
# HELP cluster_host_cpu_source Where cluster_host_cpu_seconds_total comes from: cgroup, or procstat (the whole machine).
# TYPE cluster_host_cpu_source gauge
cluster_host_cpu_source{source="cgroup"} 1
# HELP cluster_host_cpus CPUs this host may use: as declared (--cpus), else its cgroup's quota, else its affinity.
# TYPE cluster_host_cpus gauge
cluster_host_cpus 1.5
# HELP cluster_lb_manager_up Whether the balancer-manager page could be read.
# TYPE cluster_lb_manager_up gauge
cluster_lb_manager_up 1
# HELP cluster_lb_member_up Whether the balancer sends new requests to the member (its route or host).
# TYPE cluster_lb_member_up gauge
cluster_lb_member_up{member="was1"} 1
cluster_lb_member_up{member="was2"} 0
"""  # noqa: E501 (HELP lines are as long as they are)


def test_the_textfile_of_a_balancer() -> None:
    members = [("was1", True), ("was2", False)]
    assert metrics.render(123.456789, "cgroup", 1.5, members, manager_checked=True) == EXPECTED


def test_the_textfile_of_a_balancer_whose_page_cannot_be_read() -> None:
    text = metrics.render(123.456789, "cgroup", 1.5, None, manager_checked=True)
    assert text.endswith("# TYPE cluster_lb_manager_up gauge\ncluster_lb_manager_up 0\n")
    assert "cluster_lb_member_up" not in text


def test_the_textfile_of_a_host_that_is_no_balancer() -> None:
    text = metrics.render(5.0, "procstat", 2, None)
    assert text.splitlines()[2::3] == [
        "cluster_host_cpu_seconds_total 5.0",
        'cluster_host_cpu_source{source="procstat"} 1',
        "cluster_host_cpus 2",
    ]
    assert "cluster_lb" not in text


def test_a_label_value_is_escaped() -> None:
    text = metrics.render(1.0, "cgroup", 1, [('a"b\\c\nd', True)], manager_checked=True)
    assert 'cluster_lb_member_up{member="a\\"b\\\\c\\nd"} 1' in text


def test_the_textfile_is_replaced_whole_and_readable(tmp_path: Path) -> None:
    (tmp_path / "cluster.prom").write_text("old\n")
    path = metrics.write_atomically(tmp_path, "new\n")
    assert (path.name, path.read_text()) == ("cluster.prom", "new\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # node_exporter runs as its own user
    assert [p.name for p in tmp_path.iterdir()] == ["cluster.prom"]
    with pytest.raises(TypeError):
        metrics.write_atomically(tmp_path, b"not text")
    assert [p.name for p in tmp_path.iterdir()] == ["cluster.prom"]
    assert path.read_text() == "new\n"  # a failed write leaves the last good file


def test_once_writes_the_file_and_an_unreadable_page_is_a_metric(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "roles/exporters/files/host_metrics.py")]
        + ["--dir", str(tmp_path), "--once", "--balancer-manager", "http://127.0.0.1:9/"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "cluster.prom").read_text()
    assert "cluster_lb_manager_up 0\n" in text and "cluster_host_cpus " in text
    assert "cannot read the balancer manager http://127.0.0.1:9/" in done.stderr


def test_a_declared_cpu_count_is_the_capacity_and_a_wrong_one_refused(tmp_path: Path) -> None:
    script = [sys.executable, str(REPO / "roles/exporters/files/host_metrics.py")]
    done = subprocess.run(
        [*script, "--dir", str(tmp_path), "--once", "--cpus", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "cluster_host_cpus 1.0\n" in (tmp_path / "cluster.prom").read_text()
    refused = subprocess.run(
        [*script, "--dir", str(tmp_path), "--once", "--cpus", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2 and "--cpus must be a positive number" in refused.stderr
