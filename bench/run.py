"""`make bench`: the installer and the cluster measured side by side in one run.

Writes docs/benchmarks.md (a table: median, min and max of BENCH_RUNS runs) and
docs/benchmarks.json (every raw number). Only lab addresses are ever a target.
Nothing here asserts a time: it measures, and asserts only correctness (changed=0).
Host names come from the inventory's groups, ports, paths and service names from the local facts
the roles leave on the hosts (/etc/ansible/facts.d), as in tests/.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ansible_runner
import requests

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
INVENTORY = REPO / "inventory/lab"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
LOAD_SECONDS = int(os.environ.get("BENCH_LOAD_SECONDS", "10"))
# BENCH_ONLY=cluster measures the cluster rounds only (about 20 minutes a run, on the lab as it
# is), BENCH_ONLY=db the database rounds only (about 5 minutes a run), BENCH_ONLY=monitoring the
# CPU alert's delay and the autoscaler's scale-out time only (about 12 minutes a run),
# BENCH_ONLY=noop the no-op re-run with Mitogen and with Ansible's linear strategy (about 6
# minutes a run); the other figures are kept from docs/benchmarks.json and marked as earlier.
ONLY = os.environ.get("BENCH_ONLY", "")
# BENCH_ONLY=installer: the shipped settings' installer round only (fresh converge, no-op, add
# one WAS; about 20 minutes a run). BENCH_ONLY=scaling: a fresh converge with each of these WAS
# counts (about 40 minutes a run for 2, 4 and 8).
WAS_COUNTS = [int(n) for n in os.environ.get("BENCH_WAS_COUNTS", "2,4,8").split(",")]
MODES = ("cluster", "db", "monitoring", "noop", "installer", "scaling")
SHIPPED_CFG = REPO / "ansible.cfg"
STOCK_CFG = REPO / "bench/stock-ansible.cfg"
INSTALL_ACTIONS = {
    "apt",
    "ansible.builtin.apt",
    "pip",
    "ansible.builtin.pip",
    # The roles' apt, asking dpkg first (plugins/action/packages_installed.py).
    "packages_installed",
    "ansible.legacy.packages_installed",
}
# The tests' helpers (inventory copies, fact paths) serve the bench too.
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests/e2e"))
raw: dict[str, Any] = {}
# Figures of an earlier run that this one does not measure (BENCH_ONLY): key -> values, and the
# commit that measured them.
earlier: dict[str, Any] = {}


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def record(key: str, value: float) -> None:
    raw.setdefault(key, []).append(round(value, 3))


def run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr}")
    return proc.stdout


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    run(cmd, env)
    return time.monotonic() - started


def lab(*args: str, inventory: Path = INVENTORY) -> str:
    return run([str(BIN / "lab"), "-i", str(inventory), *args])


@dataclass(frozen=True)
class Converged:
    """What a site.yml run left for the measurements: its seconds, stats and task events."""

    seconds: float
    stats: dict[str, Any]
    events: list[dict[str, Any]]
    # CPU of ansible-playbook and every process it started and reaped (its workers, Mitogen's
    # multiplexer): the controller's share of the machine, apart from the lab's hosts. Only
    # where nothing else in this process reaps children meanwhile (the no-op and the scaling
    # converges; not the rounds that run playbooks under load threads).
    controller_core_seconds: float


def playbook(
    path: str,
    inventory: Path,
    cfg: Path,
    extravars: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Converged:
    """Run a playbook of this repository (env: Ansible settings over cfg's); stop the bench if
    it fails."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-runner-"))
    controller_before = children_core_seconds()
    started = time.monotonic()
    runner = ansible_runner.run(
        private_data_dir=str(workdir),
        project_dir=str(REPO),
        playbook=str(REPO / path),
        inventory=str(inventory),
        envvars={"ANSIBLE_CONFIG": str(cfg), **(env or {})},
        extravars=extravars or {},
        quiet=True,
    )
    seconds = time.monotonic() - started
    controller = children_core_seconds() - controller_before
    if runner.status != "successful":
        raise SystemExit(f"bench: {path} {extravars or ''} failed with {cfg.name}: {runner.stats}")
    done = Converged(seconds, runner.stats or {}, list(runner.events), controller)
    shutil.rmtree(workdir, ignore_errors=True)  # the events are read: the artifacts can go
    return done


def children_core_seconds() -> float:
    """CPU time, user and system, of this process's children that have ended (ansible-runner
    waits for ansible-playbook, which waits for its own processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def converge(
    inventory: Path,
    cfg: Path,
    extravars: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Converged:
    return playbook("site.yml", inventory, cfg, extravars, env)


def noop_seconds(cfg: Path, env: dict[str, str] | None = None) -> float:
    """A re-run of site.yml on the converged lab; the bench stops if it changed anything."""
    return noop_run(cfg, env).seconds


def noop_run(cfg: Path, env: dict[str, str] | None = None) -> Converged:
    noop = converge(INVENTORY, cfg, env=env)
    changed = {h: n for h, n in noop.stats.get("changed", {}).items() if n}
    if changed:
        raise SystemExit(f"bench: the no-op re-run changed {changed}")
    return noop


def noop_round() -> None:
    """The no-op re-run with the shipped settings, then with them but Ansible's own linear
    strategy (no Mitogen) on the same lab, and a ping: what Mitogen is worth, side by side."""
    shipped = noop_run(SHIPPED_CFG)
    record("shipped.site_noop", shipped.seconds)
    record("shipped.site_noop_controller_core_s", shipped.controller_core_seconds)
    record("linear.site_noop", noop_seconds(SHIPPED_CFG, {"ANSIBLE_STRATEGY": "linear"}))
    record("shipped.ping", ping_seconds(SHIPPED_CFG))


def ping_seconds(cfg: Path) -> float:
    return timed([str(BIN / "ansible"), "all", "-m", "ping"], {"ANSIBLE_CONFIG": str(cfg)})


def install_seconds(converged: Converged) -> dict[str, float]:
    """Seconds of apt and pip tasks per host, from the converge's own task events."""
    per_host: dict[str, float] = {}
    for event in converged.events:
        data = event.get("event_data", {})
        if (
            event.get("event") in ("runner_on_ok", "runner_on_changed")
            and (data.get("resolved_action") or data.get("task_action")) in INSTALL_ACTIONS
        ):
            host = data["host"]
            per_host[host] = per_host.get(host, 0.0) + float(data.get("duration") or 0)
    return per_host


