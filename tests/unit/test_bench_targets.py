"""The targets table of `make bench` (bench/run.py): each target's figure from this run's raw
numbers, its bound, and whether it is met; a figure nobody measured is said so, never met."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from repo_module import load

bench = load("bench/run.py")


@pytest.fixture(autouse=True)
def no_figures() -> Iterator[None]:
    bench.raw.clear()
    bench.earlier.clear()
    yield
    bench.raw.clear()


def row(what: str) -> str:
    return next(line for line in bench.target_lines() if line.startswith(f"| {what} |"))


def test_a_figure_under_its_bound_is_met_and_over_it_is_not() -> None:
    bench.raw["shipped.site_noop"] = [28.0, 29.0, 40.0]
    assert row("no-op `site.yml`, changed=0 (s)").endswith("| ≤ 30.00 | 29.00 | met |")
    bench.raw["shipped.site_noop"] = [31.0, 35.0, 29.0]
    assert row("no-op `site.yml`, changed=0 (s)").endswith("| 31.00 | **not met** |")


def test_a_ratio_is_of_medians_and_a_lower_bound_wants_at_least() -> None:
    bench.raw["cluster.balancer_1was_on_lb.rps"] = [80.0, 90.0, 100.0]
    bench.raw["cluster.direct_1was.rps"] = [100.0, 100.0, 100.0]
    assert row("balancer (1 WAS) / direct, requests/s (wrk on the balancer host)").endswith(
        "| ≥ 0.90 | 0.90 | met |"
    )
    bench.raw["cluster.balancer_1was_on_lb.rps"] = [89.0]
    assert row("balancer (1 WAS) / direct, requests/s (wrk on the balancer host)").endswith(
        "| 0.89 | **not met** |"
    )


def test_what_no_run_measured_is_not_measured() -> None:
    assert row("no-op `site.yml`, changed=0 (s)").endswith("| - | not measured |")
    assert row("killed WAS: failed GETs with one retry").endswith("| - | not measured |")
    bench.raw["shipped.ping"] = [0.0]
    bench.raw["shipped.site_noop"] = [100.0]
    assert row("no-op `site.yml` / ping").endswith("not measured |")


def test_figures_kept_from_an_earlier_run_count() -> None:
    bench.earlier["raw"] = {"alert.seconds_to_firing_mail": [188.0]}
    assert row("CPU burn to the firing mail (s)").endswith("| ≤ 300 | 188 | met |")


def test_seconds_per_extra_was_is_the_slope_over_the_counts_measured() -> None:
    what = "fresh converge, seconds per extra WAS (2, 4, 8 WAS)"
    assert row(what).endswith("| - | not measured |")
    bench.raw["scaling.fresh_2was"] = [200.0, 210.0]
    assert row(what).endswith("| - | not measured |")  # one count gives no slope
    bench.raw["scaling.fresh_4was"] = [220.0]
    bench.raw["scaling.fresh_8was"] = [260.0]
    # medians 205, 220, 260 over 2, 4, 8: least squares, not the last step (10) or the first (7.5).
    assert bench.seconds_per_extra_was() == pytest.approx(9.2857, abs=1e-3)
    assert row(what).endswith("| ≤ 10.00 | 9.29 | met |")
    bench.raw["scaling.fresh_8was"] = [400.0]
    assert row(what).endswith("**not met** |")


def test_the_core_seconds_of_an_extra_was_and_their_floor_follow_the_targets() -> None:
    assert not any("busy core-seconds" in line for line in bench.target_lines())
    for count, core_s in ((2, 300.0), (4, 380.0), (8, 540.0)):
        bench.raw[f"scaling.core_s_{count}was"] = [core_s]
    assert bench.core_seconds_per_extra_was() == pytest.approx(40.0)
    assert bench.floor_per_extra_was() is None  # the cores that measured them are not known
    bench.raw["scaling.cores"] = [4.0]
    assert bench.floor_per_extra_was() == pytest.approx(10.0)
    line = next(line for line in bench.target_lines() if "busy core-seconds" in line)
    assert line.startswith("Each extra WAS cost this machine 40.00 busy core-seconds")
    assert "once its 4 cores are saturated, that adds 10.00 s to a fresh converge" in line
    assert "controller's" not in line  # not measured
    for count, core_s in ((2, 100.0), (4, 116.0), (8, 148.0)):
        bench.raw[f"scaling.controller_core_s_{count}was"] = [core_s]
    line = next(line for line in bench.target_lines() if "busy core-seconds" in line)
    assert "Of those, 8.00 core-seconds were the controller's" in line


def test_the_no_op_reports_its_controller_core_seconds() -> None:
    assert not any("no-op's controller" in line for line in bench.target_lines())
    bench.raw["shipped.site_noop"] = [60.0, 64.0, 70.0]
    bench.raw["shipped.site_noop_controller_core_s"] = [50.0, 56.0, 58.0]
    assert (
        "The no-op's controller (ansible-playbook and its processes) used 56.00 core-seconds"
        " in its 64.00 s." in bench.target_lines()
    )


def test_the_controller_core_seconds_are_those_of_children_that_ended() -> None:
    before = bench.children_core_seconds()
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", busy], check=True)
    assert bench.children_core_seconds() - before >= 0.3


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Every second GET fails with 502, as a request to a killed member would."""

    count = 0
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        with FlakyHandler.lock:
            FlakyHandler.count += 1
            status = 502 if FlakyHandler.count % 2 == 0 else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    FlakyHandler.count = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_the_failover_load_counts_first_attempts_and_what_one_retry_leaves(flaky_url: str) -> None:
    with bench.steady_load(flaky_url, concurrency=1, retry_once=True) as outcome:
        time.sleep(0.5)
    # One client, alternating answers: each failed first attempt is followed by a 200.
    assert outcome["raw_failures"] > 5
    assert outcome["failed"] == 0
    assert outcome["errors"]["http 502"] == outcome["raw_failures"]


def test_without_retry_each_failed_get_counts(flaky_url: str) -> None:
    with bench.steady_load(flaky_url, concurrency=1) as outcome:
        time.sleep(0.5)
    assert outcome["failed"] > 5
    assert outcome["failed"] == outcome["raw_failures"] == outcome["errors"]["http 502"]


def test_a_ratio_of_figures_from_different_runs_is_marked() -> None:
    bench.raw.update({"shipped.site_noop": [100.0], "linear.site_noop": [200.0]})
    assert bench.runs_of("linear.site_noop", "shipped.site_noop") == ""
    assert "mixed" in bench.runs_of("stock.site_noop", "shipped.site_noop")
    assert bench.runs_of("stock.site_noop", "stock.ping") == " (earlier run)"


def test_a_kept_figure_names_the_run_that_measured_it() -> None:
    bench.earlier.update(
        {
            "commit": "bbb2222",
            "date": "2026-12-06",
            "earlier": {"commit": "aaa1111", "date": "2026-12-05", "keys": ["cluster.x"]},
            "measured_by": {"shipped.y": {"commit": "ccc3333", "date": "2026-12-04"}},
        }
    )
    assert bench.measured_by("shipped.y") == "commit `ccc3333`, 2026-12-04"  # its own record
    assert bench.measured_by("cluster.x") == "commit `aaa1111`, 2026-12-05"  # kept before
    assert bench.measured_by("alert.z") == "commit `bbb2222`, 2026-12-06"  # the earlier run's
