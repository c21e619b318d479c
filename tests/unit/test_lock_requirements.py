"""The hash locks (tools/lock_requirements.py): each lock pins exactly its requirements file's
versions, every pin with hashes, so the two cannot drift. No network: PyPI is a stub here."""

from __future__ import annotations

import io
import re
import urllib.error
from pathlib import Path
from typing import Any

import pytest
from repo_module import load

REPO = Path(__file__).resolve().parents[2]
LOCKED = ("app/requirements.txt", "app/requirements-build.txt")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")

lock_requirements = load("tools/lock_requirements.py")


def parse_lock(text: str) -> dict[tuple[str, str], list[str]]:
    """(normalised name, version) -> its hashes; pip's format, read independently of the tool."""
    entries: dict[tuple[str, str], list[str]] = {}
    logical = re.sub(r"\\\n", " ", text)
    for raw in logical.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        spec, *options = line.split()
        name, _, version = re.sub(r"\[.*\]", "", spec).partition("==")
        key = (re.sub(r"[-_.]+", "-", name).lower(), version)
        assert key not in entries, f"{spec} is locked twice"
        entries[key] = options
    return entries


def requirement_pins(path: Path) -> set[tuple[str, str]]:
    return {pin.key for pin in lock_requirements.pins(path.read_text(), str(path))}


@pytest.mark.parametrize("requirements", LOCKED)
def test_the_lock_pins_exactly_the_requirements(requirements: str) -> None:
    path = REPO / requirements
    locked = parse_lock(path.with_suffix(".lock").read_text())
    assert set(locked) == requirement_pins(path), (
        f"{path.with_suffix('.lock').name} is stale: run tools/lock_requirements.py {requirements}"
    )


@pytest.mark.parametrize("requirements", LOCKED)
def test_every_locked_pin_has_a_sha256_hash(requirements: str) -> None:
    locked = parse_lock((REPO / requirements).with_suffix(".lock").read_text())
    unhashed = [pin for pin, options in locked.items() if not options]
    malformed = [o for options in locked.values() for o in options if not HASH.match(o)]
    assert (unhashed, malformed) == ([], [])


# --- The tool, against a stub of PyPI -------------------------------------------------------------

DIGESTS = {"wheel": "b" * 64, "sdist": "a" * 64}


def stub_pypi(versioned: bool) -> Any:
    """A fetch answering like PyPI: the release page, or (versioned=False) only the project's."""

    def fetch(url: str) -> dict[str, Any]:
        files = [{"digests": {"sha256": d}} for d in DIGESTS.values()]
        if url.endswith("/mysqlclient/2.3.1/json") and versioned:
            return {"urls": files}
        if url.endswith("/mysqlclient/json"):
            return {"releases": {"2.3.1": files, "2.3.0": [{"digests": {"sha256": "c" * 64}}]}}
        raise urllib.error.HTTPError(url, 404, "Not Found", {}, io.BytesIO())  # type: ignore[arg-type]

    return fetch


@pytest.mark.parametrize("versioned", [True, False])
def test_every_file_of_the_pinned_version_is_hashed(versioned: bool) -> None:
    pin = lock_requirements.pins("mysqlclient==2.3.1\n")[0]
    assert lock_requirements.hashes_of(pin, stub_pypi(versioned)) == sorted(DIGESTS.values())


def test_a_version_pypi_does_not_have_is_refused() -> None:
    pin = lock_requirements.pins("mysqlclient==9.9.9\n")[0]
    with pytest.raises(SystemExit, match="no files with sha256 digests for version 9.9.9"):
        lock_requirements.hashes_of(pin, stub_pypi(versioned=False))


@pytest.mark.parametrize("line", ["Django>=5.2", "gunicorn", "-e ./app", "pillow==13.0.0; x"])
def test_a_requirement_that_is_not_pinned_is_refused(line: str) -> None:
    with pytest.raises(SystemExit, match=r"requirements.txt:2: .* is not pinned as name==version"):
        lock_requirements.pins(f"# app\n{line}\n", "requirements.txt")


def test_the_lock_keeps_extras_and_is_pips_format(tmp_path: Path) -> None:
    pin = lock_requirements.pins("django-storages[s3,google]==1.14.6  # media\n")[0]
    text = lock_requirements.render("app/requirements.txt", [(pin, ["a" * 64, "b" * 64])])
    assert text.splitlines()[2:] == [
        "django-storages[s3,google]==1.14.6 \\",
        f"    --hash=sha256:{'a' * 64} \\",
        f"    --hash=sha256:{'b' * 64}",
    ]
    assert parse_lock(text) == {
        ("django-storages", "1.14.6"): [f"--hash=sha256:{'a' * 64}", f"--hash=sha256:{'b' * 64}"]
    }
