"""Where a lab keeps its state, and where base images are cached."""

from __future__ import annotations

import os
from pathlib import Path

STATE_ROOT = Path(os.environ.get("LAB_STATE_ROOT", "/var/lib/lab"))
CACHE_ROOT = Path(os.environ.get("LAB_CACHE_ROOT", "/var/cache/lab"))


class LabPaths:
    """The files of one lab under STATE_ROOT/<name>."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.root = STATE_ROOT / name

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def ssh_key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def gcs_key(self) -> Path:
        """The service-account key of a lab with a GCS emulator (lab/gcs_key.py)."""
        return self.root / "gcs-service-account.json"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def host_dir(self, host: str) -> Path:
        return self.root / "hosts" / host

    def host_root(self, host: str) -> Path:
        return self.host_dir(host) / "root"

    def pidfile(self, what: str) -> Path:
        return self.run_dir / f"{what}.pid"

    def log(self, what: str) -> Path:
        return self.log_dir / f"{what}.log"


def base_image(release: str) -> Path:
    return CACHE_ROOT / f"base-{release}"
