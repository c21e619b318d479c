#!/usr/bin/env python3
"""Pack the installer and its inventory for the monitoring host, which runs them to scale.

    pack.py --installer DIR --inventory DIR --out DIR

Writes DIR/installer.tar.gz (the playbooks, roles, app and tools) and DIR/inventory.tar.gz (the
inventory, its secrets included: mode 0600), and prints {"installer": path, "inventory": path}.
The same trees give the same bytes (sorted names, no times, no owners), so the copy to the host
changes nothing until a file does.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

# What the installer runs from; nothing else of a checkout (.git, .venv, .cache, tests, docs).
INSTALLER_PATHS = ("site.yml", "ansible.cfg", "playbooks", "roles", "plugins", "app", "tools",
                   "requirements.txt")  # fmt: skip
SKIPPED_NAMES = {
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".venv",
    ".cache",
}


def files_under(root: Path, names: tuple[str, ...] | None) -> Iterator[Path]:
    """Every regular file to pack, relative to root, in sorted order."""
    tops = [root / name for name in names] if names else [root]
    for top in tops:
        if top.is_file():
            yield top.relative_to(root)
            continue
        for directory, subdirs, files in os.walk(top, followlinks=True):
            subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_NAMES)
            for name in sorted(files):
                if not name.endswith(".pyc"):
                    yield (Path(directory) / name).relative_to(root)


def pack(root: Path, names: tuple[str, ...] | None, out: Path, mode: int) -> None:
    """A reproducible tar.gz of the files, each with `mode`'s bits (less x for files that are not
    executable); written only when its bytes differ."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative in files_under(root, names):
            path = root / relative
            info = tarfile.TarInfo(str(relative))
            info.size = path.stat().st_size
            info.mode = mode & (0o777 if os.access(path, os.X_OK) else 0o666)
            info.mtime = 0
            with path.open("rb") as data:
                tar.addfile(info, data)
    packed = gzip.compress(buffer.getvalue(), mtime=0)
    if out.exists() and out.read_bytes() == packed:
        return
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(packed)
    tmp.chmod(mode & 0o666)
    tmp.replace(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--installer", type=Path, required=True)
    parser.add_argument("--inventory", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.out.chmod(0o700)
    installer, inventory = args.out / "installer.tar.gz", args.out / "inventory.tar.gz"
    pack(args.installer.resolve(), INSTALLER_PATHS, installer, 0o755)
    pack(args.inventory.resolve(), None, inventory, 0o700)
    print(json.dumps({"installer": str(installer), "inventory": str(inventory)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
