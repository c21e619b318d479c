"""The release this code is: the id tools/app_release.py writes into RELEASE at the release's root.

A checkout has no RELEASE file: its release is "dev".
"""

from __future__ import annotations

from pathlib import Path

DEV = "dev"


def read(base_dir: Path) -> str:
    try:
        return (base_dir / "RELEASE").read_text().strip() or DEV
    except FileNotFoundError:
        return DEV
