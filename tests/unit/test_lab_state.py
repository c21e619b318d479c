"""The lab remembers whose generated secrets its hosts hold (an id kept beside them), so `lab up`
from another checkout, or from a fresh clone at the same path, rebuilds it instead of reusing
hosts that hold other secrets, and a copy of the inventory that links the same secrets (the
scale-out test's) reuses it."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lab import commands, state
from lab.paths import LabPaths
from lab.spec import HostSpec, LabSpec

SPEC = LabSpec(
    name="unit",
    subnet=ipaddress.IPv4Network("10.79.0.0/24"),
    release="trixie",
    hosts=(HostSpec("was1", ipaddress.IPv4Address("10.79.0.11")),),
)


class Booting(Exception):
    """Raised where `up` goes on to build the lab: the test stops there."""


@pytest.fixture
def paths(tmp_path: Path) -> LabPaths:
    paths = LabPaths("unit")
    paths.root = tmp_path / "unit"
    return paths


def downs_when_up(paths: LabPaths, monkeypatch: pytest.MonkeyPatch, credentials: Path) -> list[str]:
    """Run `up` with every host running, stopping where it would boot; the labs it tore down."""
    downs: list[str] = []
    monkeypatch.setattr(commands, "down", lambda p, s: downs.append(s.name))
    monkeypatch.setattr(commands.hosts, "is_running", lambda p, s, n: True)

    def booting(*args: object) -> None:
        raise Booting

    monkeypatch.setattr(commands, "check_overlaps", booting)
    with pytest.raises(Booting):
        commands.up(paths, SPEC, credentials)
    return downs


def test_the_secrets_id_is_made_once_and_kept(tmp_path: Path) -> None:
    credentials = tmp_path / "inventory" / "credentials"
    first = state.secrets_id(credentials)
    assert len(first) == 32 and state.secrets_id(credentials) == first
    assert state.secrets_id(tmp_path / "other" / "credentials") != first


def test_whose_secrets_the_lab_holds_is_kept_across_saves(paths: LabPaths) -> None:
    state.save(paths, SPEC, {"was1": "10.79.0.11"}, "theirs")
    state.save(paths, SPEC, {"was1": "10.79.0.11", "was2": "10.79.0.12"})
    saved = state.load(paths)
    assert saved["credentials"] == "theirs"
    assert set(saved["hosts"]) == {"was1", "was2"}


def test_up_keeps_a_lab_that_holds_our_secrets(
    tmp_path: Path, paths: LabPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "checkout" / "credentials"
    state.save(paths, SPEC, {"was1": "10.79.0.11"}, state.secrets_id(credentials))
    assert downs_when_up(paths, monkeypatch, credentials) == []


@pytest.mark.parametrize("recorded", ["another-checkouts-id", None])
def test_up_rebuilds_a_lab_that_holds_other_or_unknown_secrets(
    tmp_path: Path, paths: LabPaths, monkeypatch: pytest.MonkeyPatch, recorded: str | None
) -> None:
    state.save(paths, SPEC, {"was1": "10.79.0.11"}, recorded)
    assert downs_when_up(paths, monkeypatch, tmp_path / "checkout" / "credentials") == ["unit"]


def test_a_fresh_clone_at_the_same_path_is_another_lab(
    tmp_path: Path, paths: LabPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI clones main where the last checkout was: same path, new secrets."""
    credentials = tmp_path / "checkout" / "inventory" / "lab" / "credentials"
    state.save(paths, SPEC, {"was1": "10.79.0.11"}, state.secrets_id(credentials))
    (credentials / state.SECRETS_ID_FILE).unlink()
    credentials.rmdir()
    assert downs_when_up(paths, monkeypatch, credentials) == ["unit"]


def test_a_copied_inventory_that_links_the_secrets_is_the_same_lab(
    tmp_path: Path, paths: LabPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What lab/cli.py passes: <inventory>/credentials, through the copy's link."""
    original = tmp_path / "checkout" / "inventory" / "lab" / "credentials"
    copy = tmp_path / "scale-out"
    copy.mkdir()
    (copy / "credentials").symlink_to(original, target_is_directory=True)
    state.save(paths, SPEC, {"was1": "10.79.0.11"}, state.secrets_id(original))
    assert downs_when_up(paths, monkeypatch, (copy / "credentials").resolve()) == []