def groups() -> dict[str, list[str]]:
    data = json.loads(run([str(BIN / "ansible-inventory"), "-i", str(INVENTORY), "--list"]))
    return {g: v.get("hosts", []) for g, v in data.items() if isinstance(v, dict) and "hosts" in v}


def scaled_inventory(target: Path, extra: int = 1) -> Path:
    """A copy of the inventory with `extra` more WAS, on the next free names and addresses."""
    from cluster_support import copy_inventory, free_hosts

    new = free_hosts(INVENTORY, "was", extra)

    def add(hosts: dict[str, Any]) -> None:
        for name, address in new:
            hosts["all"]["children"]["was"]["hosts"][name] = {"ansible_host": address}

    return copy_inventory(INVENTORY, target, add)


# --- the installer --------------------------------------------------------------------------


def installer_round(cfg: Path, label: str) -> None:
    say(f"{label}: lab down, then a fresh lab up and site.yml (base image cached)")
    lab("down")
    shutil.rmtree(REPO / ".cache/ansible-facts", ignore_errors=True)  # new hosts, no old facts
    record(f"{label}.lab_up", timed([str(BIN / "lab"), "-i", str(INVENTORY), "up"]))
    fresh = converge(INVENTORY, cfg)
    seconds = fresh.seconds
    record(f"{label}.site_fresh", seconds)
    installs = install_seconds(fresh)
    kinds = groups()
    for kind in ("db", "redis", "storage", "was", "lb"):
        hosts = kinds.get(kind, [])
        if hosts:
            record(f"{label}.install.{kind}", installs.get(hosts[0], 0.0))
    # The critical path: the longest single host's installs. Hosts install at once
    # (playbooks/packages.yml), so no converge can be shorter than its slowest host's.
    critical = max(installs.values(), default=0.0)
    record(f"{label}.install_critical_path", critical)
    record(f"{label}.converge_over_install", seconds / critical if critical else 0)

    if cfg == SHIPPED_CFG:
        noop_round()
    else:
        record(f"{label}.site_noop", noop_seconds(cfg))
        record(f"{label}.ping", ping_seconds(cfg))

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        grown = scaled_inventory(Path(tmp) / "inventory")
        up = timed([str(BIN / "lab"), "-i", str(grown), "up"])
        record(f"{label}.add_was", up + converge(grown, cfg).seconds)
    # The added WAS stays: the next round starts with `lab down`, and so does main()'s end.


def busy_core_seconds() -> float:
    """CPU time this machine has spent working since boot (user, nice, system, irq, softirq),
    in core-seconds: the lab's hosts and the controller share it."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def scaling_round() -> None:
    """A fresh converge of a lab with each of WAS_COUNTS application servers (the inventory's
    other hosts as they are): how the converge grows with the WAS tier, in seconds and in the
    machine's busy core-seconds (what every extra WAS costs the hosts and the controller)."""
    for count in WAS_COUNTS:
        extra = count - len(groups().get("was", []))
        if extra < 0:
            raise SystemExit(f"bench: BENCH_WAS_COUNTS {count} is below the inventory's WAS")
        with tempfile.TemporaryDirectory(prefix="bench-was-") as tmp:
            grown = scaled_inventory(Path(tmp) / "inventory", extra)
            say(f"scaling: a fresh lab with {count} WAS, then site.yml")
            lab("down", inventory=grown)
            shutil.rmtree(REPO / ".cache/ansible-facts", ignore_errors=True)
            lab("up", inventory=grown)
            busy = busy_core_seconds()
            fresh = converge(grown, SHIPPED_CFG)
            record(f"scaling.fresh_{count}was", fresh.seconds)
            record(f"scaling.core_s_{count}was", busy_core_seconds() - busy)
            record(f"scaling.controller_core_s_{count}was", fresh.controller_core_seconds)
            lab("down", inventory=grown)
    record("scaling.cores", os.cpu_count() or 1)


def seconds_per_extra_was() -> float | None:
    """The least-squares slope of fresh converge seconds over the WAS count (None under two
    counts measured)."""
    return slope_over_was_count("fresh")


def core_seconds_per_extra_was() -> float | None:
    """The same slope of the machine's busy core-seconds during each converge."""
    return slope_over_was_count("core_s")


def controller_core_seconds_per_extra_was() -> float | None:
    """The same slope of the controller's core-seconds alone: the share an extra WAS still
    costs where every host brings its own cores."""
    return slope_over_was_count("controller_core_s")


def floor_per_extra_was() -> float | None:
    """Seconds an extra WAS adds once the cores are saturated: its core-seconds over the cores
    of the machine that measured them (less is possible only while cores sit idle)."""
    cost, cores = core_seconds_per_extra_was(), median("scaling.cores")
    return None if cost is None or not cores else cost / cores


def slope_over_was_count(what: str) -> float | None:
    """The least-squares slope of scaling.<what>_<n>was over the WAS counts n (None under two
    counts measured)."""
    points = [(n, median(f"scaling.{what}_{n}was")) for n in WAS_COUNTS]
    measured = [(float(n), s) for n, s in points if s is not None]
    if len(measured) < 2:
        return None
    return statistics.linear_regression(*zip(*measured, strict=True)).slope


# --- the cluster ----------------------------------------------------------------------------


def fact(host: str, role: str) -> dict[str, Any]:
    """The JSON local fact a role left on a lab host."""
    from cluster_support import FACTS_DIR

    return json.loads(lab("ssh", host, f"cat {shlex.quote(f'{FACTS_DIR}/{role}.fact')}"))


@dataclass(frozen=True)
class Cluster:
    """The cluster as the bench drives it: the first balancer, and the WAS hosts in order."""

    lb_name: str
    lb_url: str  # http://<address>[:<port>] of the front door: the floating address, else lb_name
    floating: str  # the balancers' floating address ("" without one)
    balancers: tuple[str, ...]
    lab_name: str
    health_path: str
    manager_url: str  # the balancer-manager, as the balancer itself reaches it
    was: dict[str, str]  # inventory name (also X-Served-By) -> address
    was_port: int
    was_service: str

    def url(self, path: str) -> str:
        return f"{self.lb_url}{path}"

    @property
    def survivor(self) -> str:
        """The WAS left serving alone while the other one is stopped or killed."""
        return next(iter(self.was))

    @property
    def victim(self) -> str:
        return list(self.was)[-1]


