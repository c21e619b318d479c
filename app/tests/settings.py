"""Test settings: the real config.settings, read from a controlled environment.

Developer or CI DJANGO_* variables must not leak in, so they are replaced, not defaulted.
STORAGE_EMULATOR_HOST goes too: the GCS tests prove the app reaches an emulator without it.
Redis, S3 and GCS are switched on per test by fixtures (see conftest.py) against real servers.
"""

import os
import tempfile

for _name in [n for n in os.environ if n.startswith("DJANGO_") or n == "STORAGE_EMULATOR_HOST"]:
    del os.environ[_name]

_tmp = tempfile.mkdtemp(prefix="app-tests-")
os.environ.update(
    {
        "DJANGO_SECRET_KEY": "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DJANGO_DEBUG": "false",
        "DJANGO_HTTPS": "false",
        "DJANGO_ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
        "DJANGO_STORAGE": "filesystem",
        "DJANGO_MEDIA_ROOT": os.path.join(_tmp, "media"),
        "DJANGO_STATIC_ROOT": os.path.join(_tmp, "static"),
        "DJANGO_DB_NAME": os.path.join(_tmp, "db.sqlite3"),
        "DJANGO_LOG_LEVEL": "WARNING",
    }
)

from config.settings import *  # noqa: E402, F403

# Fast hashing keeps sign-up and login tests quick; it changes nothing they assert.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
