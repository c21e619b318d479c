"""Fails a test session that put a secret on a command line (tests/conftest.py runs it).

Every user of a host can read every process's command line (`ps`, /proc/<pid>/cmdline); a
process's environment and stdin stay private to its owner. So while the cluster tests run, a
thread samples `ps -eww -o pid=,args=` on the controller every 0.2 s and remembers each process
whose command line holds one of the secrets it watches. At the end of the session the conftest
fails the session if there was one, naming the secret and the process, never printing the value.

What the controller's ps covers: the commands testinfra and Ansible start there (`ssh … <command>`,
`ansible … -a <command>`), and, in the lab, everything on the lab hosts too: every lab host is a
systemd-nspawn container on the controller's kernel, so the controller's ps lists every process of
every lab host (the `/bin/sh -c <command>` of a test, the clients it starts, what the roles run).
Against a production inventory it covers the controller only.

A process that lives less than one interval can be missed: the watch is evidence, not proof. What
holds regardless is how the tests build their commands (cluster_support.env_command).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PS = ("ps", "-eww", "-o", "pid=,args=")
INTERVAL = 0.2
# Shorter values are not watched: they would turn up in unrelated command lines.
MIN_LENGTH = 8
MASK = "***"
# Sightings a report lists; it counts the rest.
REPORTED = 20
# The test directories whose sessions are watched: those that run against the lab's hosts.
TESTS = Path(__file__).resolve().parent
WATCHED_DIRS = tuple(TESTS / name for name in ("converge", "infra", "e2e"))


def watches(paths: Iterable[Path | str]) -> bool:
    """Whether a session running these test files is watched: one of them is a cluster test."""
    return any(
        Path(path).resolve().is_relative_to(directory)
        for path in paths
        for directory in WATCHED_DIRS
    )


@dataclass(frozen=True)
class Sighting:
    """A secret on a command line: what the secret is, and the process, its secrets masked."""

    name: str
    pid: int
    args: str

    def __str__(self) -> str:
        return f"{self.name}: pid {self.pid}: {self.args}"


class SecretWatch:
    """Samples the process table in a thread (start, stop) for the values it is given."""

    def __init__(self, secrets: Mapping[str, str], interval: float = INTERVAL) -> None:
        """`secrets` maps each value to what it is (a variable name); short values are dropped."""
        self.interval = interval
        self.secrets = {v: n for v, n in secrets.items() if len(v) >= MIN_LENGTH}
        self.samples = 0
        self.errors: list[str] = []
        self._sightings: dict[tuple[str, int, str], Sighting] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Sample once now (a watch that cannot run ps fails here), then every interval."""
        self.sample()
        self._thread = threading.Thread(target=self._run, name="secret-watch", daemon=True)
        self._thread.start()

    def stop(self) -> list[Sighting]:
        """Stop sampling; what was seen, in the order it was first seen."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        return self.sightings

    @property
    def sightings(self) -> list[Sighting]:
        return list(self._sightings.values())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                if len(self.errors) < REPORTED:
                    self.errors.append(str(exc))

    def sample(self) -> None:
        proc = subprocess.run(
            PS, capture_output=True, text=True, errors="replace", check=False, timeout=30
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(PS)} failed ({proc.returncode}): {proc.stderr.strip()}")
        self.samples += 1
        self.check(proc.stdout)

    def check(self, table: str) -> None:
        """Remember each line of `ps -o pid=,args=` output holding a watched value."""
        found = [value for value in self.secrets if value in table]
        if not found:
            return
        for line in table.splitlines():
            pid, _, args = line.strip().partition(" ")
            for value in found:
                if value in line:
                    seen = Sighting(self.secrets[value], int(pid), self.mask(args.strip()))
                    self._sightings.setdefault((seen.name, seen.pid, seen.args), seen)

    def mask(self, text: str) -> str:
        """`text` with every watched value replaced by ***, the longest first."""
        for value in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(value, MASK)
        return text

    def report(self) -> str:
        """What the session shows: the sightings (values masked), or that there were none."""
        seen = self.sightings
        watched = (
            f"{self.samples} samples of `{' '.join(PS)}`, {len(self.secrets)} secret values watched"
        )
        if not seen:
            lines = [f"no secret on any command line ({watched})"]
        else:
            lines = [
                f"{len(seen)} process(es) had a secret on the command line, where `ps` shows it to "
                f"every user; this fails the session ({watched}):",
                *(f"  {s}" for s in seen[:REPORTED]),
            ]
            if len(seen) > REPORTED:
                lines.append(f"  … and {len(seen) - REPORTED} more")
        if self.errors:
            lines.append(f"ps failed {len(self.errors)} time(s), e.g.: {self.errors[0]}")
        return "\n".join(lines)
