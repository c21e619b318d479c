#!/usr/bin/python3
"""gunicorn's statsd metrics, served to Prometheus.

Debian has no prometheus-statsd-exporter, so this receives what gunicorn's statsd logger
(gunicorn/instrument/statsd.py) sends to --statsd over UDP and serves it on --listen as
/metrics. It understands gunicorn's metrics only; other names are counted and dropped.

Needs Debian's python3-prometheus-client; runs as
    gunicorn_statsd_bridge.py --statsd 127.0.0.1:9125 --listen 10.77.0.11:9102
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from types import FrameType
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("gunicorn_statsd_bridge")

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# The statsd types gunicorn sends: counter, timer (ms), gauge, histogram (its socket backlog).
TYPES = frozenset({"c", "ms", "g", "h"})
# Levels gunicorn's Statsd logger counts; a closed set keeps the label's cardinality bounded.
LOG_LEVELS = ("critical", "error", "warning", "exception")
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
COMPLAINT_INTERVAL = 60.0  # seconds between two stderr lines about malformed input


class Sample(NamedTuple):
    """One statsd line: `name:value|type[|@rate][|#tags]`."""

    name: str
    value: float
    type: str
    rate: float


class Malformed(NamedTuple):
    """A line that is not statsd, and why."""

    line: bytes
    reason: str


def parse_datagram(datagram: bytes) -> list[Sample | Malformed]:
    """Every line of one datagram, in order; never raises. Empty lines are no metrics."""
    items: list[Sample | Malformed] = []
    for raw in datagram.split(b"\n"):
        line = raw.strip()
        if line:
            items.append(parse_line(line))
    return items


def parse_line(line: bytes) -> Sample | Malformed:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return Malformed(line, "not UTF-8")
    name_value, _, fields = text.partition("|")
    name, colon, number = name_value.rpartition(":")
    if not colon or not name:
        return Malformed(line, "no name:value before the first |")
    if not NUMBER.fullmatch(number):
        return Malformed(line, f"value {number!r} is not a number")
    value = float(number)
    if not math.isfinite(value):
        return Malformed(line, f"value {number!r} is out of range")
    mtype, *extensions = fields.split("|")
    if mtype not in TYPES:
        return Malformed(line, f"type {mtype!r} is not one gunicorn sends")
    rate = 1.0
    for extension in extensions:
        if extension.startswith("#"):
            continue  # dogstatsd tags (gunicorn's dogstatsd_tags): one series per host is enough
        if not (extension.startswith("@") and NUMBER.fullmatch(extension[1:])):
            return Malformed(line, f"field {extension!r} is neither @rate nor #tags")
        rate = float(extension[1:])
        if not 0 < rate <= 1:
            return Malformed(line, f"sample rate {rate} is not in (0, 1]")
    return Sample(name, value, mtype, rate)


def unusable(sample: Sample, expected_type: str) -> str | None:
    """Why a sample of a metric we serve cannot be recorded, if it cannot."""
    if sample.type != expected_type:
        return f"{sample.name} should be of type {expected_type!r}"
    if sample.value < 0:  # gunicorn decrements nothing it sends; a counter cannot go down
        return f"{sample.name} cannot be negative"
    if not math.isfinite(sample.value / sample.rate):
        return f"{sample.name} divided by its sample rate is out of range"
    return None


class GunicornMetrics:
    """gunicorn's metrics in a registry, fed with parsed statsd lines."""

    def __init__(
        self,
        registry: CollectorRegistry,
        prefix: str = "gunicorn",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # gunicorn puts its statsd_prefix (with a dot) before its own "gunicorn.<metric>" names;
        # both the prefixed and the bare names are accepted.
        prefix = prefix.rstrip(".")
        optional_prefix = f"(?:{re.escape(prefix)}\\.)?" if prefix else ""
        self._names = re.compile(
            optional_prefix + r"gunicorn\.(?:(?P<requests>requests)"
            r"|(?P<duration>request\.duration)"
            r"|request\.status\.(?P<status>[1-5]\d\d)"
            r"|(?P<workers>workers)"
            rf"|log\.(?P<level>{'|'.join(LOG_LEVELS)}))"
        )
        self.registry = registry
        self._clock = clock
        self._complained_at: float | None = None
        self._unreported = 0

        self.requests = Counter(
            "gunicorn_requests", "Requests gunicorn has served.", registry=registry
        )
        self.duration = Histogram(
            "gunicorn_request_duration_seconds",
            "Time gunicorn took to serve a request.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.responses = Counter(
            "gunicorn_responses",
            "Responses gunicorn has sent, by HTTP status.",
            ["status", "code_class"],
            registry=registry,
        )
        self.log_lines = Counter(
            "gunicorn_log_lines",
            "Lines gunicorn has logged, by level.",
            ["level"],
            registry=registry,
        )
        for level in LOG_LEVELS:
            self.log_lines.labels(level=level)  # present at 0, so increase() sees the first one
        # gunicorn sends its worker count only when it changes: until the first one arrives the
        # count is unknown, and the gauge is registered then rather than exposed as a false 0.
        self.workers = Gauge("gunicorn_workers", "Workers gunicorn runs.", registry=None)
        self._workers_registered = False
        self.malformed = Counter(
            "gunicorn_statsd_malformed",
            "statsd lines the bridge could not understand.",
            registry=registry,
        )
        self.ignored = Counter(
            "gunicorn_statsd_ignored",
            "Well-formed statsd lines with a metric name the bridge does not serve.",
            registry=registry,
        )

    def record(self, items: Iterable[Sample | Malformed]) -> None:
        for item in items:
            if isinstance(item, Malformed):
                self._reject(item)
            else:
                self._record_sample(item)

    def _record_sample(self, sample: Sample) -> None:
        match = self._names.fullmatch(sample.name)
        if match is None:
            self.ignored.inc()
            return
        expected = "g" if match["workers"] else "ms" if match["duration"] else "c"
        problem = unusable(sample, expected)
        count = sample.value / sample.rate  # a line sampled at rate r stands for 1/r of them
        if problem:
            line = f"{sample.name}:{sample.value:g}|{sample.type}|@{sample.rate:g}"
            self._reject(Malformed(line.encode(), problem))
        elif match["workers"]:
            if not self._workers_registered:
                self.registry.register(self.workers)
                self._workers_registered = True
            self.workers.set(sample.value)
        elif match["duration"]:
            self.duration.observe(sample.value / 1000)  # gunicorn never samples its timers
        elif match["requests"]:
            self.requests.inc(count)
        elif status := match["status"]:
            self.responses.labels(status=status, code_class=f"{status[0]}xx").inc(count)
        else:
            self.log_lines.labels(level=match["level"]).inc(count)

    def _reject(self, malformed: Malformed) -> None:
        self.malformed.inc()
        self._unreported += 1
        now = self._clock()
        if self._complained_at is not None and now - self._complained_at < COMPLAINT_INTERVAL:
            return
        log.warning(
            "%d malformed statsd line(s) since the last report (counted in "
            "gunicorn_statsd_malformed_total); the latest: %r: %s",
            self._unreported,
            malformed.line[:200],
            malformed.reason,
        )
        self._complained_at = now
        self._unreported = 0


def address(text: str) -> tuple[str, int]:
    """host:port, [v6]:port as well."""
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not host:port, e.g. 127.0.0.1:9125")
    return host, int(port)


class _Stop(Exception):
    """Raised by the SIGTERM handler to leave the receive loop."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve gunicorn's statsd metrics to Prometheus.")
    parser.add_argument(
        "--statsd", type=address, required=True, help="UDP host:port gunicorn sends statsd to"
    )
    parser.add_argument(
        "--listen", type=address, required=True, help="host:port to serve /metrics on"
    )
    parser.add_argument(
        "--prefix", default="gunicorn", help="gunicorn's statsd_prefix (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    registry = CollectorRegistry()
    metrics = GunicornMetrics(registry, args.prefix)
    host, port = args.statsd
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        # The handler raises in this thread, which interrupts the blocking recv at once.
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind((host, port))
                start_http_server(args.listen[1], addr=args.listen[0], registry=registry)
            except OSError as error:
                log.error(
                    "cannot listen on udp %s:%d and http %s:%d: %s (another bridge running? "
                    "an address this host does not have?)",
                    host,
                    port,
                    *args.listen,
                    error,
                )
                return 1
            log.info("statsd on udp %s:%d, metrics on http %s:%d", host, port, *args.listen)
            while True:
                metrics.record(parse_datagram(sock.recv(65535)))
    except _Stop:
        log.info("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
