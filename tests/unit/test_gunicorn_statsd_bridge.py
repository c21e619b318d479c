"""gunicorn's statsd bridge (roles/exporters/files/gunicorn_statsd_bridge.py): what gunicorn sends
becomes the Prometheus series the alerts read, and nothing a sender can send brings it down."""

from __future__ import annotations

import logging
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from repo_module import REPO, load

SCRIPT = "roles/exporters/files/gunicorn_statsd_bridge.py"
bridge = load(SCRIPT)
Sample, Malformed = bridge.Sample, bridge.Malformed


# --- Parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "sample"),
    [
        (b"gunicorn.requests:1|c", Sample("gunicorn.requests", 1.0, "c", 1.0)),
        (b"gunicorn.requests:1|c|@1.0", Sample("gunicorn.requests", 1.0, "c", 1.0)),
        (b"gunicorn.requests:1|c|@0.25", Sample("gunicorn.requests", 1.0, "c", 0.25)),
        (
            b"gunicorn.request.duration:7000.0|ms",
            Sample("gunicorn.request.duration", 7000.0, "ms", 1.0),
        ),
        (b"gunicorn.workers:4|g", Sample("gunicorn.workers", 4.0, "g", 1.0)),
        (b"gunicorn.backlog:0|h", Sample("gunicorn.backlog", 0.0, "h", 1.0)),
        (
            b"gunicorn.log.error:1|c|@1.0|#env:lab,tier:was",
            Sample("gunicorn.log.error", 1.0, "c", 1.0),
        ),
        (b"gunicorn.requests:-1|c|@1.0", Sample("gunicorn.requests", -1.0, "c", 1.0)),
        (b"gunicorn.requests:1e3|c", Sample("gunicorn.requests", 1000.0, "c", 1.0)),
        (b"gunicorn.requests:1|c\r", Sample("gunicorn.requests", 1.0, "c", 1.0)),
    ],
)
def test_a_statsd_line_is_parsed(line: bytes, sample: object) -> None:
    assert bridge.parse_datagram(line) == [sample]


def test_every_line_of_a_datagram_is_parsed_in_order() -> None:
    datagram = b"gunicorn.request.duration:12.5|ms\ngunicorn.requests:1|c|@1.0\n\nnonsense\n"
    assert bridge.parse_datagram(datagram) == [
        Sample("gunicorn.request.duration", 12.5, "ms", 1.0),
        Sample("gunicorn.requests", 1.0, "c", 1.0),
        Malformed(b"nonsense", "no name:value before the first |"),
    ]


@pytest.mark.parametrize("datagram", [b"", b"\n", b"\n\n  \n"])
def test_an_empty_datagram_holds_nothing(datagram: bytes) -> None:
    assert bridge.parse_datagram(datagram) == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"gunicorn.requests", "no name:value"),
        (b"gunicorn.requests:1", "type ''"),
        (b":1|c", "no name:value"),
        (b"gunicorn.requests:|c", "is not a number"),
        (b"gunicorn.requests:one|c", "is not a number"),
        (b"gunicorn.requests:nan|c", "is not a number"),
        (b"gunicorn.requests:inf|c", "is not a number"),
        (b"gunicorn.requests:1_000|c", "is not a number"),
        (b"gunicorn.requests:1e400|c", "out of range"),
        (b"gunicorn.requests:" + b"9" * 400 + b"|c", "out of range"),
        (b"gunicorn.requests:1|x", "type 'x'"),
        (b"gunicorn.requests:1|", "type ''"),
        (b"gunicorn.requests:1|c|@0", "not in (0, 1]"),
        (b"gunicorn.requests:1|c|@1.5", "not in (0, 1]"),
        (b"gunicorn.requests:1|c|@often", "neither @rate nor #tags"),
        (b"gunicorn.requests:1|c|T1700000000", "neither @rate nor #tags"),
        (b"gunicorn.requests:\xff\xfe|c", "not UTF-8"),
        (b"\xc3\x28:1|c", "not UTF-8"),
    ],
)
def test_a_line_that_is_not_statsd_is_malformed_with_a_reason(line: bytes, reason: str) -> None:
    [item] = bridge.parse_datagram(line)
    assert isinstance(item, Malformed)
    assert item.line == line
    assert reason in item.reason


def test_a_bad_line_spoils_only_itself() -> None:
    items = bridge.parse_datagram(b"\xff\xff\ngunicorn.workers:2|g")
    assert [type(item) for item in items] == [Malformed, Sample]


def test_a_huge_but_finite_value_is_a_number() -> None:
    [sample] = bridge.parse_datagram(b"gunicorn.request.duration:1e300|ms")
    assert sample == Sample("gunicorn.request.duration", 1e300, "ms", 1.0)


def test_random_bytes_never_raise() -> None:
    rng = random.Random(9125)
    metrics = bridge.GunicornMetrics(CollectorRegistry())
    alphabet = b"gunicor.reqstdaw0123456789:|@#-+eE\n\xff "
    for _ in range(5000):
        size = rng.randrange(0, 80)
        datagram = bytes(rng.choice(alphabet) for _ in range(size))
        metrics.record(bridge.parse_datagram(datagram))
    assert value(metrics, "gunicorn_statsd_malformed_total") > 0


