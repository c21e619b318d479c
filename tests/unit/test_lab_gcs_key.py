"""The service-account key a GCS lab issues loads as Google's libraries load a real one."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from google.oauth2 import service_account

from lab import gcs_key


def test_the_key_loads_as_a_service_account(tmp_path: Path) -> None:
    path = tmp_path / "state" / "key.json"
    assert gcs_key.ensure_key(path, "gcs")
    credentials = service_account.Credentials.from_service_account_file(str(path))
    assert credentials.service_account_email == "app@lab-gcs.iam.gserviceaccount.com"
    assert credentials.project_id == "lab-gcs"


def test_only_root_reads_the_key(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    gcs_key.ensure_key(path, "gcs")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_existing_key_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    gcs_key.ensure_key(path, "gcs")
    first = json.loads(path.read_text())
    assert not gcs_key.ensure_key(path, "gcs")
    assert json.loads(path.read_text()) == first
