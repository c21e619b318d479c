"""The targets table of `make bench` (bench/run.py): each target's figure from this run's raw
numbers, its bound, and whether it is met; a figure nobody measured is said so, never met."""

from __future__ import annotations

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
    bench.raw["cluster.balancer_1was.rps"] = [80.0, 90.0, 100.0]
    bench.raw["cluster.direct_1was.rps"] = [100.0, 100.0, 100.0]
    assert row("balancer (1 WAS) / direct, requests/s").endswith("| ≥ 0.90 | 0.90 | met |")
    bench.raw["cluster.balancer_1was.rps"] = [89.0]
    assert row("balancer (1 WAS) / direct, requests/s").endswith("| 0.89 | **not met** |")


def test_what_no_run_measured_is_not_measured() -> None:
    assert row("no-op `site.yml`, changed=0 (s)").endswith("| - | not measured |")
    assert row("killed WAS: failed GETs with one retry").endswith("| - | not measured |")
    bench.raw["shipped.ping"] = [0.0]
    bench.raw["shipped.site_noop"] = [100.0]
    assert row("no-op `site.yml` / ping").endswith("not measured |")


def test_figures_kept_from_an_earlier_run_count() -> None:
    bench.earlier["raw"] = {"alert.seconds_to_firing_mail": [188.0]}
    assert row("CPU burn to the firing mail (s)").endswith("| ≤ 300 | 188 | met |")