# --- The registry ----------------------------------------------------------------------------


def value(metrics: Any, name: str, **labels: str) -> float:
    sample = metrics.registry.get_sample_value(name, labels)
    return 0.0 if sample is None else float(sample)


@pytest.fixture
def metrics() -> Any:
    return bridge.GunicornMetrics(CollectorRegistry(), prefix="gunicorn")


def feed(metrics: Any, datagram: bytes) -> None:
    metrics.record(bridge.parse_datagram(datagram))


def test_a_250_ms_request_lands_in_the_quarter_second_bucket(metrics: Any) -> None:
    feed(metrics, b"gunicorn.gunicorn.request.duration:250.0|ms")
    bucket = "gunicorn_request_duration_seconds_bucket"
    assert value(metrics, bucket, le="0.1") == 0
    assert value(metrics, bucket, le="0.25") == 1
    assert value(metrics, bucket, le="+Inf") == 1
    assert value(metrics, "gunicorn_request_duration_seconds_sum") == 0.25


def test_a_502_counts_under_5xx(metrics: Any) -> None:
    feed(metrics, b"gunicorn.gunicorn.request.status.502:1|c|@1.0")
    feed(metrics, b"gunicorn.gunicorn.request.status.200:1|c|@1.0")
    assert value(metrics, "gunicorn_responses_total", status="502", code_class="5xx") == 1
    assert value(metrics, "gunicorn_responses_total", status="200", code_class="2xx") == 1


def test_requests_count_and_a_sample_rate_scales_them(metrics: Any) -> None:
    feed(metrics, b"gunicorn.gunicorn.requests:1|c|@1.0\ngunicorn.gunicorn.requests:1|c|@0.1")
    assert value(metrics, "gunicorn_requests_total") == pytest.approx(11)


def test_log_lines_count_by_level_and_start_at_zero(metrics: Any) -> None:
    assert value(metrics, "gunicorn_log_lines_total", level="error") == 0
    assert metrics.registry.get_sample_value("gunicorn_log_lines_total", {"level": "critical"}) == 0
    feed(metrics, b"gunicorn.gunicorn.log.error:1|c|@1.0")
    assert value(metrics, "gunicorn_log_lines_total", level="error") == 1


def test_workers_are_absent_until_gunicorn_reports_them(metrics: Any) -> None:
    registry = metrics.registry
    assert registry.get_sample_value("gunicorn_workers") is None
    feed(metrics, b"gunicorn.gunicorn.workers:4|g")
    feed(metrics, b"gunicorn.gunicorn.workers:3|g")
    assert registry.get_sample_value("gunicorn_workers") == 3


@pytest.mark.parametrize("prefix", ["gunicorn", "gunicorn.", ""])
def test_names_with_and_without_the_statsd_prefix_are_served(prefix: str) -> None:
    metrics = bridge.GunicornMetrics(CollectorRegistry(), prefix=prefix)
    feed(metrics, b"gunicorn.requests:1|c|@1.0")
    if prefix:
        feed(metrics, b"gunicorn.gunicorn.requests:1|c|@1.0")
    assert value(metrics, "gunicorn_requests_total") == (2 if prefix else 1)


@pytest.mark.parametrize(
    "line",
    [
        b"gunicorn.gunicorn.backlog:3|h",
        b"gunicorn.gunicorn.request.status.99:1|c",
        b"gunicorn.gunicorn.request.status.5021:1|c",
        b"gunicorn.gunicorn.log.info:1|c",
        b"other.gunicorn.requests:1|c",
        b"myapp.signups:1|c",
    ],
)
def test_a_metric_it_does_not_serve_is_ignored_and_counted(metrics: Any, line: bytes) -> None:
    feed(metrics, line)
    assert value(metrics, "gunicorn_statsd_ignored_total") == 1
    assert value(metrics, "gunicorn_statsd_malformed_total") == 0
    assert value(metrics, "gunicorn_requests_total") == 0


@pytest.mark.parametrize(
    "line",
    [
        b"gunicorn.gunicorn.requests:1|g",  # wrong type for the name
        b"gunicorn.gunicorn.request.duration:250|c",
        b"gunicorn.gunicorn.requests:-1|c|@1.0",  # a counter cannot go down
        b"gunicorn.gunicorn.request.duration:-3|ms",
        b"gunicorn.gunicorn.requests:1e300|c|@1e-300",  # overflows once scaled
        b"gunicorn.gunicorn.requests:1|c|@",
    ],
)
def test_a_sample_that_cannot_be_recorded_counts_as_malformed(metrics: Any, line: bytes) -> None:
    feed(metrics, line)
    assert value(metrics, "gunicorn_statsd_malformed_total") == 1
    assert value(metrics, "gunicorn_requests_total") == 0
    assert value(metrics, "gunicorn_request_duration_seconds_count") == 0