def read_cluster() -> Cluster:
    kinds = groups()
    hostvars = json.loads(run([str(BIN / "ansible-inventory"), "-i", str(INVENTORY), "--list"]))[
        "_meta"
    ]["hostvars"]
    was = {h: str(hostvars[h]["ansible_host"]) for h in kinds.get("was", [])}
    if len(was) < 2:
        raise SystemExit(f"bench: the cluster rounds need two WAS or more; {INVENTORY}: {was}")
    lb_name = kinds["lb"][0]
    balancer = fact(lb_name, "apache_lb")
    gunicorn = fact(next(iter(was)), "django_was")
    port = int(balancer["http_port"])
    floating = str(hostvars[lb_name].get("cluster_lb_floating_address") or "")
    lb = floating or str(hostvars[lb_name]["ansible_host"])
    return Cluster(
        lb_name=lb_name,
        lb_url=f"http://{lb}" if port == 80 else f"http://{lb}:{port}",
        floating=floating,
        balancers=tuple(kinds["lb"]),
        lab_name=str(hostvars[lb_name]["lab_name"]),
        health_path=balancer["health_path"],
        manager_url=f"http://127.0.0.1:{port}{balancer['manager_path']}",
        was=was,
        was_port=int(gunicorn["port"]),
        was_service=gunicorn["service"],
    )


def wrk(url: str, on: str | None = None) -> tuple[float, float, float]:
    """Requests per second, p50 and p99 in ms, from wrk's report; run here or on lab host `on`."""
    command = ["wrk", "-t2", "-c8", f"-d{LOAD_SECONDS}s", "--latency", url]
    out = lab("ssh", on, shlex.join(command)) if on else run(command)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rps, pct("50"), pct("99")


def served_by(url: str) -> str:
    try:
        return requests.get(url, timeout=3).headers.get("X-Served-By", "")
    except requests.RequestException:
        return ""


def wait_for(what: str, probe: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.5)


def only_serves(cluster: Cluster, was: str) -> bool:
    return {served_by(cluster.url(cluster.health_path)) for _ in range(6)} == {was}


def serves_again(cluster: Cluster, was: str) -> bool:
    return any(served_by(cluster.url(cluster.health_path)) == was for _ in range(6))


def ensure_wrk_on(host: str) -> None:
    """wrk on a lab host (through the lab's apt proxy): the only place gunicorn admits it from."""
    lab(
        "ssh",
        host,
        "command -v wrk >/dev/null || { apt-get update -qq"
        " && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }",
    )


@contextmanager
def steady_load(
    url: str, concurrency: int = 8, retry_once: bool = False
) -> Iterator[dict[str, Any]]:
    """Requests in a loop from `concurrency` clients until the block ends; outcomes counted.

    retry_once: a GET that fails is sent once more, as a browser or an HTTP library that retries
    idempotent requests would; "failed" counts what failed twice, "raw_failures" first attempts.
    """
    stop = threading.Event()
    outcome: dict[str, Any] = {"ok": 0, "failed": 0, "raw_failures": 0, "errors": Counter()}

    def attempt(session: requests.Session) -> str | None:
        """None when the GET answered 200, else what went wrong."""
        try:
            response = session.get(url, timeout=15)
        except requests.RequestException as exc:
            return type(exc).__name__
        return None if response.status_code == 200 else f"http {response.status_code}"

    def client() -> None:
        session = requests.Session()
        while not stop.is_set():
            first = attempt(session)
            final = attempt(session) if first and retry_once else first
            session.cookies.clear()
            outcome["raw_failures"] += first is not None
            outcome["ok" if final is None else "failed"] += 1
            for error in (first, final if final is not first else None):
                if error:
                    outcome["errors"][error] += 1

    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(client)
        try:
            yield outcome
        finally:
            stop.set()


def member_out(cluster: Cluster, victim: str) -> bool:
    """Whether the balancer-manager shows the member in error (health check or retry)."""
    page = lab("ssh", cluster.lb_name, f"curl -s {shlex.quote(cluster.manager_url)}")
    row = next((r for r in page.split("<tr>") if f"http://{cluster.was[victim]}:" in r), "")
    return bool(re.search(r"Err|HcFl|Dis", row))


def record_wrk(name: str, url: str, on: str | None) -> None:
    rps, p50, p99 = wrk(url, on)
    record(f"cluster.{name}.rps", rps)
    record(f"cluster.{name}.p50_ms", p50)
    record(f"cluster.{name}.p99_ms", p99)


def cluster_round(cluster: Cluster) -> None:
    survivor, victim = cluster.survivor, cluster.victim
    say(
        f"cluster: wrk through the balancer (all WAS) from here and from {cluster.lb_name}, direct "
        f"to {survivor}'s gunicorn from {cluster.lb_name} (its firewall admits the balancers "
        "only), then the balancer with one WAS from both"
    )
    direct = f"http://{cluster.was[survivor]}:{cluster.was_port}/guestbook/"
    # The ratios compare wrk runs on the same host (the balancer's): a client on this machine
    # competes for its CPUs differently, and that alone moved the p99 (bench/findings.md).
    for name, url, on in (
        ("balancer_2was", cluster.url("/guestbook/"), None),
        ("balancer_2was_on_lb", cluster.url("/guestbook/"), cluster.lb_name),
        ("direct_1was", direct, cluster.lb_name),
    ):
        record_wrk(name, url, on)
    lab("stop", victim)
    wait_for(
        f"the balancer to send everything to {survivor}", lambda: only_serves(cluster, survivor)
    )
    record_wrk("balancer_1was", cluster.url("/guestbook/"), None)
    record_wrk("balancer_1was_on_lb", cluster.url("/guestbook/"), cluster.lb_name)
    lab("start", victim)
    wait_for(f"{victim} to serve again", lambda: serves_again(cluster, victim))


