"""What the autoscaler's host receives (roles/autoscaler/files/pack.py): the installer and the
inventory as tarballs whose bytes depend on the files only, so an unchanged tree copies nothing."""

from __future__ import annotations

import os
import tarfile
import time
from pathlib import Path

from repo_module import load

pack = load("roles/autoscaler/files/pack.py")


def tree(root: Path) -> Path:
    for name, text in {
        "site.yml": "---\n",
        "roles/a/tasks/main.yml": "---\n",
        "roles/a/files/tool.py": "print()\n",
        "roles/a/files/__pycache__/tool.cpython-313.pyc": "x",
        "app/manage.py": "#!/usr/bin/env python\n",
        ".cache/releases/old.tar": "x",
        "tests/test_x.py": "x",
    }.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "app/manage.py").chmod(0o755)
    return root


def members(archive: Path) -> dict[str, int]:
    with tarfile.open(archive) as tar:
        return {info.name: info.mode for info in tar.getmembers()}


def test_the_installer_holds_what_runs_it_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "out.tar.gz"
    pack.pack(tree(tmp_path / "src"), pack.INSTALLER_PATHS, out, 0o755)
    found = members(out)
    assert set(found) == {
        "site.yml",
        "roles/a/tasks/main.yml",
        "roles/a/files/tool.py",
        "app/manage.py",
    }
    assert found["app/manage.py"] == 0o755
    assert found["site.yml"] == 0o644


def test_the_same_files_give_the_same_bytes_and_no_rewrite(tmp_path: Path) -> None:
    src = tree(tmp_path / "src")
    first, second = tmp_path / "first.tar.gz", tmp_path / "second.tar.gz"
    pack.pack(src, pack.INSTALLER_PATHS, first, 0o755)
    os.utime(src / "site.yml", (time.time() + 100, time.time() + 100))
    pack.pack(src, pack.INSTALLER_PATHS, second, 0o755)
    assert first.read_bytes() == second.read_bytes()
    written = second.stat().st_mtime_ns
    pack.pack(src, pack.INSTALLER_PATHS, second, 0o755)
    assert second.stat().st_mtime_ns == written, "an unchanged tree rewrote the tarball"
    (src / "site.yml").write_text("--- # changed\n")
    pack.pack(src, pack.INSTALLER_PATHS, second, 0o755)
    assert first.read_bytes() != second.read_bytes()


def test_the_inventory_is_readable_by_its_owner_only_links_followed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "credentials").mkdir(parents=True)
    (shared / "credentials/db_password.txt").write_text("secret")
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text("all: {}\n")
    (inventory / "credentials").symlink_to(shared / "credentials", target_is_directory=True)
    out = tmp_path / "inventory.tar.gz"
    pack.pack(inventory, None, out, 0o700)
    assert members(out) == {"hosts.yml": 0o600, "credentials/db_password.txt": 0o600}
    assert out.stat().st_mode & 0o777 == 0o600
