"""The secret watch (tests/secret_watch.py) and the commands that keep secrets off command lines
(cluster_support.env_command and the clients built on it), on this machine, without a lab."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cluster_support import (
    curl_user_config,
    env_command,
    mariadb_app_command,
    read_env,
    redis_app_command,
)
from secret_watch import MIN_LENGTH, SecretWatch, watches

TESTS = Path(__file__).resolve().parents[1]
# A value a shell would trip over if the environment file were sourced: $, quotes, ;, \, spaces.
TRICKY = "a$b;c'd\"e\\f g`h`%s"


def fake_secret() -> str:
    return f"fake-secret-{uuid.uuid4().hex}"


@pytest.fixture
def watching() -> Iterator[Callable[[dict[str, str]], SecretWatch]]:
    """Starts a watch (sampling every 0.05 s) over the secrets given; stopped after the test."""
    watches: list[SecretWatch] = []

    def start(secrets: dict[str, str]) -> SecretWatch:
        watch = SecretWatch(secrets, interval=0.05)
        watches.append(watch)
        watch.start()
        return watch

    yield start
    for watch in watches:
        watch.stop()


def wait_until(condition: Callable[[], object], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_secret_on_a_command_line_is_seen_and_never_printed(
    watching: Callable[[dict[str, str]], SecretWatch],
) -> None:
    secret = fake_secret()
    watch = watching({secret: "fake_secret_variable"})
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", secret])
    try:
        wait_until(lambda: watch.sightings)
    finally:
        proc.kill()
        proc.wait()
    sightings = watch.stop()
    assert [(s.name, s.pid) for s in sightings] == [("fake_secret_variable", proc.pid)]
    assert sightings[0].args.endswith("import time; time.sleep(30) ***")
    report = watch.report()
    assert "fake_secret_variable" in report and f"pid {proc.pid}" in report
    assert secret not in report and all(secret not in str(s) for s in sightings)


def test_the_watch_stays_quiet_when_no_command_line_holds_a_secret(
    watching: Callable[[dict[str, str]], SecretWatch],
) -> None:
    watch = watching({fake_secret(): "fake_secret_variable"})
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", fake_secret()])
    try:
        wait_until(lambda: watch.samples >= 5)
    finally:
        proc.kill()
        proc.wait()
    assert watch.stop() == []
    assert watch.samples >= 5
    assert watch.report().startswith("no secret on any command line")


def test_short_values_are_not_watched() -> None:
    assert SecretWatch({"x" * (MIN_LENGTH - 1): "short", "y" * MIN_LENGTH: "long"}).secrets == {
        "y" * MIN_LENGTH: "long"
    }


def test_only_sessions_with_cluster_tests_are_watched() -> None:
    assert not watches([TESTS / "unit" / "test_secret_watch.py", TESTS / "lab" / "test_x.py"])
    for directory in ("converge", "infra", "e2e"):
        assert watches([TESTS / "unit" / "test_x.py", TESTS / directory / "test_x.py"])


def host_run(command: str, path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run a command as a host would (/bin/sh -c), with `path` first on PATH."""
    env = {**os.environ, "PATH": f"{path}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, text=True, env=env, cwd=tmp_path
    )


def env_file(tmp_path: Path, **variables: str) -> str:
    path = tmp_path / "app.env"
    lines = ["# a comment=not a variable", ""] + [f"{k}={v}" for k, v in variables.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def fake_client(tmp_path: Path, name: str, *env_names: str) -> Path:
    """A stand-in for a client on PATH that prints its arguments and some of its environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    client = bin_dir / name
    prints = "".join(f'printf "{n}=%s\\n" "${n}"\n' for n in env_names)
    client.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "arg=%s\\n" "$a"; done\n{prints}')
    client.chmod(0o755)
    return bin_dir


def test_env_command_reads_the_file_as_the_app_does_and_keeps_values_off_argv(
    tmp_path: Path, watching: Callable[[dict[str, str]], SecretWatch]
) -> None:
    secret = fake_secret() + TRICKY
    path = env_file(tmp_path, TEST_SECRET=secret)
    assert read_env(Path(path).read_text().splitlines()) == {"TEST_SECRET": secret}
    command = env_command(path, 'sleep 1; printf "%%s|%%s" "$TEST_SECRET" %s', "an argument")
    assert secret not in command
    watch = watching({secret: "TEST_SECRET"})
    result = host_run(command, tmp_path, tmp_path)
    assert watch.stop() == [] and watch.samples >= 5
    assert (result.returncode, result.stdout) == (0, f"{secret}|an argument"), result.stderr


@pytest.mark.parametrize("tls", [False, True])
def test_the_mariadb_client_uses_the_was_environment_file(tmp_path: Path, tls: bool) -> None:
    password = fake_secret() + TRICKY
    ca = str(tmp_path / "db-ca.pem") if tls else ""
    path = env_file(
        tmp_path,
        DJANGO_DB_HOST="10.77.0.20",
        DJANGO_DB_PORT="3306",
        DJANGO_DB_NAME="app",
        DJANGO_DB_USER="app",
        DJANGO_DB_PASSWORD=password,
        DJANGO_DB_SSL_CA=ca,
    )
    command = mariadb_app_command(path, "SELECT 1")
    assert password not in command
    result = host_run(command, fake_client(tmp_path, "mariadb", "MYSQL_PWD"), tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"MYSQL_PWD={password}" in lines
    args = [line.removeprefix("arg=") for line in lines if line.startswith("arg=")]
    assert args[-9:] == ["-h", "10.77.0.20", "-P", "3306", "-u", "app", "app", "-e", "SELECT 1"]
    tls_args = ["--ssl", f"--ssl-ca={ca}", "--ssl-verify-server-cert"]
    assert (args[:3] == tls_args) is tls and ("--ssl" in args) is tls


def test_the_mariadb_client_takes_a_wrong_password(tmp_path: Path) -> None:
    path = env_file(tmp_path, DJANGO_DB_PASSWORD=fake_secret())
    result = host_run(
        mariadb_app_command(path, "SELECT 1", "not-the-password"),
        fake_client(tmp_path, "mariadb", "MYSQL_PWD"),
        tmp_path,
    )
    assert "MYSQL_PWD=not-the-password" in result.stdout.splitlines()


def test_redis_cli_gets_the_password_of_the_cache_url(tmp_path: Path) -> None:
    password = fake_secret() + "/:@%"
    quoted = password.replace("%", "%25").replace("/", "%2F").replace(":", "%3A")
    path = env_file(tmp_path, DJANGO_REDIS_URL=f"redis://app:{quoted.replace('@', '%40')}@h:1/0")
    command = redis_app_command(path, "10.77.0.30", 6379, "app", "SET", "app:k", "1")
    assert password not in command and quoted not in command
    result = host_run(command, fake_client(tmp_path, "redis-cli", "REDISCLI_AUTH"), tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"REDISCLI_AUTH={password}" in lines
    assert "arg=--user" in lines and "arg=app:k" in lines


def test_curl_credentials_become_a_config_line(tmp_path: Path) -> None:
    secret = fake_secret() + TRICKY
    path = env_file(tmp_path, KEY_ID="AKIDEXAMPLE", KEY_SECRET=secret)
    command = env_command(path, curl_user_config('"$KEY_ID:$KEY_SECRET"'))
    assert secret not in command
    result = host_run(command, tmp_path, tmp_path)
    escaped = secret.replace("\\", "\\\\").replace('"', '\\"')
    assert result.stdout == f'user = "AKIDEXAMPLE:{escaped}"\n', result.stderr