def failover_round(cluster: Cluster) -> None:
    victim = cluster.victim
    say(f"failover: steady load, kill {victim}, count failures and time until it is out")
    with steady_load(cluster.url("/guestbook/"), retry_once=True) as outcome:
        time.sleep(3)
        killed = time.monotonic()
        lab("kill", victim)
        wait_for(f"the balancer to take {victim} out", lambda: member_out(cluster, victim), 60)
        detected = time.monotonic() - killed
        time.sleep(3)
    record("failover.failed", outcome["raw_failures"])  # as before the retry: first attempts
    record("failover.failed_with_retry", outcome["failed"])
    record("failover.requests", outcome["ok"] + outcome["failed"])
    record("failover.seconds_to_out", detected)
    raw.setdefault("failover.errors", []).append(dict(outcome["errors"]))
    lab("start", victim)
    wait_for(f"{victim} to serve again", lambda: serves_again(cluster, victim))


def rolling_reload_round(cluster: Cluster) -> None:
    say("rolling reload: HUP every WAS in turn under load")
    reload = f"systemctl reload {shlex.quote(cluster.was_service)}"
    with steady_load(cluster.url("/guestbook/")) as outcome:
        for host in cluster.was:
            lab("ssh", host, reload)
            time.sleep(3)
    record("reload.failed", outcome["failed"])
    record("reload.requests", outcome["ok"] + outcome["failed"])


def lb_failover_round(cluster: Cluster) -> None:
    from drills import FloatingAddress, balancer_failover

    if not cluster.floating or len(cluster.balancers) < 2:
        say("balancer failover: no balancer pair with a floating address, skipped")
        return
    say("balancer failover: browser-like load, kill the balancer holding the floating address")
    floating = FloatingAddress(cluster.lab_name, cluster.floating, cluster.balancers)
    killed: list[str] = []

    def crash(holder: str) -> None:
        lab("kill", holder)
        killed.append(holder)

    try:
        found = balancer_failover(floating, cluster.url("/guestbook/"), crash)
    finally:
        for host in killed:
            lab("start", host)
    record("lb_failover.seconds_to_move", float(found["seconds_to_move"] or 0))
    record("lb_failover.raw_failures", found["raw_failures"])
    record("lb_failover.failed", found["failed_after_one_retry"])
    record("lb_failover.requests", found["requests"])


def redis_failover_round(cluster: Cluster) -> None:
    from cluster_support import group_hosts, sign_up
    from drills import Visitor, redis_failover

    if len(group_hosts(INVENTORY, "redis")) < 2:
        say("redis failover: one Redis, no Sentinel, skipped")
        return
    say("redis failover: a logged-in visitor reads and writes; kill the Redis master")
    base = cluster.url("").rstrip("/")
    visitor = Visitor(base)
    sign_up(SimpleNamespace(url=base), visitor.session, visitor.username)
    found = redis_failover(
        INVENTORY,
        base,
        visitor,
        kill=lambda h: lab("kill", h) and None,
        start=lambda h: lab("start", h) and None,
    )
    record("redis_failover.seconds_to_promote", found["seconds_to_promote"])
    record("redis_failover.problems", found["problems"])
    record("redis_failover.slowest_visit_seconds", found["slowest_visit_seconds"])
    record("redis_failover.visits", found["pages"] + found["writes"])


def alert_round(cluster: Cluster) -> None:
    """Issue 13's alert delay: burn the first WAS's CPU until the firing HostCpuHigh mail that
    names it reaches the mail sink, stop, and wait for the resolved one."""
    from drills import Monitoring, cpu_burn_alert

    monitoring = Monitoring.read(INVENTORY)
    if monitoring is None:
        say("alerts: no monitoring group, skipped")
        return
    victim = cluster.victim
    say(f"alerts: burn {victim}'s CPU until the HostCpuHigh mail names it")
    # Past the 300 s target, so a slow mail is a figure (not met), not an aborted bench.
    burn = cpu_burn_alert(monitoring, victim, deadline=900)
    record("alert.seconds_to_firing_mail", burn.fired_after)
    record("alert.seconds_to_resolved_mail", burn.resolved_after)


def autoscale_round(cluster: Cluster) -> None:
    """Issue 13's scale-out time: the lab gains a standby host (group was_pool) and the autoscaler;
    a WasLoadHigh alert goes to Alertmanager; seconds until the standby host answers a request
    through the balancer. Then the lab's own inventory is converged again and the host deleted."""
    from cluster_support import free_hosts
    from drills import Autoscaler, Monitoring, alert_to_serving, pool_inventory

    if Monitoring.read(INVENTORY) is None:
        say("autoscaling: no monitoring group, skipped")
        return
    standby = free_hosts(INVENTORY, "was", 1)
    host = standby[0][0]
    target = Path(tempfile.mkdtemp(prefix="bench-pool-")) / "inventory"
    inventory = pool_inventory(INVENTORY, target, standby, cooldown=600)
    say(f"autoscaling: standby {host}, the autoscaler, then WasLoadHigh until {host} serves")
    lab("up", inventory=inventory)
    converge(inventory, SHIPPED_CFG)
    monitoring = Monitoring.read(inventory)
    assert monitoring is not None
    cookie = fact(cluster.lb_name, "apache_lb")["sticky_cookie"]

    def serves() -> bool:
        try:
            answer = requests.get(cluster.url("/"), cookies={cookie: f".{host}"}, timeout=5)
        except requests.RequestException:
            return False
        return answer.headers.get("X-Served-By", "") == host

    record("autoscale.seconds_to_serving", alert_to_serving(Autoscaler(monitoring), host, serves))
    say("autoscaling: the lab's own inventory again, the standby host deleted")
    converge(INVENTORY, SHIPPED_CFG)
    lab("prune")


def db_rounds_apply() -> bool:
    from cluster_support import group_hosts

    if len(group_hosts(INVENTORY, "db")) < 2:
        say("database: one server, no replica: the database rounds are skipped")
        return False
    return True


def db_poster(cluster: Cluster) -> Any:
    from cluster_support import sign_up
    from drills import Poster
    from e2e_support import png_bytes

    base = cluster.url("").rstrip("/")
    poster = Poster(base, png_bytes((20, 120, 200)))
    sign_up(SimpleNamespace(url=base), poster.session, poster.username)
    return poster


