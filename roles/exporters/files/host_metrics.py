#!/usr/bin/python3
"""host-metrics: this host's own CPU use (and a balancer's member states) for node_exporter.

  host_metrics.py --dir /var/lib/prometheus/node-exporter --interval 5 \\
      [--balancer-manager http://127.0.0.1/balancer-manager] [--cpus N]

Every --interval seconds it writes DIR/cluster.prom (Prometheus text format, read by
node_exporter's textfile collector), whole or not at all (temporary file, then rename):

  cluster_host_cpu_seconds_total   CPU seconds used by this host's cgroup. The lab's hosts are
                                   containers on one kernel: /proc/stat (and node_exporter's
                                   node_cpu_seconds_total) counts the whole machine, the cgroup
                                   only the host. /proc/stat only where there is no cgroup v2.
  cluster_host_cpu_source{source}  where that comes from: cgroup or procstat
  cluster_host_cpus                CPUs the host may use: --cpus when given (the lab sizes its
                                   hosts so, having no CPU quota to read), else its cgroup's
                                   quota, else its affinity
  cluster_lb_manager_up            (--balancer-manager) whether the page could be read
  cluster_lb_member_up{member}     (--balancer-manager) 1 when the balancer sends requests to
                                   the member (a route, e.g. was1, else the member URL's host)

Stops cleanly on SIGTERM or SIGINT. Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import signal
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from html.parser import HTMLParser
from pathlib import Path
from types import FrameType

CGROUP_DIRS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))  # v2, then hybrid
PROC_STAT = Path("/proc/stat")
FILE_NAME = "cluster.prom"
FETCH_TIMEOUT = 2.0
# Status words of Apache's balancer-manager (proxy_wstat_tbl in mod_proxy.c) that keep a member
# from new requests; "Ok" is printed only for a usable member. Draining counts as out.
OUT_OF_SERVICE = {"Err", "HcFl", "Dis", "Stop", "Drn", "Shut"}
log = logging.getLogger("host-metrics")


# --- CPU ----------------------------------------------------------------------------------------


def cgroup_dir(candidates: Sequence[Path] = CGROUP_DIRS) -> Path | None:
    """The first cgroup v2 directory with a cpu.stat, None when there is none."""
    return next((d for d in candidates if (d / "cpu.stat").is_file()), None)


def cgroup_cpu_seconds(directory: Path) -> float:
    """usage_usec of the cgroup's cpu.stat, in seconds."""
    path = directory / "cpu.stat"
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1_000_000
    raise ValueError(f"{path} has no usage_usec line")


def procstat_cpu_seconds(path: Path = PROC_STAT, user_hz: int | None = None) -> float:
    """Busy CPU seconds of the whole machine: the first "cpu" line of /proc/stat without idle and
    iowait. Only user..steal count: guest and guest_nice are already inside user and nice."""
    hz = user_hz or os.sysconf("SC_CLK_TCK")
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
            return (sum(ticks) - ticks[3] - ticks[4]) / hz
    raise ValueError(f"{path} has no cpu line")


def cpu_seconds(
    candidates: Sequence[Path] = CGROUP_DIRS, proc_stat: Path = PROC_STAT
) -> tuple[float, str]:
    """This host's CPU seconds and their source: "cgroup", else "procstat"."""
    directory = cgroup_dir(candidates)
    if directory is not None:
        return cgroup_cpu_seconds(directory), "cgroup"
    return procstat_cpu_seconds(proc_stat), "procstat"


def usable_cpus(candidates: Sequence[Path] = CGROUP_DIRS, affinity: int | None = None) -> float:
    """The CPUs the host may use: the quota in its cgroup's cpu.max (quota/period, at most the
    CPUs it may run on), else the CPUs it may run on."""
    allowed = affinity if affinity is not None else len(os.sched_getaffinity(0))
    directory = cgroup_dir(candidates)
    if directory is not None and (directory / "cpu.max").is_file():
        fields = (directory / "cpu.max").read_text().split()
        if len(fields) == 2 and fields[0] != "max":
            quota = int(fields[0]) / int(fields[1])
            return min(quota, allowed)
    return allowed


# --- The balancer -------------------------------------------------------------------------------


class _Tables(HTMLParser):
    """Every <table> of a page as rows of cell texts (<th> and <td> alike)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self._open: list[list[list[str]]] = []  # nested tables: innermost last
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._open.append([])
        elif tag == "tr" and self._open:
            self._close_cell()
            self._open[-1].append([])
        elif tag in ("td", "th") and self._open and self._open[-1]:
            self._close_cell()
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th", "tr"):
            self._close_cell()
        elif tag == "table" and self._open:
            self._close_cell()
            self.tables.append(self._open.pop())

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def _close_cell(self) -> None:
        if self._cell is not None and self._open and self._open[-1]:
            self._open[-1][-1].append("".join(self._cell))
        self._cell = None


def member_is_up(status: str) -> bool:
    """Whether a balancer-manager status ("Init Ok ", "Init Err ", "Init HcFl ", ...) lets the
    member take new requests."""
    words = set(status.split())
    return "Ok" in words and not words & OUT_OF_SERVICE


def member_name(url: str, route: str) -> str:
    """The member's label: its route (our routes are host names), else its URL's host."""
    return route.strip() or urllib.parse.urlsplit(url.strip()).hostname or url.strip()


def parse_balancer_manager(page: str) -> list[tuple[str, bool]]:
    """(member, up) for every BalancerMember on Apache 2.4's balancer-manager page, in page
    order. A member listed by several balancers is up only when it is up in each of them.
    Raises ValueError when the page has no table of members (not a balancer-manager page)."""
    parser = _Tables()
    parser.feed(page)
    parser.close()
    states: dict[str, bool] = {}
    found = False
    for table in parser.tables:
        header = [cell.strip() for cell in table[0]] if table else []
        if "Worker URL" not in header or "Status" not in header:
            continue
        found = True
        url_at, status_at = header.index("Worker URL"), header.index("Status")
        route_at = header.index("Route") if "Route" in header else None
        for row in table[1:]:
            if len(row) <= max(url_at, status_at):
                continue
            route = row[route_at] if route_at is not None and route_at < len(row) else ""
            member = member_name(row[url_at], route)
            states[member] = states.get(member, True) and member_is_up(row[status_at])
    if not found:
        raise ValueError("no table of balancer members (Worker URL, Status) on the page")
    return list(states.items())


def read_balancer_manager(url: str, timeout: float = FETCH_TIMEOUT) -> list[tuple[str, bool]]:
    """The members of the balancer-manager page at url; OSError or ValueError when it cannot be
    read. No proxy: the page is on this host, whatever http_proxy says."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            charset = response.headers.get_content_charset() or "iso-8859-1"
            page = response.read().decode(charset, errors="replace")
    except http.client.HTTPException as exc:  # a malformed answer; HTTP errors are OSErrors
        raise OSError(f"bad answer: {exc!r}") from exc
    return parse_balancer_manager(page)


