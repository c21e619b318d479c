"""testinfra fixtures: hosts by group, what their roles report, the data tiers as clients see them.

Hosts come from the inventory under test (--ansible-inventory, else $LAB_INVENTORY, else
inventory/lab). A test asks for `db_host`, `was_host`, `any_host`... and runs once per host of that
group; each such host carries `inventory_name` and `address` (its ansible_host). Settings come from
the JSON local facts the roles leave on the hosts (/etc/ansible/facts.d/<role>.fact), secrets from
the inventory.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import testinfra
from cluster_support import (
    GROUP_ROLES,
    FactReader,
    Tier,
    address,
    get_host,
    group_hosts,
    host_fact,
    lab_inventory,
    rendered,
)

GROUP_FIXTURES = {
    "db_host": "db",
    "redis_host": "redis",
    "sentinel_host": "sentinel",
    "storage_host": "storage",
    "gcs_emulator_host": "gcs_emulator",
    "build_host": "build",
    "was_host": "was",
    "lb_host": "lb",
    "monitoring_host": "monitoring",
    "any_host": "all",
}


def selected_inventory(config: pytest.Config) -> Path:
    option = config.getoption("ansible_inventory", None)
    return Path(option).resolve() if option else lab_inventory()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    inventory = selected_inventory(metafunc.config)
    for fixture, group in GROUP_FIXTURES.items():
        if fixture in metafunc.fixturenames:
            names = group_hosts(inventory, group)
            metafunc.parametrize(fixture, names, ids=names, indirect=True)


def inventory_host(inventory: Path, name: str) -> testinfra.host.Host:
    """The testinfra host of an inventory name, with its `inventory_name` and `address`."""
    host = get_host(inventory, name)
    host.inventory_name = name  # type: ignore[attr-defined]
    # Tests compare against the host's own address (grants, CURRENT_USER(), listening sockets).
    host.address = address(inventory, name)  # type: ignore[attr-defined]
    return host


def _host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return inventory_host(selected_inventory(request.config), request.param)


@pytest.fixture
def db_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return _host(request)


@pytest.fixture
def redis_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return _host(request)


@pytest.fixture
def sentinel_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return _host(request)


@pytest.fixture
def storage_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return _host(request)


@pytest.fixture
def gcs_emulator_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return _host(request)


@pytest.fixture
def was_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return _host(request)


@pytest.fixture
def build_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return _host(request)


@pytest.fixture
def lb_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return _host(request)


@pytest.fixture
def monitoring_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return _host(request)


@pytest.fixture
def any_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return _host(request)


@pytest.fixture(scope="session")
def read_fact(inventory: Path) -> FactReader:
    """host_fact by inventory name, read once per session: these tests change no role's settings."""

    @functools.cache
    def read(name: str, fact: str) -> dict[str, Any]:
        return host_fact(get_host(inventory, name), fact)

    return read


@pytest.fixture
def lb_fact(lb_host: testinfra.host.Host, read_fact: FactReader) -> dict[str, Any]:
    return read_fact(lb_host.inventory_name, "apache_lb")


@pytest.fixture
def was_fact(was_host: testinfra.host.Host, read_fact: FactReader) -> dict[str, Any]:
    return read_fact(was_host.inventory_name, "django_was")


@pytest.fixture
def db_fact(db_host: testinfra.host.Host, read_fact: FactReader) -> dict[str, Any]:
    return read_fact(db_host.inventory_name, "mariadb")


@pytest.fixture
def redis_fact(redis_host: testinfra.host.Host, read_fact: FactReader) -> dict[str, Any]:
    return read_fact(redis_host.inventory_name, "redis")


@pytest.fixture
def storage_fact(storage_host: testinfra.host.Host, read_fact: FactReader) -> dict[str, Any]:
    return read_fact(storage_host.inventory_name, "object_storage")


@pytest.fixture
def firewall_fact(any_host: testinfra.host.Host, read_fact: FactReader) -> dict[str, Any]:
    return read_fact(any_host.inventory_name, "firewall")


def _tier(inventory: Path, read_fact: FactReader, group: str) -> Tier:
    """The first host of a data-tier group as its clients see it."""
    hosts = group_hosts(inventory, group)
    assert hosts, f"the inventory {inventory} has no host in group {group}"
    name = hosts[0]
    return Tier(
        name=name,
        address=address(inventory, name),
        fact=read_fact(name, GROUP_ROLES[group]),
        secrets=rendered(inventory, name),
        firewall=bool(read_fact(name, "firewall")["enabled"]),
    )


@pytest.fixture(scope="session")
def db(inventory: Path, read_fact: FactReader) -> Tier:
    return _tier(inventory, read_fact, "db")


@pytest.fixture(scope="session")
def redis(inventory: Path, read_fact: FactReader) -> Tier:
    return _tier(inventory, read_fact, "redis")


@pytest.fixture(scope="session")
def storage(inventory: Path, read_fact: FactReader) -> Tier:
    if not group_hosts(inventory, "storage"):
        # An inventory with cluster_storage gcs has no SeaweedFS; validation requires one for s3.
        pytest.skip(f"{inventory} keeps media in GCS: it has no storage host")
    return _tier(inventory, read_fact, "storage")


@pytest.fixture
def gcs_emulator_fact(
    gcs_emulator_host: testinfra.host.Host, read_fact: FactReader
) -> dict[str, Any]:
    return read_fact(gcs_emulator_host.inventory_name, "gcs_emulator")


@pytest.fixture(scope="session")
def was_addresses(inventory: Path) -> set[str]:
    return {address(inventory, h) for h in group_hosts(inventory, "was")}