def record_db_switch(key: str, found: dict[str, Any], lost: int) -> None:
    record(f"{key}.playbook_seconds", found["switch_seconds"])
    record(f"{key}.seconds_to_first_write", found["first_write_after_start_seconds"])
    record(f"{key}.longest_write_gap_seconds", found["longest_write_gap_seconds"])
    record(f"{key}.failed", found["posts_failed"])
    record(f"{key}.posts", found["posts_attempted"])
    record(f"{key}.lost", lost)


def db_failover_round(cluster: Cluster) -> None:
    """Kill the primary under a poster's writes, run db-failover.yml; then start the old primary
    and rejoin it (playbooks/db.yml)."""
    from cluster_support import address
    from drills import DbServers, db_switch_under_load

    if not db_rounds_apply():
        return
    servers = DbServers.read(INVENTORY)
    old = servers.primary()
    say(f"database failover: a user posts; kill the primary {old}, run db-failover.yml")
    poster = db_poster(cluster)

    def fail_over() -> dict[str, Any]:
        lab("kill", old)
        killed = time.monotonic()
        playbook("playbooks/db-failover.yml", INVENTORY, SHIPPED_CFG)
        return {"cut_at": killed}

    # A request that was waiting on the dead primary when it died hangs until TCP gives up on
    # that connection (tens of seconds): give the poster time to come back and post again.
    found = db_switch_under_load(poster, fail_over, settle=40)
    new = servers.primary()
    record_db_switch(
        "db_failover", found, len(set(poster.acknowledged) - servers.captions(new, poster.prefix))
    )
    lab("start", old)
    wait_for(f"{old}'s MariaDB", lambda: servers.query(old, "SELECT 1") is not None)
    playbook("playbooks/db.yml", INVENTORY, SHIPPED_CFG)
    new_address = address(INVENTORY, new)
    wait_for(f"{old} to replicate from {new}", lambda: servers.source(old) == new_address)


def db_switchover_round(cluster: Cluster) -> None:
    """db-switchover.yml to another server under a poster's writes, and back (not measured)."""
    from cluster_support import address
    from drills import DbServers, db_switch_under_load

    if not db_rounds_apply():
        return
    servers = DbServers.read(INVENTORY)
    old = servers.primary()
    target = next(n for n in servers.names if n != old)
    old_address = address(INVENTORY, old)
    # A server that just rejoined may still be connecting: the switchover needs it replicating.
    wait_for(f"{target} to replicate from {old}", lambda: servers.source(target) == old_address)
    say(f"database switchover: a user posts; db-switchover.yml from {old} to {target}, and back")
    poster = db_poster(cluster)

    def switch(to: str) -> dict[str, Any]:
        playbook("playbooks/db-switchover.yml", INVENTORY, SHIPPED_CFG, {"db_primary": to})
        return {}

    found = db_switch_under_load(poster, lambda: switch(target))
    record_db_switch(
        "db_switchover",
        found,
        len(set(poster.acknowledged) - servers.captions(target, poster.prefix)),
    )
    switch(old)


def db_lag_round(cluster: Cluster, writers: int = 4) -> None:
    """Replication lag on each replica while `writers` users post at once for LOAD_SECONDS."""
    import threading

    from drills import DbServers

    if not db_rounds_apply():
        return
    servers = DbServers.read(INVENTORY)
    primary = servers.primary()
    replicas = [n for n in servers.names if n != primary]
    say(f"database lag: {writers} users post for {LOAD_SECONDS} s; sample {', '.join(replicas)}")
    posters = [db_poster(cluster) for _ in range(writers)]
    stop = threading.Event()
    threads = [threading.Thread(target=p.post, args=(stop,)) for p in posters]
    most_seconds, most_behind = 0.0, 0
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + LOAD_SECONDS
    try:
        while time.monotonic() < deadline:
            written = servers.sequence(primary, "gtid_binlog_pos")
            for replica in replicas:
                behind = written - servers.sequence(replica, "gtid_slave_pos")
                most_behind = max(most_behind, behind)
                seconds = servers.replica_status(replica).get("Seconds_Behind_Master", "0")
                most_seconds = max(most_seconds, float(seconds) if seconds.isdigit() else 0.0)
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    posts = sum(len(p.acknowledged) for p in posters)
    record("db_lag.posts_per_second", posts / LOAD_SECONDS)
    record("db_lag.most_transactions_behind", most_behind)
    record("db_lag.most_seconds_behind", most_seconds)


def deploy_round(cluster: Cluster) -> None:
    """deploy.yml of a new release under load, then the rollback to the one before."""
    from drills import new_release_tree

    before = requests.get(cluster.url(cluster.health_path), timeout=10).headers["X-App-Release"]
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        tree = new_release_tree(Path(tmp), f"bench release {time.time()}")
        rounds = (("deploy", {"app_src": str(tree)}), ("rollback", {"app_release": before}))
        for key, extravars in rounds:
            say(f"{key}: playbooks/deploy.yml {extravars} under steady load")
            with steady_load(cluster.url("/guestbook/")) as outcome:
                started = time.monotonic()
                playbook("playbooks/deploy.yml", INVENTORY, SHIPPED_CFG, extravars)
                record(f"{key}.seconds", time.monotonic() - started)
            record(f"{key}.failed", outcome["failed"])
            record(f"{key}.requests", outcome["ok"] + outcome["failed"])
            raw.setdefault(f"{key}.errors", []).append(dict(outcome["errors"]))


# --- the report -----------------------------------------------------------------------------


def summary(key: str) -> tuple[float, float, float, int]:
    values = raw.get(key) or earlier.get("raw", {}).get(key, [])
    if not values:
        return (0.0, 0.0, 0.0, 0)
    return (statistics.median(values), min(values), max(values), len(values))


def ratio(a: str, b: str) -> float:
    """The ratios table's figure: 0.0 where a median is missing (the targets say "not measured")."""
    return ratio_of(a, b) or 0.0


