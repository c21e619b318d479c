"""The app's release (tools/app_release.py): same tree, same id; excluded files stay home."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from repo_module import load

REPO = Path(__file__).resolve().parents[2]


app_release = load("tools/app_release.py")


@pytest.fixture
def app(tmp_path: Path) -> Path:
    src = tmp_path / "app"
    (src / "config").mkdir(parents=True)
    (src / "config" / "settings.py").write_text("DEBUG = False\n")
    (src / "manage.py").write_text("#!/usr/bin/env python3\n")
    (src / "manage.py").chmod(0o755)
    (src / "requirements.txt").write_text("# pinned\nDjango==5.2.19  # web\n\ngunicorn==27.0.1\n")
    (src / "tests").mkdir()
    (src / "tests" / "test_x.py").write_text("def test(): pass\n")
    (src / "config" / "__pycache__").mkdir()
    (src / "config" / "__pycache__" / "settings.cpython-313.pyc").write_bytes(b"\0")
    (src / "db.sqlite3").write_bytes(b"local data")
    return src


def names(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return tar.getnames()


def test_the_release_holds_the_app_without_tests_caches_or_local_data(
    app: Path, tmp_path: Path
) -> None:
    release = app_release.build(app, tmp_path / "out")
    assert names(release.archive) == [
        "./config/settings.py",
        "./manage.py",
        "./requirements.txt",
        "./RELEASE",
    ]


def test_the_release_names_its_own_id(app: Path, tmp_path: Path) -> None:
    (app / "RELEASE").write_text("a stale id of the tree's own\n")
    release = app_release.build(app, tmp_path / "out")
    with tarfile.open(release.archive) as tar:
        member = tar.extractfile("./RELEASE")
        assert member is not None
        assert member.read() == f"{release.id}\n".encode()
    # The id is the app's content alone: the tree's own RELEASE changes nothing.
    (app / "RELEASE").unlink()
    assert app_release.build(app, tmp_path / "again").id == release.id


def test_the_same_tree_gives_the_same_id_whatever_the_file_times(app: Path, tmp_path: Path) -> None:
    first = app_release.build(app, tmp_path / "one")
    for path in app.rglob("*"):
        path.touch()
    second = app_release.build(app, tmp_path / "two")
    assert first.id == second.id
    assert first.archive.read_bytes() == second.archive.read_bytes()


def test_a_changed_file_gives_a_new_id(app: Path, tmp_path: Path) -> None:
    before = app_release.build(app, tmp_path / "out")
    (app / "config" / "settings.py").write_text("DEBUG = True\n")
    assert app_release.build(app, tmp_path / "out").id != before.id


def test_modes_and_owners_are_fixed(app: Path, tmp_path: Path) -> None:
    with tarfile.open(app_release.build(app, tmp_path / "out").archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["./manage.py"].mode == 0o755
    assert members["./config/settings.py"].mode == 0o644
    assert {(m.uid, m.gid, m.mtime) for m in members.values()} == {(0, 0, 0)}


def test_requirements_are_the_pinned_lines_only(app: Path) -> None:
    assert app_release.requirements(app) == ["Django==5.2.19", "gunicorn==27.0.1"]


def test_the_command_prints_what_the_playbook_needs(
    app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app_release.main(["--src", str(app), "--out", str(tmp_path / "out")])
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"id", "archive", "requirements"}
    assert Path(printed["archive"]).name == f"app-{printed['id']}.tar"


def test_a_directory_without_requirements_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no requirements.txt"):
        app_release.build(tmp_path, tmp_path / "out")
