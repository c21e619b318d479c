"""The cluster's Prometheus rules (roles/monitoring/files/rules): promtool accepts them, and their
unit tests (cluster.rules.test.yml) pass: each alert fires where it should and nowhere else."""

from __future__ import annotations

import subprocess

import pytest
from repo_module import REPO

PROMTOOL = REPO / ".venv/bin/promtool"
RULES = REPO / "roles/monitoring/files/rules"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if not PROMTOOL.is_file():
        target = PROMTOOL.relative_to(REPO)
        pytest.fail(
            f"{PROMTOOL} is missing: run `make {target}` (or `make unit`), which extracts it"
        )
    return subprocess.run(
        [str(PROMTOOL), *args], cwd=RULES, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args",
    [("check", "rules", "cluster.rules.yml"), ("test", "rules", "cluster.rules.test.yml")],
    ids=["check", "test"],
)
def test_promtool_accepts_the_rules(args: tuple[str, ...]) -> None:
    result = promtool(*args)
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} failed in {RULES}:\n{result.stdout}{result.stderr}"
    )