ROWS = [
    ("Installer", None),
    ("`lab up`, every host, base image cached (s)", "shipped.lab_up"),
    ("fresh `site.yml` (s)", "shipped.site_fresh"),
    (
        "apt+pip installs of the slowest host, the critical path (s)",
        "shipped.install_critical_path",
    ),
    ("converge / the slowest host's installs", "shipped.converge_over_install"),
    ("  apt+pip on the first db host (s)", "shipped.install.db"),
    ("  apt+pip on the first redis host (s)", "shipped.install.redis"),
    ("  apt+pip on the first storage host (s)", "shipped.install.storage"),
    ("  apt+pip on the first was host (s)", "shipped.install.was"),
    ("  apt+pip on the first lb host (s)", "shipped.install.lb"),
    ("no-op `site.yml`, changed=0 asserted (s)", "shipped.site_noop"),
    ("shipped settings but Ansible's linear strategy (no Mitogen): no-op (s)", "linear.site_noop"),
    ("`ansible all -m ping` (s)", "shipped.ping"),
    ("add one WAS: `lab up` + `site.yml` (s)", "shipped.add_was"),
    ("stock settings: fresh `site.yml` (s)", "stock.site_fresh"),
    ("stock settings: no-op `site.yml` (s)", "stock.site_noop"),
    ("stock settings: add one WAS (s)", "stock.add_was"),
    *((f"fresh `site.yml` with {n} WAS (s)", f"scaling.fresh_{n}was") for n in WAS_COUNTS),
    *(
        (f"  the machine's busy core-seconds, fresh with {n} WAS", f"scaling.core_s_{n}was")
        for n in WAS_COUNTS
    ),
    ("Cluster (wrk -t2 -c8, GET /guestbook/)", None),
    ("balancer, 2 WAS: requests/s", "cluster.balancer_2was.rps"),
    (
        "balancer, 2 WAS: p50 / p99 (ms)",
        "cluster.balancer_2was.p50_ms|cluster.balancer_2was.p99_ms",
    ),
    ("balancer, 1 WAS: requests/s", "cluster.balancer_1was.rps"),
    (
        "balancer, 1 WAS: p50 / p99 (ms)",
        "cluster.balancer_1was.p50_ms|cluster.balancer_1was.p99_ms",
    ),
    ("balancer, 2 WAS, wrk on the balancer host: requests/s", "cluster.balancer_2was_on_lb.rps"),
    (
        "balancer, 2 WAS, wrk on the balancer host: p50 / p99 (ms)",
        "cluster.balancer_2was_on_lb.p50_ms|cluster.balancer_2was_on_lb.p99_ms",
    ),
    ("balancer, 1 WAS, wrk on the balancer host: requests/s", "cluster.balancer_1was_on_lb.rps"),
    (
        "balancer, 1 WAS, wrk on the balancer host: p50 / p99 (ms)",
        "cluster.balancer_1was_on_lb.p50_ms|cluster.balancer_1was_on_lb.p99_ms",
    ),
    ("direct to one gunicorn (wrk on the balancer host): requests/s", "cluster.direct_1was.rps"),
    ("direct: p50 / p99 (ms)", "cluster.direct_1was.p50_ms|cluster.direct_1was.p99_ms"),
    ("failover: failed requests (kill a WAS under load)", "failover.failed"),
    ("failover: failed GETs when each is retried once", "failover.failed_with_retry"),
    ("failover: requests during the window", "failover.requests"),
    ("failover: seconds until the member is out", "failover.seconds_to_out"),
    ("rolling reload of every WAS: failed requests", "reload.failed"),
    ("rolling reload: requests during the window", "reload.requests"),
    ("Balancer pair (kill the holder of the floating address under load)", None),
    ("seconds until another balancer holds it", "lb_failover.seconds_to_move"),
    ("failed requests, browser-like client (one resend)", "lb_failover.failed"),
    ("raw failures (first attempt)", "lb_failover.raw_failures"),
    ("requests during the window", "lb_failover.requests"),
    ("Redis Sentinel (kill the Redis master; a logged-in visitor reads and writes)", None),
    ("seconds until the sentinels name a new master", "redis_failover.seconds_to_promote"),
    ("visits that failed or saw the visitor logged out", "redis_failover.problems"),
    ("slowest visit (s)", "redis_failover.slowest_visit_seconds"),
    ("visits during the window (GET and POST)", "redis_failover.visits"),
    ("Database primary killed, then playbooks/db-failover.yml (a user posts all along)", None),
    ("seconds from the kill to the first post accepted", "db_failover.seconds_to_first_write"),
    ("longest stretch with no post accepted (s)", "db_failover.longest_write_gap_seconds"),
    ("failed posts", "db_failover.failed"),
    ("acknowledged posts missing afterwards", "db_failover.lost"),
    ("posts during the window", "db_failover.posts"),
    ("Planned move, playbooks/db-switchover.yml (a user posts all along)", None),
    ("playbook run (s)", "db_switchover.playbook_seconds"),
    ("longest stretch with no post accepted (s)", "db_switchover.longest_write_gap_seconds"),
    ("failed posts", "db_switchover.failed"),
    ("acknowledged posts missing afterwards", "db_switchover.lost"),
    ("posts during the window", "db_switchover.posts"),
    ("Replication lag (4 users post at once, sampled every 0.5 s)", None),
    ("posts accepted per second", "db_lag.posts_per_second"),
    ("most transactions a replica had not applied", "db_lag.most_transactions_behind"),
    ("most Seconds_Behind_Master", "db_lag.most_seconds_behind"),
    ("CPU alert (two busy loops on a WAS; HostCpuHigh fires after 2 minutes above 80%)", None),
    ("burn start to the firing mail in the sink (s)", "alert.seconds_to_firing_mail"),
    ("burn stop to the resolved mail (s)", "alert.seconds_to_resolved_mail"),
    (
        "WasLoadHigh fired to the first request a standby host serves (s)",
        "autoscale.seconds_to_serving",
    ),
    ("Rolling deploy (playbooks/deploy.yml, GET load, no resend)", None),
    ("deploy of a new release (s)", "deploy.seconds"),
    ("deploy: failed requests", "deploy.failed"),
    ("deploy: requests during the window", "deploy.requests"),
    ("rollback to the release before (s)", "rollback.seconds"),
    ("rollback: failed requests", "rollback.failed"),
    ("rollback: requests during the window", "rollback.requests"),
]