# --- The textfile -------------------------------------------------------------------------------


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(value: float) -> str:
    return repr(value) if isinstance(value, float) else str(int(value))


def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> str:
    """One metric family: HELP, TYPE, then its samples as (labels, value)."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {number(value)}" for labels, value in samples]
    return "\n".join(lines) + "\n"


def render(
    cpu: float,
    source: str,
    cpus: float,
    balancer: list[tuple[str, bool]] | None = None,
    manager_checked: bool = False,
) -> str:
    """The textfile. balancer is None when the page could not be read; manager_checked says
    whether there was a page to read (--balancer-manager)."""
    text = family(
        "cluster_host_cpu_seconds_total",
        "counter",
        "CPU time used by this host's own cgroup (see cluster_host_cpu_source).",
        [("", cpu)],
    )
    text += family(
        "cluster_host_cpu_source",
        "gauge",
        "Where cluster_host_cpu_seconds_total comes from: cgroup, or procstat (the whole machine).",
        [(f'{{source="{escape_label(source)}"}}', 1)],
    )
    text += family(
        "cluster_host_cpus",
        "gauge",
        "CPUs this host may use: as declared (--cpus), else its cgroup's quota, else its affinity.",
        [("", cpus)],
    )
    if manager_checked:
        text += family(
            "cluster_lb_manager_up",
            "gauge",
            "Whether the balancer-manager page could be read.",
            [("", int(balancer is not None))],
        )
        if balancer:
            text += family(
                "cluster_lb_member_up",
                "gauge",
                "Whether the balancer sends new requests to the member (its route or host).",
                [(f'{{member="{escape_label(m)}"}}', int(up)) for m, up in balancer],
            )
    return text


def write_atomically(directory: Path, text: str, name: str = FILE_NAME) -> Path:
    """directory/name replaced whole: node_exporter never reads half a file. The temporary name
    does not end in .prom, so the textfile collector skips it."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            os.fchmod(out.fileno(), 0o644)  # mkstemp's 0600 would hide it from node_exporter
            out.write(text)
        path = directory / name
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- The loop -----------------------------------------------------------------------------------


def collect(manager_url: str | None, cpus: float | None = None) -> tuple[str, str | None]:
    """The textfile now, and why the balancer-manager page could not be read (None: it could,
    or there is none to read)."""
    cpu, source = cpu_seconds()
    balancer: list[tuple[str, bool]] | None = None
    problem = None
    if manager_url:
        try:
            balancer = read_balancer_manager(manager_url)
        except (OSError, ValueError) as exc:
            problem = f"cannot read the balancer manager {manager_url}: {exc}"
    capacity = cpus if cpus else usable_cpus()
    text = render(cpu, source, capacity, balancer, manager_checked=bool(manager_url))
    return text, problem


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="host-metrics", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/var/lib/prometheus/node-exporter"))
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between writes")
    parser.add_argument("--balancer-manager", metavar="URL", help="a balancer's manager page")
    parser.add_argument("--once", action="store_true", help="write once and exit")
    parser.add_argument(
        "--cpus", type=float, help="the host's CPUs, when no cgroup quota says (default: measured)"
    )
    args = parser.parse_args(argv)
    if args.cpus is not None and args.cpus <= 0:
        parser.error(f"--cpus must be a positive number of CPUs, not {args.cpus:g}")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if not args.dir.is_dir():
        print(
            f"host-metrics: {args.dir} is not a directory: create node_exporter's textfile "
            "directory or pass --dir",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()

    def stop_now(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stop_now)
    signal.signal(signal.SIGINT, stop_now)
    log.info("writing %s every %gs", args.dir / FILE_NAME, args.interval)
    reported: str | None = None
    while not stop.is_set():
        try:
            text, problem = collect(args.balancer_manager, args.cpus)
            write_atomically(args.dir, text)
        except (OSError, ValueError) as exc:
            problem = f"cannot write {args.dir / FILE_NAME}: {exc}"
            if args.once:
                print(f"host-metrics: {problem}", file=sys.stderr)
                return 1
        # A problem is logged when it appears and when it is gone, not every few seconds.
        if problem != reported:
            if problem:
                log.warning("%s", problem)
            else:
                log.info("recovered: %s", reported)
            reported = problem
        if args.once:
            break
        stop.wait(args.interval)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
