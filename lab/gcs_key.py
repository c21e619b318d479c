"""A service-account key for a lab whose media live in (emulated) Google Cloud Storage.

The lab stands in for Google: as IAM would, it issues the key the installer puts on the
application servers. The key is real (RSA, the JSON layout Google's key files have), so the
installer's checks and google-auth load it as they would in production; the emulator accepts any
request, so nothing ever sends it to Google.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# Hosts of this inventory group run the GCS emulator (roles/gcs_emulator).
EMULATOR_GROUP = "gcs_emulator"


def service_account_key(lab_name: str) -> dict[str, str]:
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    project = f"lab-{lab_name}"
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": f"app@{project}.iam.gserviceaccount.com",
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def ensure_key(path: Path, lab_name: str) -> bool:
    """Write a new key to `path` (mode 0600) unless one is there; True when written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(service_account_key(lab_name), out, indent=2)
    return True