# The ratios table: name, numerator, denominator.
RATIOS = [
    (
        "balancer (2 WAS) / direct, requests/s, wrk on the balancer host",
        "cluster.balancer_2was_on_lb.rps",
        "cluster.direct_1was.rps",
    ),
    (
        "balancer (1 WAS) / direct, requests/s, wrk on the balancer host",
        "cluster.balancer_1was_on_lb.rps",
        "cluster.direct_1was.rps",
    ),
    (
        "balancer (1 WAS), wrk here / on the balancer host, p99",
        "cluster.balancer_1was.p99_ms",
        "cluster.balancer_1was_on_lb.p99_ms",
    ),
    ("no-op site.yml / ping", "shipped.site_noop", "shipped.ping"),
    ("stock / shipped settings, fresh converge", "stock.site_fresh", "shipped.site_fresh"),
    ("stock / shipped settings, no-op re-run", "stock.site_noop", "shipped.site_noop"),
    ("linear / Mitogen strategy, no-op re-run", "linear.site_noop", "shipped.site_noop"),
    ("stock / shipped settings, add one WAS", "stock.add_was", "shipped.add_was"),
]


def runs_of(a: str, b: str) -> str:
    """A ratio's mark when its two figures were not both measured by this run (BENCH_ONLY)."""
    measured = (a in raw) + (b in raw)
    return "" if measured == 2 else " (earlier run)" if measured == 0 else " (**mixed runs**)"


def median(key: str) -> float | None:
    """The median of a figure, None when no run measured it."""
    middle, _, _, count = summary(key)
    return middle if count else None


def ratio_of(a: str, b: str) -> float | None:
    top, bottom = median(a), median(b)
    return top / bottom if top is not None and bottom else None


@dataclass(frozen=True)
class Target:
    """One target of the issues (16: speed; 13: the alert's delay), and how this run's figures
    meet it."""

    what: str
    figure: Callable[[], float | None]  # None: not measured by this bench yet
    limit: float
    at_most: bool = True  # met when figure <= limit; False: when figure >= limit

    def verdict(self) -> str:
        value = self.figure()
        if value is None:
            return "not measured"
        met = value <= self.limit if self.at_most else value >= self.limit
        return "met" if met else "**not met**"

    def row(self) -> str:
        value = self.figure()
        shown = "-" if value is None else fmt(value)
        bound = f"{'≤' if self.at_most else '≥'} {fmt(self.limit)}"
        return f"| {self.what} | {bound} | {shown} | {self.verdict()} |"


TARGETS = [
    Target("no-op `site.yml`, changed=0 (s)", lambda: median("shipped.site_noop"), 30),
    Target("no-op `site.yml` / ping", lambda: ratio_of("shipped.site_noop", "shipped.ping"), 8),
    Target("fresh `site.yml`, base image cached (s)", lambda: median("shipped.site_fresh"), 240),
    Target(
        "fresh `site.yml` / the slowest host's installs",
        lambda: median("shipped.converge_over_install"),
        1.2,
    ),
    Target("add one WAS (s)", lambda: median("shipped.add_was"), 90),
    Target(
        f"fresh converge, seconds per extra WAS ({', '.join(map(str, WAS_COUNTS))} WAS)",
        seconds_per_extra_was,
        10,
    ),
    Target(
        "balancer (1 WAS) / direct, requests/s (wrk on the balancer host)",
        lambda: ratio_of("cluster.balancer_1was_on_lb.rps", "cluster.direct_1was.rps"),
        0.9,
        at_most=False,
    ),
    Target(
        "balancer (1 WAS) / direct, p99 (wrk on the balancer host)",
        lambda: ratio_of("cluster.balancer_1was_on_lb.p99_ms", "cluster.direct_1was.p99_ms"),
        2,
    ),
    Target(
        "killed WAS: seconds until its member is out", lambda: median("failover.seconds_to_out"), 5
    ),
    Target(
        "killed WAS: failed GETs with one retry", lambda: median("failover.failed_with_retry"), 0
    ),
    Target("CPU burn to the firing mail (s)", lambda: median("alert.seconds_to_firing_mail"), 300),
]


def target_lines() -> list[str]:
    """The targets table of docs/benchmarks.md: each target, its bound, this run's figure; then
    what an extra WAS costs this machine, where the scaling round measured it."""
    lines = ["| target | bound | figure (median) | |", "| --- | --- | --- | --- |"]
    lines += [target.row() for target in TARGETS]
    cost, floor = core_seconds_per_extra_was(), floor_per_extra_was()
    if cost is not None and floor is not None:
        lines += [
            "",
            f"Each extra WAS cost this machine {fmt(cost)} busy core-seconds (its host, the "
            "controller, and anything else the machine ran meanwhile): once its "
            f"{median('scaling.cores'):.0f} cores are saturated, that adds {fmt(floor)} s to a "
            "fresh converge.",
        ]
        controller = controller_core_seconds_per_extra_was()
        if controller is not None:
            lines[-1] += (
                f" Of those, {fmt(controller)} core-seconds were the controller's (ansible-playbook"
                " and its processes): what stays on the one controller where each host has its"
                " own cores."
            )
    noop, noop_cpu = median("shipped.site_noop"), median("shipped.site_noop_controller_core_s")
    if noop is not None and noop_cpu is not None:
        kept = "" if raw.get("shipped.site_noop") else f" ({measured_by('shipped.site_noop')})"
        lines += [
            "",
            f"The no-op's controller (ansible-playbook and its processes) used {fmt(noop_cpu)} "
            f"core-seconds in its {fmt(noop)} s{kept}.",
        ]
    return lines


def fmt(value: float) -> str:
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"


def earlier_run_of(key: str) -> dict[str, Any]:
    """The commit and date of the earlier run that measured a kept figure: from its own record
    where the earlier report has one, else the run that report says it kept figures from, else
    the earlier report's own run."""
    recorded = (earlier.get("measured_by") or {}).get(key)
    if recorded:
        return dict(recorded)
    kept = earlier.get("earlier") or {}
    if key in kept.get("keys", []):
        return {"commit": kept.get("commit"), "date": kept.get("date")}
    return {"commit": earlier.get("commit"), "date": earlier.get("date")}


