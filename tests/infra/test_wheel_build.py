"""Wheels built elsewhere (roles wheel_build and django_was): the build host holds a wheelhouse
pinned by hash; the application servers install exactly those wheels and carry no compiler.

Paths, keys and package names come from the local facts: wheel_build.fact on the build host, and
django_was_wheelhouse.fact (which wheelhouse the virtualenv holds) on each application server.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cluster_support import FactReader, get_host, group_hosts
from testinfra.host import Host

# A line of the servers' requirements.txt: one wheel, pinned by its own sha256.
PINNED_WHEEL = re.compile(
    r"^(?P<name>[A-Za-z0-9._]+)==(?P<version>\S+) --hash=sha256:(?P<sha>[0-9a-f]{64})$"
)
# The compiled distribution the build host exists for (an sdist on PyPI, no Linux wheel).
COMPILED = "mysqlclient"
# Compares the RECORD of the installed distribution with that of its wheel in the wheelhouse: the
# compiled modules (.so) must be the very files the build host built (a local build differs).
SAME_BINARIES = """
import json, pathlib, sys, zipfile
from importlib import metadata
wheelhouse, name = pathlib.Path(sys.argv[1]), sys.argv[2]
dist = metadata.distribution(name)
installed = {str(f): f.hash.value for f in dist.files or [] if f.hash and f.suffix == ".so"}
wheels = sorted(wheelhouse.glob(f"{name}-{dist.version}-*.whl"))
built = {}
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        for row in z.read(record).decode().splitlines():
            path, digest, _ = row.rsplit(",", 2)
            if path.endswith(".so") and digest:
                built[path] = digest.partition("=")[2]
print(json.dumps({"wheels": [w.name for w in wheels], "installed": installed, "built": built}))
"""

# Prints every C or C++ compiler on PATH, versioned or for a target (gcc-14,
# x86_64-linux-gnu-gcc-14, g++, c++): a compiler left behind under a name a fixed list would miss.
COMPILERS_ON_PATH = r"""
import os, re
compiler = re.compile(r"^(cc|c\+\+|(.+-)?(gcc|g\+\+|clang)(-[0-9.]+)?)$")
for folder in os.environ.get("PATH", "").split(os.pathsep):
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            if compiler.match(name) and os.access(os.path.join(folder, name), os.X_OK):
                print(os.path.join(folder, name))
"""


def pins(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture
def build_fact(build_host: Host, read_fact: FactReader) -> dict[str, Any]:
    return read_fact(build_host.inventory_name, "wheel_build")


@pytest.fixture
def wheels_fact(was_host: Host, read_fact: FactReader) -> dict[str, Any]:
    """Which wheelhouse this server's virtualenv holds (django_was)."""
    return read_fact(was_host.inventory_name, "django_was_wheelhouse")


@pytest.fixture
def builder(inventory: Path, read_fact: FactReader) -> tuple[Host, dict[str, Any]]:
    """The build host and its fact, for a test of an application server."""
    hosts = group_hosts(inventory, "build")
    assert len(hosts) == 1, f"{inventory} needs exactly one host in group build, has {hosts}"
    return get_host(inventory, hosts[0]), read_fact(hosts[0], "wheel_build")


# --- The build host -------------------------------------------------------------------------------


def test_the_build_host_has_the_wheelhouse(build_host: Host, build_fact: dict[str, Any]) -> None:
    assert build_host.file(build_fact["wheelhouse"]).is_directory
    assert build_host.file(build_fact["requirements"]).is_file


def test_every_wheel_of_the_wheelhouse_is_pinned_by_its_own_hash(
    build_host: Host, build_fact: dict[str, Any]
) -> None:
    lines = pins(build_host.file(build_fact["requirements"]).content_string)
    pinned = {m["sha"] for m in map(PINNED_WHEEL.match, lines) if m}
    sums = build_host.check_output("cd %s && sha256sum -- *.whl", build_fact["wheelhouse"])
    wheels = {line.split()[0] for line in sums.splitlines()}
    assert wheels and pinned == wheels


def test_the_build_host_built_a_wheel_of_every_locked_requirement(
    build_host: Host, build_fact: dict[str, Any]
) -> None:
    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    lock = build_host.file(build_fact["lock"]).content_string
    locked = {
        canonical(re.sub(r"\[.*\]", "", line.split("==")[0])) for line in pins(lock) if "==" in line
    }
    built = {
        canonical(line.split("==")[0])
        for line in pins(build_host.file(build_fact["requirements"]).content_string)
    }
    assert locked and built == locked


def test_the_build_host_holds_the_compiler(build_host: Host, build_fact: dict[str, Any]) -> None:
    missing = [p for p in build_fact["packages"] if not build_host.package(p).is_installed]
    assert missing == []


# --- The application servers ----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["cc", "gcc", "{architecture}-linux-gnu-gcc"])
def test_no_compiler_is_on_the_path(
    was_host: Host, wheels_fact: dict[str, Any], command: str
) -> None:
    name = command.format(**wheels_fact["platform"])
    assert not was_host.exists(name), f"{was_host.inventory_name} has {name}"


def test_no_versioned_compiler_is_on_the_path(was_host: Host) -> None:
    found = was_host.run("python3 -c %s", COMPILERS_ON_PATH)
    assert found.rc == 0, found.stderr
    assert found.stdout.split() == []


def test_no_compiler_package_is_installed(was_host: Host, wheels_fact: dict[str, Any]) -> None:
    assert wheels_fact["compiler_packages"], "the fact lists no compiler packages"
    installed = [p for p in wheels_fact["compiler_packages"] if was_host.package(p).is_installed]
    assert installed == []


def test_every_requirement_of_the_servers_wheelhouse_carries_a_hash(
    was_host: Host, wheels_fact: dict[str, Any]
) -> None:
    lines = pins(was_host.file(wheels_fact["requirements"]).content_string)
    assert lines
    assert [line for line in lines if not PINNED_WHEEL.match(line)] == []


def test_the_server_installs_what_the_build_host_built(
    was_host: Host, wheels_fact: dict[str, Any], builder: tuple[Host, dict[str, Any]]
) -> None:
    build_host, build_fact = builder
    assert (wheels_fact["key"], wheels_fact["platform"]) == (
        build_fact["key"],
        build_fact["platform"],
    )
    ours = was_host.file(wheels_fact["requirements"]).sha256sum
    assert ours == wheels_fact["requirements_sha256"]
    assert ours == build_host.file(build_fact["requirements"]).sha256sum


def test_the_compiled_module_is_the_build_hosts_wheel(
    was_host: Host, wheels_fact: dict[str, Any]
) -> None:
    python = f"{wheels_fact['venv']}/bin/python"
    result = was_host.run(
        "%s -c %s %s %s", python, SAME_BINARIES, wheels_fact["wheelhouse"], COMPILED
    )
    assert result.rc == 0, result.stderr
    found = json.loads(result.stdout)
    assert len(found["wheels"]) == 1, found
    assert found["installed"], f"{COMPILED} in {wheels_fact['venv']} has no compiled module"
    assert found["installed"] == found["built"]
