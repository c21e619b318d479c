"""Drills the tests and the bench share: break a part of the cluster under load, and measure. The
client is browser-like: it resends a GET once when the connection closed, or stayed silent, without
a response (RFC 9110, section 9.2.2, and RFC 9112, section 9.3.1: an idempotent request may be
retried automatically after a communication failure). Silence matters when a balancer dies with a
request in flight: its kernel dies with it, so nothing ever closes the connection, and the only sign
is that no response starts (a person would press reload). A page starts within a second here, so
`SILENT_SECONDS` without a byte means the connection is dead.
A failed request is one a visitor would see: an error status, or no answer even after that retry.
A raw failure is any request whose first attempt did not succeed."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from cluster_support import (
    address,
    copy_inventory,
    csrf_token,
    get_host,
    group_hosts,
    host_fact,
    logged_in_as,
    sentinel_command,
)
from testinfra.host import Host

from lab.network import netns_name

SAMPLE_SECONDS = 0.02
# How long the first attempt waits for a response to start before it counts as a dead connection.
SILENT_SECONDS = 5.0
REPO = Path(__file__).resolve().parents[1]
# A static file a drill's release changes, so its hashed name changes too.
CHANGED_STATIC = Path("core/static/core/app.css")


def get_like_a_browser(session: requests.Session, url: str, timeout: float = 15) -> str:
    """GET url; resend once if the connection closed, or stayed silent for SILENT_SECONDS, without
    a response. Returns the outcome: "ok:<X-Served-By>", "http <status>" or "error <exception>",
    prefixed "retried " when resent."""
    try:
        return outcome_of(session.get(url, timeout=(timeout, min(timeout, SILENT_SECONDS))))
    except (requests.ConnectionError, requests.ReadTimeout):
        pass  # closed, refused or silent without a response: resend below
    except requests.RequestException as exc:
        return f"error {type(exc).__name__}"
    try:
        return "retried " + outcome_of(session.get(url, timeout=timeout))
    except requests.RequestException as exc:
        return f"retried error {type(exc).__name__}"


def outcome_of(response: requests.Response) -> str:
    if response.ok:
        return f"ok:{response.headers.get('X-Served-By', '')}"
    return f"http {response.status_code}"


def failed(outcome: str) -> bool:
    """What the visitor saw was not a page, even after the one resend."""
    return not outcome.split()[-1].startswith("ok:")


def raw_failure(outcome: str) -> bool:
    """The first attempt did not succeed (resent, or failed)."""
    return not outcome.startswith("ok:")


# --- The balancers' floating address -------------------------------------------------------------


@dataclass(frozen=True)
class FloatingAddress:
    """Where the balancers' floating address is, read from each lab host's network namespace
    (the lab's own view: fast enough to sample every few milliseconds, and never wrong)."""

    lab_name: str
    address: str
    balancers: tuple[str, ...]

    def holders(self) -> list[str]:
        found = []
        for name in self.balancers:
            out = subprocess.run(
                ["ip", "-n", netns_name(self.lab_name, name), "-4", "-o", "addr", "show"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            if any(f" {self.address}/" in line for line in out.splitlines()):
                found.append(name)
        return found


@dataclass
class Watch:
    """Samples of who holds the address: (seconds since the watch began, holders)."""

    samples: list[tuple[float, tuple[str, ...]]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def most_holders(self) -> int:
        return max((len(h) for _, h in self.samples), default=0)

    def seconds_without_holder(self, after: float) -> float:
        pairs = zip(self.samples, self.samples[1:], strict=False)
        return sum(b[0] - a[0] for a, b in pairs if a[0] >= after and not a[1])

    def first_time(self, after: float, predicate: Callable[[tuple[str, ...]], bool]) -> float:
        return next((t for t, h in self.samples if t >= after and predicate(h)), -1.0)


def watch_holders(floating: FloatingAddress, stop: threading.Event, watch: Watch) -> None:
    while not stop.is_set():
        watch.samples.append((time.monotonic() - watch.started, tuple(floating.holders())))
        time.sleep(SAMPLE_SECONDS)


def balancer_failover(
    floating: FloatingAddress,
    url: str,
    fault: Callable[[str], None],
    concurrency: int = 8,
    warmup: float = 3.0,
    settle: float = 5.0,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Browser-like GETs of `url` from `concurrency` clients while `fault(holder)` breaks the
    balancer that holds the floating address; returns what happened, as a report."""
    stop_load, stop_watch = threading.Event(), threading.Event()
    watch = Watch()
    outcomes: list[tuple[float, float, str]] = []  # (sent, answered, outcome)
    lock = threading.Lock()

    def client() -> None:
        session = requests.Session()
        while not stop_load.is_set():
            sent = time.monotonic() - watch.started
            outcome = get_like_a_browser(session, url)
            session.cookies.clear()  # every request a new visitor: no stickiness
            with lock:
                outcomes.append((sent, time.monotonic() - watch.started, outcome))

    before = floating.holders()
    assert len(before) == 1, f"before the fault, {before or 'no balancer'} held {floating.address}"
    victim = before[0]
    watcher = threading.Thread(target=watch_holders, args=(floating, stop_watch, watch))
    watcher.start()
    try:
        with ThreadPoolExecutor(concurrency) as pool:
            for _ in range(concurrency):
                pool.submit(client)
            try:
                time.sleep(warmup)
                fault(victim)
                fault_done = time.monotonic() - watch.started
                deadline = time.monotonic() + timeout
                while not any(h and victim not in h for _, h in watch.samples[-5:]):
                    assert time.monotonic() < deadline, (
                        f"{floating.address} did not leave {victim} within {timeout:.0f} s"
                    )
                    time.sleep(SAMPLE_SECONDS)
                time.sleep(settle)
            finally:
                stop_load.set()
    finally:
        stop_watch.set()
        watcher.join()
    # The fault's instant: the victim lost the address (a crash takes it at once), or else the
    # fault's command returned (a dead service keeps it until the check notices).
    lost = watch.first_time(0, lambda h: victim not in h)
    fault_at = min(fault_done, lost) if lost >= 0 else fault_done
    moved_at = watch.first_time(fault_at, lambda h: bool(h) and victim not in h)
    after = watch.samples[-1][1]
    counts = Counter(outcome for _, _, outcome in outcomes)
    pages = sorted(t for _, t, o in outcomes if not failed(o))
    return {
        "victim": victim,
        "new_holder": after[0] if len(after) == 1 else list(after),
        "seconds_to_move": round(moved_at - fault_at, 2) if moved_at >= 0 else None,
        "seconds_without_holder": round(watch.seconds_without_holder(fault_at), 2),
        "most_holders_at_once": watch.most_holders(),
        "samples": len(watch.samples),
        "requests": len(outcomes),
        "raw_failures": sum(n for o, n in counts.items() if raw_failure(o)),
        "failed_after_one_retry": sum(n for o, n in counts.items() if failed(o)),
        # Sent once the address had moved (plus a second for the clients' ARP caches to follow).
        "failed_after_the_move": sum(
            1 for sent, _, o in outcomes if failed(o) and moved_at >= 0 and sent > moved_at + 1
        ),
        # The longest time no client received a page (answers arrive while others wait).
        "longest_seconds_without_a_page": round(
            max((b - a for a, b in zip(pages, pages[1:], strict=False)), default=0.0), 2
        ),
        "outcomes": dict(counts),
    }


def hold_steady(floating: FloatingAddress, seconds: float) -> set[tuple[str, ...]]:
    """Every set of holders seen over `seconds` (a steady cluster shows exactly one)."""
    seen: set[tuple[str, ...]] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(tuple(floating.holders()))
        time.sleep(SAMPLE_SECONDS * 5)
    return seen


# --- A new release of the app --------------------------------------------------------------------


def new_release_tree(target: Path, label: str = "the deploy drill's release") -> Path:
    """A copy of app/ whose static file (so its hashed name) and release id differ."""
    tree = target / "app"
    skip = shutil.ignore_patterns("__pycache__", "var", "tests")
    shutil.copytree(REPO / "app", tree, ignore=skip)
    css = tree / CHANGED_STATIC
    css.write_text(css.read_text() + f"\n/* {label} */\n")
    return tree


# --- Redis Sentinel ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sentinels:
    """Where the sentinels answer, read while every host is up, and a WAS to ask them from (the
    app's own password, from its environment file)."""

    was: Host
    env_file: str
    where: dict[str, tuple[str, int]]  # sentinel host -> (address, port)
    service: str

    @classmethod
    def read(cls, inventory: Path) -> Sentinels:
        was = get_host(inventory, group_hosts(inventory, "was")[0])
        names = group_hosts(inventory, "sentinel")
        facts = {n: host_fact(get_host(inventory, n), "sentinel") for n in names}
        return cls(
            was=was,
            env_file=host_fact(was, "django_was")["env_file"],
            where={n: (address(inventory, n), int(f["port"])) for n, f in facts.items()},
            service=str(facts[names[0]]["master_name"]),
        )

    def master(self, asked: str | None = None) -> str:
        """The master's address as a sentinel names it (the first that answers, or `asked`)."""
        for name in [asked] if asked else list(self.where):
            result = self.was.run(
                sentinel_command(
                    self.env_file,
                    *self.where[name],
                    "SENTINEL",
                    "get-master-addr-by-name",
                    self.service,
                )
            )
            if result.rc == 0 and result.stdout.split():
                return result.stdout.split()[0]
        raise AssertionError("no sentinel answered")


def redis_name(inventory: Path, redis_address: str) -> str:
    names = [n for n in group_hosts(inventory, "redis") if address(inventory, n) == redis_address]
    assert names, f"{redis_address} is no Redis host of {inventory}"
    return names[0]


@dataclass
class Visitor:
    """A logged-in visitor who reads the feed and signs the guestbook, all the time."""

    base_url: str
    username: str = field(default_factory=lambda: f"sentinel{uuid.uuid4().hex[:8]}")
    session: requests.Session = field(default_factory=requests.Session)
    pages: int = 0
    writes: int = 0
    problems: list[str] = field(default_factory=list)
    slowest: float = 0.0

    def visit(self, stop: threading.Event) -> None:
        url = self.base_url
        while not stop.is_set():
            started = time.monotonic()
            try:
                page = self.session.get(f"{url}/", timeout=30)
                if page.status_code != 200 or logged_in_as(page.text) != self.username:
                    self.problems.append(f"GET / {page.status_code} as {logged_in_as(page.text)!r}")
                self.pages += 1
                form = self.session.get(f"{url}/guestbook/new/", timeout=30)
                answer = self.session.post(
                    f"{url}/guestbook/new/",
                    data={
                        "csrfmiddlewaretoken": csrf_token(form.text),
                        "name": self.username,
                        "email": f"{self.username}@example.com",
                        "message": f"written during a Redis failover, {self.writes}",
                    },
                    headers={"Referer": f"{url}/guestbook/new/"},
                    allow_redirects=False,
                    timeout=30,
                )
                if answer.status_code not in (302, 303):
                    self.problems.append(f"POST /guestbook/new/ {answer.status_code}")
                self.writes += 1
            except (requests.RequestException, AssertionError) as exc:
                self.problems.append(f"{type(exc).__name__}: {exc}")
            self.slowest = max(self.slowest, time.monotonic() - started)
            time.sleep(0.2)


def redis_failover(
    inventory: Path,
    base_url: str,
    visitor: Visitor,
    kill: Callable[[str], None],
    start: Callable[[str], None],
    timeout: float = 60,
) -> dict[str, Any]:
    """Kill the Redis master the sentinels name while `visitor` (logged in) keeps going, and start
    it again after. Returns what happened, as a report (the new master once all sentinels agree)."""
    sentinels = Sentinels.read(inventory)
    old_master = sentinels.master()
    victim = redis_name(inventory, old_master)
    stop = threading.Event()
    worker = threading.Thread(target=visitor.visit, args=(stop,))
    worker.start()
    new_master, promoted_after = "", -1.0
    try:
        time.sleep(3)
        kill(victim)
        killed_at = time.monotonic()
        while time.monotonic() < killed_at + timeout:
            named = sentinels.master()
            if named != old_master:
                new_master, promoted_after = named, time.monotonic() - killed_at
                break
            time.sleep(0.2)
        time.sleep(5)  # the visitor keeps going on the new master
    finally:
        stop.set()
        worker.join()
        start(victim)
    deadline = time.monotonic() + timeout
    while new_master and not all(sentinels.master(s) == new_master for s in sentinels.where):
        assert time.monotonic() < deadline, "the sentinels did not agree on the new master"
        time.sleep(0.5)
    return {
        "victim": victim,
        "new_master": new_master,
        "seconds_to_promote": round(promoted_after, 1),
        "pages": visitor.pages,
        "writes": visitor.writes,
        "problems": len(visitor.problems),
        "first_problems": visitor.problems[:5],
        "slowest_visit_seconds": round(visitor.slowest, 1),
    }


# --- The database primary ------------------------------------------------------------------------


@dataclass
class DbServers:
    """The db hosts, asked as root on each (their own MariaDB, through the unix socket)."""

    inventory: Path
    names: list[str]

    @classmethod
    def read(cls, inventory: Path) -> DbServers:
        return cls(inventory, group_hosts(inventory, "db"))

    def query(self, name: str, sql: str, timeout: int = 10) -> list[list[str]] | None:
        """Rows of `sql` on one server, or None when it does not answer."""
        host = get_host(self.inventory, name)
        try:
            result = host.run(
                "timeout %s mariadb --connect-timeout=3 --batch --skip-column-names -e %s",
                str(timeout),
                sql,
            )
        except RuntimeError:  # SSH failed: the host is down
            return None
        if result.rc != 0:
            return None
        return [line.split("\t") for line in result.stdout.splitlines()]

    def writable(self) -> list[str]:
        """The servers that answer and accept writes (read_only off)."""
        return [n for n in self.names if self.query(n, "SELECT @@read_only") == [["0"]]]

    def primary(self) -> str:
        writable = self.writable()
        assert len(writable) == 1, f"servers that accept writes: {writable or 'none'}"
        return writable[0]

    def replica_status(self, name: str) -> dict[str, str]:
        """SHOW SLAVE STATUS of `name` ({} when it follows no one)."""
        host = get_host(self.inventory, name)
        lines = host.check_output("mariadb --batch -e 'SHOW SLAVE STATUS'").splitlines()
        if len(lines) < 2:
            return {}
        return dict(zip(lines[0].split("\t"), lines[1].split("\t"), strict=False))

    def source(self, name: str) -> str:
        """The address `name` replicates from ('' for none), with both threads running."""
        fields = self.replica_status(name)
        running = fields.get("Slave_IO_Running") == fields.get("Slave_SQL_Running") == "Yes"
        return fields.get("Master_Host", "") if running else ""

    def sequence(self, name: str, variable: str) -> int:
        """How far a GTID position of `name` reaches (e.g. gtid_slave_pos): its highest sequence
        number (one replication domain is in use)."""
        rows = self.query(name, f"SELECT @@{variable}") or [[""]]
        numbers = [int(g.rsplit("-", 1)[1]) for g in rows[0][0].split(",") if g.count("-") == 2]
        return max(numbers, default=0)

    def captions(self, name: str, prefix: str) -> set[str]:
        """The captions of the posts starting with `prefix` that `name` holds."""
        rows = self.query(name, f"SELECT caption FROM app.feed_post WHERE caption LIKE '{prefix}%'")
        assert rows is not None, f"{name} does not answer"
        return {r[0] for r in rows}


@dataclass
class Poster:
    """A logged-in user who posts images with captions of their own making, all the time, and
    keeps what each attempt got: a caption is acknowledged when the post's redirect came back."""

    base_url: str
    image: bytes
    username: str = field(default_factory=lambda: f"poster{uuid.uuid4().hex[:8]}")
    session: requests.Session = field(default_factory=requests.Session)
    prefix: str = field(default_factory=lambda: f"drill-{uuid.uuid4().hex[:8]}-")
    acknowledged: list[str] = field(default_factory=list)
    acknowledged_at: list[float] = field(default_factory=list)
    acknowledged_started: list[float] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)
    attempts: int = 0

    def send(self, caption: str, follow: bool = False) -> requests.Response:
        """One post: the form (for its CSRF token), then the image with `caption`; with
        `follow`, the answer is the page the post redirects to."""
        url = f"{self.base_url}/posts/new/"
        form = self.session.get(url, timeout=30)
        return self.session.post(
            url,
            data={"csrfmiddlewaretoken": csrf_token(form.text), "caption": caption},
            files={"image": ("post.png", self.image, "image/png")},
            headers={"Referer": url},
            allow_redirects=follow,
            timeout=30,
        )

    def post(self, stop: threading.Event) -> None:
        """Post until `stop`, one caption after another, keeping what each attempt got."""
        while not stop.is_set():
            caption = f"{self.prefix}{self.attempts}"
            self.attempts += 1
            began = time.monotonic()
            try:
                answer = self.send(caption)
                # Acknowledged: redirected to the feed, not to the login page.
                if answer.status_code in (302, 303) and "login" not in answer.headers["Location"]:
                    self.acknowledged.append(caption)
                    self.acknowledged_at.append(time.monotonic())
                    self.acknowledged_started.append(began)
                else:
                    self.failures.append((time.monotonic(), f"POST {answer.status_code}"))
            except (requests.RequestException, AssertionError) as exc:
                self.failures.append((time.monotonic(), type(exc).__name__))
            time.sleep(0.2)

    def first_write_after(self, moment: float) -> float:
        """Seconds from `moment` to the acknowledgement of the first post sent after it (-1:
        none): a post already in flight at `moment` does not count."""
        later = [
            done
            for began, done in zip(self.acknowledged_started, self.acknowledged_at, strict=True)
            if began > moment
        ]
        return round(min(later) - moment, 1) if later else -1.0

    def longest_gap(self) -> float:
        """The longest stretch with no acknowledged post, in seconds: the writes' outage."""
        times = self.acknowledged_at
        return round(max((b - a for a, b in zip(times, times[1:], strict=False)), default=0), 1)

    def failed_window(self) -> float:
        """Seconds from the first failed post to the last (0 with none or one)."""
        times = [t for t, _ in self.failures]
        return round(max(times) - min(times), 1) if len(times) > 1 else 0.0


def db_switch_under_load(
    poster: Poster, switch: Callable[[], dict[str, Any]], settle: float = 5
) -> dict[str, Any]:
    """Run `switch` (a failover or a switchover; it returns its own report) while `poster` posts,
    then let the poster go on for `settle` seconds. Returns the report with the poster's counts.
    The first write is counted from the report's `cut_at` (a monotonic time: when the kill was
    done) if it gives one, else from the start of `switch`."""
    stop = threading.Event()
    worker = threading.Thread(target=poster.post, args=(stop,))
    worker.start()
    try:
        time.sleep(3)
        started = time.monotonic()
        report = switch()
        report["switch_seconds"] = round(time.monotonic() - started, 1)
        time.sleep(settle)
        cut_at = report.pop("cut_at", started)
        report["first_write_after_start_seconds"] = poster.first_write_after(cut_at)
    finally:
        stop.set()
        worker.join()
    return {
        **report,
        "posts_attempted": poster.attempts,
        "posts_acknowledged": len(poster.acknowledged),
        "posts_failed": len(poster.failures),
        "failed_window_seconds": poster.failed_window(),
        "longest_write_gap_seconds": poster.longest_gap(),
        "first_failures": [what for _, what in poster.failures[:5]],
    }


# --- Monitoring: a CPU burn on one host, and the mails it brings --------------------------------

BURN_UNIT = "cluster-drill-cpu-burn"
BUSY_LOOP = "while True: pass"


@dataclass(frozen=True)
class Monitoring:
    """The monitoring host as the tests and the bench use it: Prometheus's API and the mail sink."""

    inventory: Path
    host: str
    fact: dict[str, Any]  # its monitoring fact: URLs, the mail sink's directory

    @classmethod
    def read(cls, inventory: Path) -> Monitoring | None:
        hosts = group_hosts(inventory, "monitoring")
        if not hosts:
            return None
        return cls(inventory, hosts[0], host_fact(get_host(inventory, hosts[0]), "monitoring"))

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.fact['prometheus_url']}/api/v1/query"
        answer = requests.get(url, params={"query": promql}, timeout=10)
        answer.raise_for_status()
        return list(answer.json()["data"]["result"])

    def subjects(self) -> dict[str, str]:
        """Subject of every message in the sink, by file name (names sort by arrival)."""
        host = get_host(self.inventory, self.host)
        script = (
            "import email,email.policy,pathlib,json,sys\n"
            "d=pathlib.Path(sys.argv[1])\n"
            "print(json.dumps({p.name: str(email.message_from_bytes(p.read_bytes(),"
            " policy=email.policy.default)['Subject']) for p in sorted(d.glob('*.eml'))}))\n"
        )
        out = host.check_output("python3 -c %s %s", script, self.fact["mail_sink_dir"])
        return dict(json.loads(out))


def names_host(subject: str, host: str) -> bool:
    """Alertmanager's subject lists the group's labels as words:
    `[FIRING:1] HostCpuHigh was1 (…)`."""
    return host in subject.replace("(", " ").replace(")", " ").split()


@dataclass
class BurnAlert:
    host: str
    fired_after: float  # seconds from the burn's start to the firing mail in the sink
    resolved_after: float  # seconds from the burn's end to the resolved mail
    mails: dict[str, str]  # every HostCpuHigh mail that arrived meanwhile: file -> subject


def cpu_burn_alert(monitoring: Monitoring, host: str, deadline: float = 300) -> BurnAlert:
    """Burn the CPU of `host` (two busy loops at nice 19, in its own cgroup: they take the idle CPU
    and leave the other hosts theirs) until a firing HostCpuHigh mail names it, then stop and wait
    for the resolved one."""
    before = set(monitoring.subjects())
    burner = get_host(monitoring.inventory, host)

    def cpu_mails(state: str) -> dict[str, str]:
        new = {n: s for n, s in monitoring.subjects().items() if n not in before}
        about = {n: s for n, s in new.items() if "HostCpuHigh" in s}
        return {n: s for n, s in about.items() if state in s and names_host(s, host)}

    def wait(state: str, since: float) -> float:
        while not cpu_mails(state):
            if time.monotonic() - since > deadline:
                raise AssertionError(
                    f"no {state} HostCpuHigh mail naming {host} in {deadline:.0f} s"
                )
            time.sleep(2)
        return time.monotonic() - since

    burner.run("systemctl stop %s", BURN_UNIT)
    started = time.monotonic()
    burner.check_output(
        "systemd-run --unit %s --collect --property Nice=19 sh -c %s",
        BURN_UNIT,
        f"python3 -c '{BUSY_LOOP}' & python3 -c '{BUSY_LOOP}' & wait",
    )
    try:
        fired_after = wait("FIRING", started)
    finally:
        burner.run("systemctl stop %s", BURN_UNIT)
    stopped = time.monotonic()
    resolved_after = wait("RESOLVED", stopped)
    new = {n: s for n, s in monitoring.subjects().items() if n not in before}
    return BurnAlert(
        host, fired_after, resolved_after, {n: s for n, s in new.items() if "HostCpuHigh" in s}
    )


# --- Autoscaling ----------------------------------------------------------------------------------

# The autoscaler's webhook, on the monitoring host's loopback.
AUTOSCALER_URL = "http://127.0.0.1:9095"
SCALING_ALERTS = {"scale_out": "WasLoadHigh", "scale_in": "WasLoadLow"}


def pool_inventory(
    source: Path, target: Path, standby: list[tuple[str, str]], cooldown: int
) -> Path:
    """A copy of a lab inventory with these (name, address) standby hosts in a `was_pool` group,
    and a cool-down of `cooldown` seconds between scaling steps."""

    def edit(hosts: dict[str, Any]) -> None:
        hosts["all"]["children"]["was_pool"] = {
            "hosts": {name: {"ansible_host": address} for name, address in standby}
        }
        hosts["all"].setdefault("vars", {})["cluster_autoscale_cooldown_seconds"] = cooldown

    return copy_inventory(source, target, edit)


def scaling_labels(action: str) -> dict[str, str]:
    """The labels of the rule that asks for `action` (roles/monitoring/files/rules), and one more:
    the rule's own alert (an idle lab fires WasLoadLow) is another alert, whose updates from
    Prometheus (resolved ones, resent for minutes) must not overwrite the drill's."""
    return {
        "alertname": SCALING_ALERTS[action],
        "action": action,
        "severity": "warning",
        "host": "was",
        "tier": "was",
        "drill": "injected",
    }


@dataclass(frozen=True)
class Autoscaler:
    """The monitoring host's autoscaler, as the tests and the bench drive it."""

    monitoring: Monitoring  # of an inventory with a was_pool group

    def run(self, command: str) -> str:
        return str(get_host(self.monitoring.inventory, self.monitoring.host).check_output(command))

    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.run(f"curl -sf {AUTOSCALER_URL}/state")))

    def post(self, body: str) -> tuple[int, dict[str, Any]]:
        """POST a body to the webhook, as Alertmanager does (from the monitoring host itself)."""
        out = self.run(
            "curl -s -w '\\n%{http_code}' -H 'Content-Type: application/json' "
            f"--data-binary {shlex.quote(body)} {AUTOSCALER_URL}/alerts"
        )
        text, _, status = out.strip().rpartition("\n")
        return int(status), dict(json.loads(text or "{}"))

    def inject(self, action: str, firing: bool = True) -> None:
        """Fire a scaling alert in Alertmanager, as Prometheus would: its route reaches the
        webhook (and the mail). Resolve it (firing=False) once the load it stands for is gone:
        one still firing asks again after each cool-down, as sustained load should."""
        now = datetime.now(UTC)
        alert = {
            "labels": scaling_labels(action),
            "annotations": {"summary": "injected by a drill (tests/drills.py)"},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=10) if firing else now).isoformat(),
        }
        url = f"{self.monitoring.fact['alertmanager_url']}/api/v2/alerts"
        requests.post(url, json=[alert], timeout=10).raise_for_status()

    def journal(self, since: str) -> str:
        return self.run(f"journalctl -u autoscaler --no-pager -o cat --since {shlex.quote(since)}")

    def clock(self) -> str:
        return self.run("date '+%Y-%m-%d %H:%M:%S'").strip()

    def wait_for_serving(self, serving: list[str], since: str, deadline: float) -> None:
        """Until the state lists `serving`; a step that failed meanwhile fails at once."""
        started = time.monotonic()
        while self.state()["serving"] != serving:
            log = self.journal(since)
            if "FAILED" in log:
                raise AssertionError(f"a scaling step failed:\n{log[-4000:]}")
            if time.monotonic() - started > deadline:
                raise AssertionError(f"the pool hosts serving are not {serving} after {deadline} s")
            time.sleep(5)


def alert_to_serving(
    autoscaler: Autoscaler, host: str, serves: Callable[[], bool], deadline: float = 1200
) -> float:
    """Fire WasLoadHigh; seconds until `host` joined and `serves()` (a request it answered
    through the balancer) holds."""
    serving = [*autoscaler.state()["serving"], host]
    since = autoscaler.clock()
    started = time.monotonic()
    autoscaler.inject("scale_out")
    try:
        autoscaler.wait_for_serving(serving, since, deadline)
        while not serves():
            if time.monotonic() - started > deadline:
                raise AssertionError(f"{host} joined but serves nothing through the balancer")
            time.sleep(0.5)
        return time.monotonic() - started
    finally:
        autoscaler.inject("scale_out", firing=False)
