"""testinfra fixtures: hosts by group, and the settings the checks compare against.

Hosts and settings come from the inventory under test (--ansible-inventory, else $LAB_INVENTORY,
else inventory/lab). A test asks for `db_host`, `was_host`... and runs once per host of that group.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml
from cluster_support import REPO, Tier, address, get_host, group_hosts, host_vars, lab_inventory

GROUP_FIXTURES = {
    "db_host": "db",
    "redis_host": "redis",
    "storage_host": "storage",
    "was_host": "was",
    "lb_host": "lb",
}

# Variables the checks need, and the role whose default applies when the inventory is silent.
SETTINGS = {
    "mariadb_port": "mariadb",
    "mariadb_database": "mariadb",
    "mariadb_app_user": "mariadb",
    "mariadb_app_password": "mariadb",
    "mariadb_app_privileges": "mariadb",
    "mariadb_firewall_enabled": "mariadb",
    "redis_port": "redis",
    "redis_app_user": "redis",
    "redis_app_password": "redis",
    "redis_app_key_pattern": "redis",
    "redis_maxmemory_policy": "redis",
    "redis_appendonly": "redis",
    "redis_firewall_enabled": "redis",
    "object_storage_s3_port": "object_storage",
    "object_storage_bucket": "object_storage",
    "object_storage_access_key": "object_storage",
    "object_storage_secret_key": "object_storage",
    "object_storage_master_port": "object_storage",
    "object_storage_volume_port": "object_storage",
    "object_storage_filer_port": "object_storage",
    "object_storage_user": "object_storage",
    "object_storage_firewall_enabled": "object_storage",
    "firewall_enabled": "firewall",
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


def _host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    inventory = selected_inventory(request.config)
    host = get_host(inventory, request.param)
    # Tests compare against the host's own address (grants, CURRENT_USER(), refusals).
    host.address = address(inventory, request.param)  # type: ignore[attr-defined]
    return host


@pytest.fixture
def db_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return _host(request)


@pytest.fixture
def redis_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return _host(request)


@pytest.fixture
def storage_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return _host(request)


@pytest.fixture
def was_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return _host(request)


@pytest.fixture
def lb_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    return _host(request)


@functools.cache
def role_defaults(role: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text()) or {}


def _tier(inventory: Path, group: str, role: str) -> Tier:
    name = group_hosts(inventory, group)[0]
    rendered = host_vars(inventory, tuple(SETTINGS))[name]
    settings: dict[str, Any] = {}
    for key, owner in SETTINGS.items():
        value = rendered.get(key)
        settings[key] = value if value is not None else role_defaults(owner).get(key)
    # Role toggles default to firewall_enabled; a role's own toggle wins when the inventory sets it.
    own = rendered.get(f"{role}_firewall_enabled")
    settings["firewall_enabled"] = own if own is not None else settings["firewall_enabled"]
    return Tier(name, address(inventory, name), settings)


@pytest.fixture(scope="session")
def db(inventory: Path) -> Tier:
    return _tier(inventory, "db", "mariadb")


@pytest.fixture(scope="session")
def redis(inventory: Path) -> Tier:
    return _tier(inventory, "redis", "redis")


@pytest.fixture(scope="session")
def storage(inventory: Path) -> Tier:
    return _tier(inventory, "storage", "object_storage")


@pytest.fixture(scope="session")
def was_addresses(inventory: Path) -> set[str]:
    return {address(inventory, h) for h in group_hosts(inventory, "was")}
