"""Build the app's release on the controller: a tarball named by a hash of its content.

    python3 tools/app_release.py --src app --out .cache/releases

prints JSON: {"id": ..., "archive": ..., "requirements": [...]}. playbooks/was.yml hands these
to the django_was role. The tarball holds the app's files in sorted order, with fixed owners,
modes and times, so the same tree gives the same id on any machine and any checkout.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

# Added at the archive's root: the release's id, which the app shows (X-App-Release, footer).
RELEASE_FILE = "RELEASE"
# Names (files or directories, at any depth) never shipped to the servers (a RELEASE of the tree's
# own is replaced by the one written here).
EXCLUDE = (
    "tests",
    "__pycache__",
    "var",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".gitignore",
    "*.pyc",
    "*.sqlite3",
    "pytest.ini",
    "ruff.toml",
    "requirements-test.txt",
    "apt-packages.txt",
    RELEASE_FILE,
)
ID_LENGTH = 16


@dataclass(frozen=True)
class Release:
    id: str
    archive: Path
    requirements: list[str]


def excluded(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in EXCLUDE)


def release_files(src: Path) -> list[Path]:
    """Every file to ship, relative to src, in a stable order."""
    found: list[Path] = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not excluded(d))
        for name in sorted(files):
            if not excluded(name):
                found.append((Path(root) / name).relative_to(src))
    return sorted(found, key=lambda p: p.as_posix())


def pack(src: Path, files: list[Path], extra: dict[str, bytes] | None = None) -> bytes:
    """A tar of the files (and `extra` name -> content), identical for identical content (no
    times, owners or umask leak in)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        members = [
            (f.as_posix(), (src / f).read_bytes(), os.access(src / f, os.X_OK)) for f in files
        ]
        members += [(name, data, False) for name, data in sorted((extra or {}).items())]
        for name, data, executable in members:
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            info.mode = 0o755 if executable else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def requirements(src: Path) -> list[str]:
    """The pinned requirements (name==version), comments and blank lines dropped."""
    lines = (src / "requirements.txt").read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def build(src: Path, out: Path) -> Release:
    if not (src / "requirements.txt").is_file():
        raise SystemExit(f"{src} has no requirements.txt: pass --src the app's directory")
    files = release_files(src)
    release_id = hashlib.sha256(pack(src, files)).hexdigest()[:ID_LENGTH]
    # The app reads its own id from RELEASE (config/release.py); the id stays a hash of the app.
    data = pack(src, files, {RELEASE_FILE: f"{release_id}\n".encode()})
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"app-{release_id}.tar"
    if not archive.exists():
        partial = archive.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(data)
        partial.replace(archive)
    return Release(release_id, archive.resolve(), requirements(src))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True, help="the app's directory")
    parser.add_argument("--out", type=Path, required=True, help="where release tarballs go")
    args = parser.parse_args(argv)
    release = build(args.src, args.out)
    print(
        json.dumps(
            {
                "id": release.id,
                "archive": str(release.archive),
                "requirements": release.requirements,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