def test_malformed_input_is_logged_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    metrics = bridge.GunicornMetrics(CollectorRegistry(), clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="gunicorn_statsd_bridge"):
        for _ in range(3):
            feed(metrics, b"garbage")
        now[0] += 59
        feed(metrics, b"garbage")
        assert len(caplog.records) == 1
        now[0] += 2
        feed(metrics, b"\xff")
    assert value(metrics, "gunicorn_statsd_malformed_total") == 5
    first, second = (record.getMessage() for record in caplog.records)
    assert first.startswith("1 malformed") and "b'garbage'" in first
    assert second.startswith("4 malformed") and "not UTF-8" in second


def test_what_gunicorn_really_sends_is_understood() -> None:
    """gunicorn's own Statsd logger, as django_was configures it (statsd_prefix "gunicorn")."""
    config = pytest.importorskip("gunicorn.config")
    instrument = pytest.importorskip("gunicorn.instrument.statsd")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        cfg = config.Config()
        cfg.set("statsd_host", f"127.0.0.1:{receiver.getsockname()[1]}")
        cfg.set("statsd_prefix", "gunicorn")
        logger = instrument.Statsd(cfg)
        logger.access(SimpleNamespace(status="502 Bad Gateway"), None, {}, timedelta(seconds=0.25))
        logger.error("worker timeout")
        logger.debug(
            "4 workers", extra={"metric": "gunicorn.workers", "value": 4, "mtype": "gauge"}
        )
        metrics = bridge.GunicornMetrics(CollectorRegistry())
        for _ in range(5):
            metrics.record(bridge.parse_datagram(receiver.recv(65535)))
        logger.sock.close()
    assert value(metrics, "gunicorn_requests_total") == 1
    assert value(metrics, "gunicorn_responses_total", status="502", code_class="5xx") == 1
    assert value(metrics, "gunicorn_request_duration_seconds_bucket", le="0.25") == 1
    assert value(metrics, "gunicorn_log_lines_total", level="error") == 1
    assert value(metrics, "gunicorn_workers") == 4
    assert value(metrics, "gunicorn_statsd_malformed_total") == 0
    assert value(metrics, "gunicorn_statsd_ignored_total") == 0


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("127.0.0.1:9125", ("127.0.0.1", 9125)), ("[::1]:9102", ("::1", 9102))],
)
def test_an_address_is_host_and_port(text: str, parsed: tuple[str, int]) -> None:
    assert bridge.address(text) == parsed


@pytest.mark.parametrize("text", ["9125", "127.0.0.1", "127.0.0.1:", ":9125", "host:99999"])
def test_a_bad_address_is_refused(text: str) -> None:
    with pytest.raises(bridge.argparse.ArgumentTypeError, match="is not host:port"):
        bridge.address(text)


# --- End to end ------------------------------------------------------------------------------


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, ConnectionError):
        return None


@pytest.fixture
def running_bridge() -> Iterator[tuple[subprocess.Popen[str], int, str]]:
    statsd, http = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / SCRIPT),
            "--statsd",
            f"127.0.0.1:{statsd}",
            "--listen",
            f"127.0.0.1:{http}",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{http}/metrics"
    try:
        deadline = time.monotonic() + 15
        while scrape(url) is None:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the bridge did not serve /metrics in 15 s"
            time.sleep(0.05)
        yield process, statsd, url
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_the_bridge_serves_what_it_receives_and_stops_on_sigterm(
    running_bridge: tuple[subprocess.Popen[str], int, str],
) -> None:
    process, statsd, url = running_bridge
    datagrams = [
        b"gunicorn.gunicorn.request.duration:250.0|ms",
        b"gunicorn.gunicorn.requests:1|c|@1.0",
        b"gunicorn.gunicorn.request.status.502:1|c|@1.0",
        b"gunicorn.gunicorn.requests:1|c|@1.0\ngunicorn.gunicorn.request.status.200:1|c|@1.0",
        b"gunicorn.gunicorn.workers:4|g",
        b"gunicorn.gunicorn.log.error:1|c|@1.0",
        b"gunicorn.gunicorn.backlog:0|h",
        b"\xff\xfe not statsd",
    ]
    expected = [
        "gunicorn_requests_total 2.0",
        'gunicorn_request_duration_seconds_bucket{le="0.25"} 1.0',
        'gunicorn_responses_total{code_class="5xx",status="502"} 1.0',
        'gunicorn_responses_total{code_class="2xx",status="200"} 1.0',
        "gunicorn_workers 4.0",
        'gunicorn_log_lines_total{level="error"} 1.0',
        "gunicorn_statsd_ignored_total 1.0",
        "gunicorn_statsd_malformed_total 1.0",
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for datagram in datagrams:
            sender.sendto(datagram, ("127.0.0.1", statsd))
    deadline = time.monotonic() + 10
    while True:
        lines = set((scrape(url) or "").splitlines())
        missing = [line for line in expected if line not in lines]
        if not missing:
            break
        assert time.monotonic() < deadline, f"not in /metrics after 10 s: {missing}"
        time.sleep(0.05)

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=5)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "1 malformed statsd line(s)" in stderr