def measured_by(key: str) -> str:
    """A kept figure's mark in the table: the commit and date that measured it."""
    run_of = earlier_run_of(key)
    return f"commit `{run_of.get('commit') or '?'}`, {run_of.get('date') or '?'}"


def write_report(started: float) -> None:
    commit = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]).strip()
    machine = f"{platform.node()}: {os.cpu_count()} cores, {platform.platform()}"
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {datetime.date.today()}, commit `{commit}`,",
        f"machine {machine}.",
        f"Each figure is the median of {RUNS} runs, with min and max; the whole run took "
        f"{(time.monotonic() - started) / 60:.0f} minutes. Raw numbers: `docs/benchmarks.json`.",
        "These machines are shared and noisy: the ratios, measured side by side, carry the claims.",
        *(
            [
                f"This run measured the {ONLY} rounds only; a row marked with a commit is from the "
                "earlier run that measured it."
            ]
            if earlier
            else []
        ),
        "",
        "| measure | median | min | max | runs |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, key in ROWS:
        if key is None:
            lines.append(f"| **{label}** | | | | |")
            continue
        cells = [summary(k) for k in key.split("|")]
        first = key.split("|")[0]
        mark = f" ({measured_by(first)})" if not raw.get(first) and cells[0][3] else ""
        lines.append(
            f"| {label}{mark} | "
            + " | ".join(" / ".join(fmt(c[i]) for c in cells) for i in range(3))
            + f" | {cells[0][3]} |"
        )
    ratios = {name: ratio(a, b) for name, a, b in RATIOS}
    lines += ["", "## Targets", "", *target_lines()]
    lines += ["", "| ratio (medians, same run) | value |", "| --- | --- |"]
    lines += [f"| {name}{runs_of(a, b)} | {ratios[name]:.2f} |" for name, a, b in RATIOS]
    lines += [
        "",
        "Shipped settings: `ansible.cfg` (Mitogen's linear strategy, pipelining, forks 20, "
        "jsonfile fact cache, smart gathering). Stock: `bench/stock-ansible.cfg` (Ansible's "
        "defaults, its own linear strategy). The linear row keeps the shipped settings but "
        "Ansible's own strategy (ANSIBLE_STRATEGY=linear).",
        "",
        (REPO / "bench/findings.md").read_text().rstrip("\n"),
    ]
    docs = REPO / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "benchmarks.md").write_text("\n".join(lines) + "\n")
    (docs / "benchmarks.json").write_text(
        json.dumps(
            {
                "date": str(datetime.date.today()),
                "commit": commit,
                "machine": machine,
                "runs": RUNS,
                "raw": {**earlier.get("raw", {}), **raw},
                # Which run measured each figure: this one, or the earlier one it kept it from.
                "measured_by": {
                    key: {"commit": commit, "date": str(datetime.date.today())}
                    if key in raw
                    else earlier_run_of(key)
                    for key in {**earlier.get("raw", {}), **raw}
                },
                # BENCH_ONLY: what this run kept from an earlier one, and from which commit.
                "earlier": {
                    "commit": earlier.get("commit"),
                    "date": earlier.get("date"),
                    "keys": sorted(set(earlier.get("raw", {})) - set(raw)),
                }
                if earlier
                else None,
                "ratios": ratios,
                "targets": {
                    t.what: {"limit": t.limit, "figure": t.figure(), "verdict": t.verdict()}
                    for t in TARGETS
                },
            },
            indent=2,
        )
        + "\n"
    )
    say("wrote docs/benchmarks.md and docs/benchmarks.json")


def main() -> None:
    """The cluster first (on a lab converged for it), then the installer rounds; the report is
    rewritten after every round, so an interrupted run still leaves what it measured."""
    started = time.monotonic()
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    if ONLY not in ("", *MODES):
        raise SystemExit(
            f"bench: BENCH_ONLY={ONLY!r}: use one of {', '.join(MODES)}, or leave it unset"
        )
    if ONLY:
        earlier.update(json.loads((REPO / "docs/benchmarks.json").read_text()))
    if ONLY in ("installer", "scaling"):
        fresh_lab_rounds(started)
        return
    say("cluster: lab up and site.yml")
    lab("prune")
    lab("up")
    converge(INVENTORY, SHIPPED_CFG)
    cluster = read_cluster()
    # gunicorn's firewall admits the balancers only: the direct measurement runs on one.
    ensure_wrk_on(cluster.lb_name)
    for i in range(RUNS):
        say(f"cluster run {i + 1}/{RUNS}")
        if ONLY in ("", "cluster"):
            cluster_round(cluster)
            failover_round(cluster)
            rolling_reload_round(cluster)
            lb_failover_round(cluster)
            redis_failover_round(cluster)
            deploy_round(cluster)
        if ONLY in ("", "db"):
            db_lag_round(cluster)
            db_failover_round(cluster)
            db_switchover_round(cluster)
        if ONLY in ("", "monitoring"):
            alert_round(cluster)
            autoscale_round(cluster)
        if ONLY == "noop":  # a full run measures it in its installer rounds
            noop_round()
        write_report(started)
    for i in range(0 if ONLY else RUNS):
        for cfg, label in ((SHIPPED_CFG, "shipped"), (STOCK_CFG, "stock")):
            say(f"installer run {i + 1}/{RUNS}, {label} settings")
            installer_round(cfg, label)
            write_report(started)
    if ONLY:
        say("the lab stays up (BENCH_ONLY): `make down` when done")
        return
    say("scaling: once (three fresh labs, the largest with eight WAS)")
    scaling_round()
    write_report(started)
    say("lab down: the bench leaves nothing running")
    lab("down")


def fresh_lab_rounds(started: float) -> None:
    """BENCH_ONLY=installer or scaling: those rounds alone, each on fresh labs."""
    for i in range(RUNS):
        say(f"{ONLY} run {i + 1}/{RUNS}")
        if ONLY == "installer":
            installer_round(SHIPPED_CFG, "shipped")
        else:
            scaling_round()
        write_report(started)
    say("lab down: the bench leaves nothing running")
    lab("down")


if __name__ == "__main__":
    main()
