"""The autoscaler's webhook (roles/autoscaler/files/autoscaler.py): what a call asks, the bounds,
the cool-down, the lock, and the state the next site.yml reads. Steps run a real command (a small
Python script that records its arguments); the lab's tests drive the real scale playbook."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from repo_module import load

autoscaler = load("roles/autoscaler/files/autoscaler.py")

RECORDER = """import sys, time, pathlib
log = pathlib.Path(sys.argv[1])
log.write_text(log.read_text() + sys.argv[-1] + "\\n" if log.exists() else sys.argv[-1] + "\\n")
time.sleep(float(sys.argv[2]))
sys.exit(int(sys.argv[3]))
"""


def call(*alerts: dict[str, Any], version: str = "4") -> bytes:
    return json.dumps({"version": version, "status": "firing", "alerts": list(alerts)}).encode()


def alert(action: str | None, status: str = "firing") -> dict[str, Any]:
    labels = {"alertname": "WasLoadHigh", "host": "was"}
    if action:
        labels["action"] = action
    return {"status": status, "labels": labels}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    """A scaler whose command is a real script: it records the serving hosts it was given,
    sleeps, and exits with the wanted code."""

    def __init__(self, tmp_path: Path, sleep: float = 0.0, exit_code: int = 0, **bounds: Any):
        script = tmp_path / "step.py"
        script.write_text(RECORDER)
        self.calls = tmp_path / "calls.txt"
        settings = {
            "state_file": str(tmp_path / "state.json"),
            "lock_file": str(tmp_path / "lock"),
            "pool": ["was3", "was4"],
            "fixed_was": 2,
            "min_was": 2,
            "max_was": 4,
            "cooldown_seconds": 300,
            "command": [sys.executable, str(script), str(self.calls), str(sleep), str(exit_code)],
        }
        settings.update(bounds)
        self.config = autoscaler.Config.from_dict(settings)
        self.mails: list[tuple[str, str]] = []
        self.clock = Clock()
        self.scaler = autoscaler.Scaler(
            self.config,
            autoscaler.run_command(self.config),
            lambda subject, body: self.mails.append((subject, body)),
            clock=self.clock,
        )

    def steps(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def serving(self) -> list[str]:
        return self.scaler.state().serving


# --- What a call asks -------------------------------------------------------------------------


def test_a_firing_alert_with_an_action_asks_for_that_step() -> None:
    body = call(alert("scale_out"), alert(None), alert("scale_in", status="resolved"))
    assert autoscaler.requested_actions(body) == ["scale_out"]


def test_an_unknown_action_is_skipped_and_the_known_one_in_the_same_call_kept() -> None:
    body = call(alert("reboot_everything"), alert("scale_in"))
    assert autoscaler.requested_actions(body) == ["scale_in"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (call(alert("scale_out"), version="3"), "version 4"),
        (b'{"version": "4"}', "no list of alerts"),
        (call({"labels": {"action": "scale_out"}}), "without labels or status"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON that can be read"),
        (b'{"version": "4", "n": ' + b"9" * 5000 + b"}", "not JSON that can be read"),
    ],
)
def test_a_malformed_call_is_refused_with_its_reason(body: bytes, reason: str) -> None:
    with pytest.raises(autoscaler.BadCall, match=reason):
        autoscaler.requested_actions(body)


def test_a_malformed_call_changes_nothing_and_starts_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    started: list[Any] = []
    status, data = autoscaler.answer(rig.scaler, "POST", "/alerts", b"[]", started.append)
    assert status == 400 and "version 4" in data["error"]
    assert started == [] and rig.serving() == [] and not rig.config.state_file.exists()


def test_unknown_endpoints_are_404_and_the_state_is_readable(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assert autoscaler.answer(rig.scaler, "GET", "/alerts", b"", list.append)[0] == 404
    assert autoscaler.answer(rig.scaler, "DELETE", "/state", b"", list.append)[0] == 404
    status, data = autoscaler.answer(rig.scaler, "GET", "/state", b"", list.append)
    assert (status, data["serving"]) == (200, [])


def test_an_accepted_call_runs_its_step_in_the_background(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    started: list[Any] = []
    status, data = autoscaler.answer(
        rig.scaler, "POST", "/alerts", call(alert("scale_out")), started.append
    )
    assert (status, data) == (202, {"accepted": ["scale_out"]})
    assert rig.steps() == [], "nothing runs before the worker does"
    started[0]()
    assert rig.steps() == ["was3"] and rig.serving() == ["was3"]


# --- Steps, bounds, cool-down, lock -----------------------------------------------------------


def test_scale_out_adds_the_first_idle_pool_host_and_mails_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assert rig.scaler.handle("scale_out") == "was3 joined the WAS tier"
    assert rig.steps() == ["was3"]
    assert json.loads(rig.config.state_file.read_text())["serving"] == ["was3"]
    assert [subject for subject, _ in rig.mails] == ["[autoscaler] was3 joined the WAS tier"]
    assert "WAS now: 3 (bounds 2-4)" in rig.mails[0][1]


def test_the_same_alert_again_adds_no_second_host_during_the_cool_down(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.scaler.handle("scale_out")
    rig.clock.now += 299
    assert rig.scaler.handle("scale_out") == "no step: cooling down for 1 s more"
    assert rig.steps() == ["was3"] and len(rig.mails) == 1
    rig.clock.now += 1
    assert rig.scaler.handle("scale_out") == "was4 joined the WAS tier"
    assert rig.steps() == ["was3", "was3,was4"]


def test_concurrent_alerts_take_one_step(tmp_path: Path) -> None:
    rig = Rig(tmp_path, sleep=1.0, cooldown_seconds=0)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(rig.scaler.handle("scale_out")))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["no step: another step is under way"] * 2 + [
        "was3 joined the WAS tier"
    ]
    assert rig.steps() == ["was3"]


def test_scaling_never_goes_above_the_maximum(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_was=3, cooldown_seconds=0)
    rig.scaler.handle("scale_out")
    assert rig.scaler.handle("scale_out") == "no step: at the maximum of 3 WAS"
    assert rig.serving() == ["was3"]


def test_an_exhausted_pool_stops_scale_out(tmp_path: Path) -> None:
    rig = Rig(tmp_path, pool=["was3"], max_was=9, cooldown_seconds=0)
    rig.scaler.handle("scale_out")
    assert rig.scaler.handle("scale_out") == "no step: no standby host left in the pool"


def test_scale_in_returns_the_last_pool_host_and_never_goes_below_the_minimum(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, cooldown_seconds=0)
    rig.scaler.handle("scale_out")
    rig.scaler.handle("scale_out")
    assert rig.scaler.handle("scale_in") == "was4 left the WAS tier"
    assert rig.serving() == ["was3"]
    assert rig.scaler.handle("scale_in") == "was3 left the WAS tier"
    assert rig.scaler.handle("scale_in") == "no step: at the minimum of 2 WAS"
    assert rig.steps() == ["was3", "was3,was4", "was3", ""]


def test_the_inventorys_own_was_are_never_taken_out(tmp_path: Path) -> None:
    rig = Rig(tmp_path, fixed_was=3, min_was=2)
    assert rig.scaler.handle("scale_in").startswith("no step: no pool host serves")
    assert rig.steps() == []


def test_a_failed_step_keeps_the_state_and_mails_the_failure(tmp_path: Path) -> None:
    rig = Rig(tmp_path, exit_code=3)
    rig.config.state_file.write_text(json.dumps({"serving": ["was3"], "last_step_at": 0}))
    assert rig.scaler.handle("scale_out") == "scale_out of was4 FAILED"
    assert rig.serving() == ["was3"]
    assert rig.mails[0][0] == "[autoscaler] scale_out of was4 FAILED"
    # It counts as a step for the cool-down: a broken host is not retried in a loop.
    assert rig.scaler.handle("scale_out").startswith("no step: cooling down")


def test_a_step_that_raises_is_a_failed_step_mailed_and_cooled_down(tmp_path: Path) -> None:
    rig = Rig(tmp_path)

    def broken(step: Any) -> tuple[bool, str]:
        raise RuntimeError("ansible-runner broke")

    rig.scaler.runner = broken
    assert rig.scaler.handle("scale_out") == "scale_out of was3 FAILED"
    assert "ansible-runner broke" in rig.mails[0][1]
    assert rig.scaler.handle("scale_out").startswith("no step: cooling down")


def test_a_state_that_cannot_be_saved_is_said_in_the_mail(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    rig = Rig(tmp_path, state_file=str(state_dir / "state.json"))

    def step_then_lose_the_state_directory(step: Any) -> tuple[bool, str]:
        state_dir.rmdir()
        return True, "done"

    rig.scaler.runner = step_then_lose_the_state_directory
    outcome = rig.scaler.handle("scale_out")
    assert outcome.startswith("was3 joined the WAS tier, and the state was NOT saved")
    assert "NOT saved" in rig.mails[0][0]


def test_a_step_over_its_time_is_killed_with_what_it_started(tmp_path: Path) -> None:
    rig = Rig(tmp_path, sleep=30.0, command_timeout=0.5)
    started = time.monotonic()
    assert rig.scaler.handle("scale_out") == "scale_out of was3 FAILED"
    assert time.monotonic() - started < 10
    assert "timed out after" in rig.mails[0][1]


def test_hosts_that_left_the_pool_are_forgotten(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"serving": ["was3", "was9"], "last_step_at": 5}))
    assert autoscaler.State.read(state, ("was3", "was4")).serving == ["was3"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pool": None}, "wrong type"),
        ({"min_was": 3, "max_was": 2}, "min_was <= max_was"),
        ({"fixed_was": 5}, "fixed_was 5 is over max_was 4"),
        ({"pool": ["was3", "was3"]}, "names a host twice"),
        ({"command": []}, "command is empty"),
    ],
)
def test_a_wrong_configuration_is_refused_at_start(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    base = Rig(tmp_path).config
    settings = {
        "state_file": str(base.state_file),
        "lock_file": str(base.lock_file),
        "pool": list(base.pool),
        "fixed_was": 2,
        "min_was": 2,
        "max_was": 4,
        "cooldown_seconds": 1,
        "command": ["true"],
    }
    settings.update(change)
    with pytest.raises(ValueError, match=message):
        autoscaler.Config.from_dict(settings)
    del settings["lock_file"]
    with pytest.raises(ValueError, match="no 'lock_file'"):
        autoscaler.Config.from_dict(settings)
