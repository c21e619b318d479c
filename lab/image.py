"""The base root filesystem every host overlays: built once per release by debootstrap."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from lab.errors import LabError
from lab.paths import base_image

MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# What a minimal cloud VM has: systemd, sshd, python3 for Ansible, and the basics.
PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "iproute2",
    "sudo",
    "ca-certificates",
    "curl",
]
COMPLETE_MARK = ".lab-base-complete"


def ensure_base_image(release: str, say: Callable[[str], None] = print) -> Path:
    """Return the cached base image for a release, building it first if it is missing."""
    target = base_image(release)
    if (target / COMPLETE_MARK).exists():
        return target
    building = target.with_name(target.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    building.parent.mkdir(parents=True, exist_ok=True)
    say(f"building the {release} base image with debootstrap (about a minute, done once)")
    started = time.monotonic()
    cmd = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        release,
        str(building),
        MIRROR,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-15:] + proc.stderr.splitlines()[-15:])
        shutil.rmtree(building, ignore_errors=True)
        raise LabError(
            f"debootstrap of {release} failed:\n{tail}",
            "check that Debian's archive is reachable, then run `lab up` again",
        )
    _customise(building, release)
    (building / COMPLETE_MARK).write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    building.rename(target)
    say(f"base image {release} ready in {time.monotonic() - started:.0f} s at {target}")
    return target


def _customise(root: Path, release: str) -> None:
    """Make the image a template: no identity of its own, apt sources complete."""
    (root / "etc/apt/sources.list").write_text(
        f"deb {MIRROR} {release} main\n"
        f"deb {MIRROR} {release}-updates main\n"
        f"deb {SECURITY_MIRROR} {release}-security main\n"
    )
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    (root / "etc/ssh/sshd_config.d").mkdir(exist_ok=True)
    (root / "etc/ssh/sshd_config.d/lab.conf").write_text(
        "# lab: root logs in with the lab key only; no DNS look-ups of clients\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n"
    )
    # No resolver: the lab hosts reach nothing outside the lab but the proxy.
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("# lab host: no DNS; apt and pip go through the lab proxy\n")
    subprocess.run(["apt-get", "-o", f"Dir={root}", "clean"], capture_output=True)
