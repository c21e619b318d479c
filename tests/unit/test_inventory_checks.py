"""The inventory checks of roles/validate_inventory refuse a broken inventory with a message that
names the variable, the host and the file to fix, and accept a good one.

The contract and the wiring are the real files; host variables are plain dicts, as Ansible's
hostvars would render them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from repo_module import load

from lab import gcs_key

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "roles/validate_inventory/filter_plugins/inventory_checks.py"
CONTRACT: dict[str, Any] = yaml.safe_load((REPO / "roles/cluster/defaults/main.yml").read_text())
WIRING: dict[str, Any] = yaml.safe_load((REPO / "roles/wiring/vars/main.yml").read_text())

ADDRESSES = {
    "lb1": "10.77.0.10",
    "was1": "10.77.0.11",
    "was2": "10.77.0.12",
    "db1": "10.77.0.21",
    "redis1": "10.77.0.31",
    "store1": "10.77.0.41",
    "build1": "10.77.0.61",
}
GROUPS = {
    "all": list(ADDRESSES),
    "ungrouped": [],
    "lb": ["lb1"],
    "was": ["was1", "was2"],
    "db": ["db1"],
    "redis": ["redis1"],
    "storage": ["store1"],
    "build": ["build1"],
}
PLACEHOLDER = CONTRACT["cluster_placeholder"]


checks = load(str(PLUGIN.relative_to(REPO)))


def good_secret(name: str) -> str:
    """A value that passes: long enough for the contract, no placeholder."""
    length = CONTRACT["cluster_secrets"][name]["min_length"]
    return ("s3cr3t" + name).ljust(length + 8, "x")


def good_hostvars() -> dict[str, dict[str, Any]]:
    """A valid inventory: what group_vars/all and hosts.yml give each host."""
    common = {
        "cluster_public_names": ["photos.example.com"],
        "firewall_admin_networks": ["192.0.2.0/24"],
        **{name: good_secret(name) for name in CONTRACT["cluster_secrets"]},
    }
    return {host: {"ansible_host": ip, **common} for host, ip in ADDRESSES.items()}


def problems(
    hostvars: dict[str, Any],
    tmp_path: Path,
    groups: dict[str, list[str]] | None = None,
) -> list[str]:
    inventory = tmp_path / "inventory"
    inventory.mkdir(exist_ok=True)
    (inventory / "hosts.yml").touch()
    return checks.inventory_problems(
        hostvars, groups or GROUPS, CONTRACT, WIRING, str(inventory), str(tmp_path)
    )


def the_problem(found: list[str], *words: str) -> str:
    """The one problem found, after checking that it mentions every word."""
    assert len(found) == 1, found
    for word in words:
        assert word in found[0], found[0]
    return found[0]


# --- A good inventory -----------------------------------------------------------------------------


def test_good_inventory_has_no_problems(tmp_path: Path) -> None:
    assert problems(good_hostvars(), tmp_path) == []


def test_lab_style_inventory_without_https_needs_no_public_names(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    for variables in hostvars.values():
        variables.update(cluster_https=False, cluster_public_names=[])
    assert problems(hostvars, tmp_path) == []


def test_filter_is_exposed_under_its_names() -> None:
    filters = checks.FilterModule().filters()
    assert filters["cluster_inventory_problems"] is checks.inventory_problems
    assert filters["validate_inventory_problems"] is checks.inventory_problems


def test_report_numbers_every_problem() -> None:
    report = checks.problem_report(["first is wrong", "second is wrong"])
    assert report.splitlines() == [
        "The inventory has 2 problem(s); no host has been changed:",
        "1. first is wrong",
        "2. second is wrong",
    ]


# --- Groups ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "text"),
    [(1, None, "at least 1"), (1, 1, "exactly 1"), (1, 3, "between 1 and 3")],
)
def test_group_sizes_are_said_in_words(low: int, high: int | None, text: str) -> None:
    assert checks.size_text(low, high) == text


@pytest.mark.parametrize(
    ("group", "members", "needs"),
    [
        ("db", [], "has 0 host(s) (none) but needs at least 1"),
        ("lb", [], "has 0 host(s) (none) but needs at least 1"),
        ("build", ["build1", "build2"], "needs exactly 1"),
        ("build", [], "has 0 host(s) (none) but needs exactly 1"),
    ],
)
def test_group_of_a_size_the_contract_refuses(
    group: str, members: list[str], needs: str, tmp_path: Path
) -> None:
    hostvars = good_hostvars()
    for n, host in enumerate(h for h in members if h not in hostvars):
        hostvars[host] = {**hostvars["db1"], "ansible_host": f"10.77.0.{100 + n}"}
    groups = {**GROUPS, group: members}
    groups["all"] = [h for h in GROUPS["all"] if h not in GROUPS[group]] + members
    the_problem(
        problems(hostvars, tmp_path, groups),
        f"Group '{group}'",
        needs,
        f"Fix the '{group}' group in inventory/hosts.yml",
    )


def test_group_too_large_for_an_inventory_override_of_the_sizes(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    sizes = {**CONTRACT["cluster_group_sizes"], "was": {"min": 1, "max": 1}}
    for variables in hostvars.values():
        variables["cluster_group_sizes"] = sizes
    the_problem(problems(hostvars, tmp_path), "Group 'was' has 2 host(s) (was1, was2)", "exactly 1")


# --- Addresses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("999.1.1.1", "between 0 and 255"),
        ("10.77.0.011", "write 10.77.0.11"),
        ("10.77.0", "four numbers"),
        ("was1.example.com", "a name, not an IP address"),
        ("fe80::zz", "not a valid IPv6 address"),
    ],
)
def test_address_that_is_not_an_ip_address(value: str, why: str, tmp_path: Path) -> None:
    hostvars = good_hostvars()
    hostvars["was1"]["ansible_host"] = value
    the_problem(problems(hostvars, tmp_path), "ansible_host of was1", f"'{value}'", why)


@pytest.mark.parametrize("value", ["10.77.0.11", "2001:db8::11", " 10.77.0.11 "])
def test_ip_addresses_are_accepted(value: str, tmp_path: Path) -> None:
    hostvars = good_hostvars()
    hostvars["was1"]["ansible_host"] = value
    assert problems(hostvars, tmp_path) == []


@pytest.mark.parametrize("value", [None, ""])
def test_host_without_an_address(value: str | None, tmp_path: Path) -> None:
    hostvars = good_hostvars()
    if value is None:
        del hostvars["db1"]["ansible_host"]
    else:
        hostvars["db1"]["ansible_host"] = value
    the_problem(problems(hostvars, tmp_path), "These hosts have no ansible_host: db1")


def test_two_hosts_on_one_address(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    hostvars["was2"]["ansible_host"] = hostvars["was1"]["ansible_host"]
    the_problem(
        problems(hostvars, tmp_path), "These hosts share an address: was1, was2 (10.77.0.11)"
    )


# --- Balancer routes ------------------------------------------------------------------------------


def test_two_application_servers_on_one_route(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    hostvars["was1"]["cluster_route"] = hostvars["was2"]["cluster_route"] = "same"
    the_problem(
        problems(hostvars, tmp_path),
        "These application servers share a balancer route: was1, was2 (route 'same')",
        "cluster_route",
    )


def test_a_route_defaults_to_the_host_name(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    hostvars["was1"]["cluster_route"] = "was2"
    the_problem(problems(hostvars, tmp_path), "was1, was2 (route 'was2')")


@pytest.mark.parametrize("route", ["was.1", "was 1", "was/1", ""])
def test_route_that_is_not_cookie_safe(route: str, tmp_path: Path) -> None:
    hostvars = good_hostvars()
    hostvars["was1"]["cluster_route"] = route
    the_problem(
        problems(hostvars, tmp_path), "letters, digits", f"was1 (route '{route}')", "cluster_route"
    )


# --- Names the wiring sets ------------------------------------------------------------------------


def test_was_port_in_the_inventory_is_refused_naming_the_contract_port(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    hostvars["was1"]["django_was_port"] = 8001
    message = the_problem(
        problems(hostvars, tmp_path),
        "django_was_port is set in",
        "was1: 8001",
        "cluster_was_port (= 8000)",
        "apache_lb_member_port",
        "Remove django_was_port and set cluster_was_port instead",
    )
    assert "roles/wiring/vars/main.yml" in message


@pytest.mark.parametrize(
    ("name", "value", "source", "also"),
    [
        ("mariadb_port", 3307, "cluster_db_port", "django_was_db_port"),
        ("apache_lb_server_name", "www.example.com", "cluster_public_names", "django_was"),
        (
            "firewall_owners",
            ["mariadb"],
            "cluster_group_roles, cluster_lb_floating_address, cluster_db_floating_address, "
            "cluster_monitoring_enabled and cluster_autoscaling_enabled",
            "",
        ),
    ],
)
def test_wired_names_in_the_inventory_are_refused(
    name: str, value: Any, source: str, also: str, tmp_path: Path
) -> None:
    hostvars = good_hostvars()
    hostvars["db1"][name] = value
    the_problem(problems(hostvars, tmp_path), f"{name} is set in", f"set {source} instead", also)


def test_a_wired_secret_is_refused_without_showing_it(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    hostvars["was1"]["django_was_secret_key"] = "a-secret-that-must-not-be-shown-anywhere-at-all-ok"
    message = the_problem(problems(hostvars, tmp_path), "set django_secret_key instead")
    assert "must-not-be-shown" not in message


@pytest.mark.parametrize(
    ("template", "sources"),
    [
        ("{{ cluster_was_port }}", ["cluster_was_port"]),
        ("{{ cluster_clients.gunicorn }}", ["cluster_clients"]),
        ("{{ (cluster_public_names + [inventory_hostname]) | first }}", ["cluster_public_names"]),
        (
            "{{ cluster_s3_endpoint }}/{{ cluster_bucket }}",
            ["cluster_s3_endpoint", "cluster_bucket"],
        ),
        (
            WIRING["firewall_owners"],
            [
                "cluster_group_roles",
                "cluster_lb_floating_address",
                "cluster_db_floating_address",
                "cluster_monitoring_enabled",
                "cluster_autoscaling_enabled",
            ],
        ),
        ("{{ django_secret_key }}", ["django_secret_key"]),
        # Read from Ansible's own variables only: nothing the inventory could set instead.
        (WIRING["wheel_build_packages"], []),
        (WIRING["wheel_build_controller_dir"], []),
    ],
)
def test_wiring_sources_are_read_from_the_template(template: str, sources: list[str]) -> None:
    assert checks.wired_sources(template) == sources


# --- Secrets --------------------------------------------------------------------------------------


SECRETS: dict[str, dict[str, Any]] = CONTRACT["cluster_secrets"]
# The secrets of the contract's default storage (the others: see "Where files live" below).
DEFAULT_SECRETS = sorted(
    name
    for name, spec in SECRETS.items()
    if spec.get("storage", CONTRACT["cluster_storage"]) == CONTRACT["cluster_storage"]
)


def first_host_needing(name: str) -> str:
    """The first host, in inventory order, of a group that needs secret `name`."""
    groups = SECRETS[name]["groups"]
    return next(h for h in GROUPS["all"] if any(h in GROUPS.get(g, []) for g in groups))


def set_everywhere(hostvars: dict[str, dict[str, Any]], name: str, value: Any) -> None:
    for variables in hostvars.values():
        variables[name] = value


@pytest.mark.parametrize("name", DEFAULT_SECRETS)
def test_placeholder_secret_is_refused_without_showing_it(name: str, tmp_path: Path) -> None:
    hostvars = good_hostvars()
    value = PLACEHOLDER + "-unshown-".ljust(SECRETS[name]["min_length"], "x")
    set_everywhere(hostvars, name, value)
    message = the_problem(
        problems(hostvars, tmp_path),
        f"{name} of {first_host_needing(name)}",
        f"still holds the placeholder {PLACEHOLDER}",
    )
    assert "unshown" not in message


@pytest.mark.parametrize("name", DEFAULT_SECRETS)
def test_short_secret_is_refused_without_showing_it(name: str, tmp_path: Path) -> None:
    hostvars = good_hostvars()
    length = SECRETS[name]["min_length"]
    set_everywhere(hostvars, name, "k" * (length - 1))
    message = the_problem(
        problems(hostvars, tmp_path),
        f"{name} of {first_host_needing(name)}",
        f"has {length - 1} characters but needs at least {length}",
    )
    assert "kkkk" not in message


def test_sixteen_character_django_secret_key_is_refused(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    set_everywhere(hostvars, "django_secret_key", "0123456789abcdef")
    the_problem(
        problems(hostvars, tmp_path),
        "django_secret_key of was1 and was2 has 16 characters",
        f"at least {SECRETS['django_secret_key']['min_length']}",
    )


def test_secret_that_is_not_a_string(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    set_everywhere(hostvars, "django_admin_password", 1234567890123456789)
    message = the_problem(
        problems(hostvars, tmp_path), "django_admin_password", "is of type int, not a string"
    )
    assert "1234567890" not in message


def test_secret_of_one_host_is_checked_too(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    hostvars["was2"]["django_secret_key"] = "k" * 16
    the_problem(problems(hostvars, tmp_path), "django_secret_key of was2 has 16 characters")


@pytest.mark.parametrize("name", DEFAULT_SECRETS)
def test_missing_secret(name: str, tmp_path: Path) -> None:
    hostvars = good_hostvars()
    for variables in hostvars.values():
        del variables[name]
    the_problem(problems(hostvars, tmp_path), f"{name} is not set for {first_host_needing(name)}")


class VaultMissing(dict[str, Any]):
    """A host's variables where `secret` reads an undefined vault variable, as Ansible's do."""

    def __init__(self, variables: dict[str, Any], secret: str) -> None:
        super().__init__(variables)
        self.secret = secret

    def __getitem__(self, key: str) -> Any:
        if key == self.secret:
            raise RuntimeError(f"'vault_{key}' is undefined")
        return super().__getitem__(key)


def test_secret_from_an_undefined_vault_variable(tmp_path: Path) -> None:
    hostvars: dict[str, Any] = good_hostvars()
    for host in GROUPS["was"]:
        hostvars[host] = VaultMissing(hostvars[host], "django_secret_key")
    the_problem(
        problems(hostvars, tmp_path),
        "django_secret_key of was1 and was2 cannot be read",
        "vault_django_secret_key is not defined",
        "group_vars/all/vault.yml, see docs/production.md",
        "missing, not decrypted",
    )


class UndefinedMarker:
    """What Ansible 2.19 hands back for an undefined variable: it raises only once used."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _fail(self, *args: Any) -> Any:
        raise RuntimeError(f"'{self.name}' is undefined")

    __str__ = __repr__ = __iter__ = __len__ = __bool__ = _fail


def test_secret_that_is_an_undefined_marker(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    for host in GROUPS["was"]:
        hostvars[host]["django_admin_password"] = UndefinedMarker("vault_django_admin_password")
    the_problem(
        problems(hostvars, tmp_path),
        "django_admin_password of was1 and was2 cannot be read",
        "vault_django_admin_password is not defined",
    )


# --- Placeholders anywhere ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("django_was_log_level", PLACEHOLDER),
        ("cluster_proxy_env", {"http_proxy": f"http://{PLACEHOLDER}.example.com:3128"}),
        ("ca_certificates_files", ["/etc/ok.crt", f"/etc/{PLACEHOLDER}.crt"]),
    ],
)
def test_placeholder_in_any_project_variable(name: str, value: Any, tmp_path: Path) -> None:
    hostvars = good_hostvars()
    hostvars["lb1"][name] = value
    the_problem(problems(hostvars, tmp_path), name, "on lb1", f"placeholder {PLACEHOLDER}")


def test_placeholder_in_a_secret_like_variable_is_not_shown(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    hostvars["lb1"]["apache_lb_admin_password"] = PLACEHOLDER + "-do-not-show"
    message = the_problem(problems(hostvars, tmp_path), "apache_lb_admin_password")
    assert "do-not-show" not in message


def test_placeholder_in_a_variable_of_someone_else_is_ignored(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    hostvars["lb1"]["motd_text"] = PLACEHOLDER
    assert problems(hostvars, tmp_path) == []


# --- HTTPS ----------------------------------------------------------------------------------------


def test_https_without_public_names(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    for variables in hostvars.values():
        del variables["cluster_public_names"]
    the_problem(
        problems(hostvars, tmp_path),
        "cluster_https is true but cluster_public_names is empty",
        "cluster_https: false",
    )


# --- Database connections -------------------------------------------------------------------------


def test_every_was_budget_must_fit_in_the_database(tmp_path: Path) -> None:
    was = [f"was{n}" for n in range(1, 14)]
    hostvars = good_hostvars()
    for n, host in enumerate(was[2:], 3):
        hostvars[host] = {**hostvars["was1"], "ansible_host": f"10.77.0.{100 + n}"}
    groups = {**GROUPS, "all": [*ADDRESSES, *was[2:]], "was": was}
    per_was = CONTRACT["cluster_db_connections_per_was"]
    assert 13 * per_was > CONTRACT["cluster_db_max_connections"], "the contract changed: resize"
    the_problem(
        problems(hostvars, tmp_path, groups),
        f"13 WAS x {per_was}",
        "cluster_db_max_connections is",
        "raise cluster_db_max_connections",
    )


def test_a_raised_max_connections_fits_them(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    for variables in hostvars.values():
        variables["cluster_db_connections_per_was"] = 300
    the_problem(problems(hostvars, tmp_path), "2 WAS x 300")
    for variables in hostvars.values():
        variables["cluster_db_max_connections"] = 700
    assert problems(hostvars, tmp_path) == []


def test_a_budget_must_be_a_number(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    for variables in hostvars.values():
        variables["cluster_db_connections_per_was"] = "lots"
    the_problem(problems(hostvars, tmp_path), 'cluster_db_connections_per_was is "lots"')


def test_a_server_cannot_be_both_serving_and_retired(tmp_path: Path) -> None:
    groups = {**GROUPS, "retired": ["was2"]}
    the_problem(problems(good_hostvars(), tmp_path, groups), "was2 is in both 'was' and 'retired'")


def test_a_retired_server_outside_was_is_fine(tmp_path: Path) -> None:
    groups = {**GROUPS, "was": ["was1"], "retired": ["was2"]}
    assert problems(good_hostvars(), tmp_path, groups) == []


# --- Ports ----------------------------------------------------------------------------------------


def test_two_services_of_one_host_on_one_port(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    for variables in hostvars.values():
        variables["cluster_db_port"] = 22
    the_problem(
        problems(hostvars, tmp_path), "cluster_ssh_port and cluster_db_port are both 22 on db1"
    )


def test_services_of_a_host_in_two_groups_on_one_port(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    for variables in hostvars.values():
        variables["cluster_was_port"] = 80
    groups = {**GROUPS, "was": ["was1", "was2", "lb1"]}
    the_problem(
        problems(hostvars, tmp_path, groups),
        "cluster_http_port and cluster_was_port are both 80 on lb1",
        "groups lb and was",
    )


@pytest.mark.parametrize("value", [0, 65536, "8000", True, None])
def test_port_that_is_not_a_port(value: Any, tmp_path: Path) -> None:
    hostvars = good_hostvars()
    for variables in hostvars.values():
        variables["cluster_redis_port"] = value
    the_problem(problems(hostvars, tmp_path), "cluster_redis_port is", "from 1 to 65535")


# --- Firewall -------------------------------------------------------------------------------------

FirewallEdit = Callable[[dict[str, Any]], None]


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda v: v.pop("firewall_admin_networks"), ["is empty", "192.0.2.0/24"]),
        (lambda v: v.update(firewall_admin_networks=[]), ["is empty", "SSH would be closed"]),
        (lambda v: v.update(firewall_admin_networks=["10.0.0.0/33"]), ["'10.0.0.0/33'"]),
        (lambda v: v.update(firewall_admin_networks=["office"]), ["'office'", "not a network"]),
        (lambda v: v.update(firewall_admin_networks="10.0.0.0/8"), ["not a list"]),
    ],
    ids=["unset", "empty", "bad-prefix", "name", "string"],
)
def test_firewall_that_would_lock_out_ssh(
    edit: FirewallEdit, words: list[str], tmp_path: Path
) -> None:
    hostvars = good_hostvars()
    for variables in hostvars.values():
        edit(variables)
    the_problem(problems(hostvars, tmp_path), "firewall_admin_networks", "on all hosts", *words)


def test_no_admin_networks_needed_without_the_firewall(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    for variables in hostvars.values():
        variables.update(firewall_enabled=False, firewall_admin_networks=[])
    assert problems(hostvars, tmp_path) == []


# --- The file to fix ------------------------------------------------------------------------------


def make_inventory(root: Path) -> Path:
    """inventory/site: a hosts file, group_vars, a vault, generated credentials."""
    inventory = root / "inventory" / "site"
    (inventory / "group_vars" / "was").mkdir(parents=True)
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "credentials").mkdir()
    (inventory / "hosts.yml").write_text(
        "all:\n  hosts:\n    was1:\n      ansible_host: 10.0.0.1\n"
    )
    (inventory / "group_vars" / "was" / "django.yml").write_text(
        "---\n# django_was_threads: 4\ndjango_was_port: 8001\n"
    )
    (inventory / "group_vars" / "all" / "vars.yml").write_text(
        '---\n# django_was_port: 8000\ndjango_secret_key: "{{ vault_django_secret_key }}"\n'
    )
    (inventory / "group_vars" / "all" / "vault.yml").write_text(
        "$ANSIBLE_VAULT;1.1;AES256\ndjango_was_port: 1\n"
    )
    (inventory / "credentials" / "django_was_port.txt").write_text("django_was_port: 2\n")
    return inventory


def test_finder_names_the_file_that_sets_a_variable(tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    found = checks.find_definitions(str(inventory), "django_was_port", str(tmp_path))
    assert found == ["inventory/site/group_vars/was/django.yml"]


def test_finder_reads_ini_hosts_files(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text("[was]\nwas1 ansible_host=10.0.0.1 cluster_route=w1\n")
    assert checks.find_definitions(str(tmp_path), "cluster_route", str(tmp_path)) == ["hosts.ini"]


def test_messages_name_the_file_to_fix(tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    hostvars = good_hostvars()
    hostvars["was1"]["django_was_port"] = 8001
    found = checks.inventory_problems(
        hostvars, GROUPS, CONTRACT, WIRING, str(inventory), str(tmp_path)
    )
    the_problem(
        found,
        "django_was_port is set in inventory/site/group_vars/was/django.yml",
        "(in inventory/site/group_vars/all/cluster.yml)",
    )


def test_secret_message_points_at_the_vault(tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    hostvars = good_hostvars()
    # As Ansible renders group_vars/all/vars.yml and the vault: the secret and the vault variable
    # it reads hold the same placeholder, reported once.
    for variables in hostvars.values():
        variables["vault_django_secret_key"] = PLACEHOLDER
    for host in GROUPS["was"]:
        hostvars[host]["django_secret_key"] = PLACEHOLDER
    found = checks.inventory_problems(
        hostvars, GROUPS, CONTRACT, WIRING, str(inventory), str(tmp_path)
    )
    the_problem(
        found,
        "inventory/site/group_vars/all/vars.yml",
        "vault_django_secret_key",
        "ansible-vault edit inventory/site/group_vars/all/vault.yml",
    )


def test_unset_variable_is_suggested_in_group_vars_all(tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    hostvars = good_hostvars()
    for variables in hostvars.values():
        del variables["django_admin_password"]
    found = checks.inventory_problems(
        hostvars, GROUPS, CONTRACT, WIRING, str(inventory), str(tmp_path)
    )
    the_problem(found, "inventory/site/group_vars/all/")


def test_paths_outside_the_base_directory_stay_absolute(tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    found = checks.find_definitions(str(inventory), "django_was_port", str(tmp_path / "elsewhere"))
    assert found == [str(inventory / "group_vars" / "was" / "django.yml")]


# --- Where files live (cluster_storage) -----------------------------------------------------------

GCS_GROUPS = {**{g: m for g, m in GROUPS.items() if g != "storage"}, "storage": []}
GCS_GROUPS["all"] = [h for h in GROUPS["all"] if h != "store1"]


def service_account_key(**changes: Any) -> str:
    """A service-account key file's JSON, with a real RSA key (the one a GCS lab issues)."""
    key = {**gcs_key.service_account_key("unit"), **changes}
    return json.dumps({k: v for k, v in key.items() if v is not None})


def gcs_hostvars(key: str | None = None) -> dict[str, dict[str, Any]]:
    """A valid GCS inventory: no storage host, no S3 keys, a service-account key."""
    hostvars = {h: v for h, v in good_hostvars().items() if h != "store1"}
    key = service_account_key() if key is None else key
    for variables in hostvars.values():
        variables.pop("cluster_s3_access_key")
        variables.pop("cluster_s3_secret_key")
        variables.update(cluster_storage="gcs", cluster_gcs_credentials_json=key)
    return hostvars


def test_gcs_inventory_needs_no_storage_host_and_no_s3_keys(tmp_path: Path) -> None:
    assert problems(gcs_hostvars(), tmp_path, GCS_GROUPS) == []


def test_s3_inventory_needs_no_gcs_key(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    set_everywhere(hostvars, "cluster_gcs_credentials_json", "not a key at all")
    assert problems(hostvars, tmp_path) == []


def test_unknown_storage_is_refused(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    set_everywhere(hostvars, "cluster_storage", "azure")
    the_problem(
        problems(hostvars, tmp_path),
        'cluster_storage is "azure"',
        "use s3",
        "or gcs",
        "cluster.yml",
    )


def test_s3_needs_its_storage_host(tmp_path: Path) -> None:
    hostvars = {h: v for h, v in good_hostvars().items() if h != "store1"}
    the_problem(
        problems(hostvars, tmp_path, GCS_GROUPS),
        "cluster_storage is s3, so group 'storage' needs exactly one host, and has 0 (none)",
        "inventory/hosts.yml",
    )


def test_gcs_with_a_storage_host_is_refused(tmp_path: Path) -> None:
    hostvars = gcs_hostvars()
    hostvars["store1"] = {**hostvars["db1"], "ansible_host": ADDRESSES["store1"]}
    the_problem(
        problems(hostvars, tmp_path),
        "cluster_storage is gcs, but group 'storage' has store1",
        "Remove it from 'storage'",
        "or set cluster_storage: s3",
    )


def with_emulator(
    hostvars: dict[str, dict[str, Any]], groups: dict[str, list[str]]
) -> dict[str, list[str]]:
    """Add gcs1 to the hostvars, in group gcs_emulator; the groups that result."""
    hostvars["gcs1"] = {**hostvars["db1"], "ansible_host": "10.77.0.51"}
    return {**groups, "all": [*groups["all"], "gcs1"], "gcs_emulator": ["gcs1"]}


def test_an_emulator_host_needs_gcs(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    the_problem(
        problems(hostvars, tmp_path, with_emulator(hostvars, GROUPS)),
        "Group 'gcs_emulator' (gcs1) stands in for Google Cloud Storage",
        "cluster_storage is s3",
    )


def test_gcs_without_a_key_is_refused(tmp_path: Path) -> None:
    hostvars = gcs_hostvars()
    for variables in hostvars.values():
        del variables["cluster_gcs_credentials_json"]
    the_problem(
        problems(hostvars, tmp_path, GCS_GROUPS),
        "cluster_gcs_credentials_json is not set for was1 and was2",
        "vault",
    )


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("{not json" + "x" * 100, "is not JSON"),
        (json.dumps(["service_account"] * 20), "is JSON of type list, not an object"),
        (
            json.dumps({"type": "authorized_user", "refresh_token": "x" * 120}),
            'has type "authorized_user", not "service_account"',
        ),
        (service_account_key(client_email="", token_uri=None), "lacks client_email and token_uri"),
        (
            service_account_key(private_key="-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n"),
            "has a private_key that does not load",
        ),
    ],
)
def test_a_key_that_google_would_refuse_is_refused_without_showing_it(
    key: str, why: str, tmp_path: Path
) -> None:
    message = the_problem(
        problems(gcs_hostvars(key), tmp_path, GCS_GROUPS),
        "cluster_gcs_credentials_json",
        why,
        "on was1 and was2",
        "Paste the whole JSON key file",
    )
    assert "c2VjcmV0" not in message and "refresh_token" not in message


def test_the_emulator_port_may_not_clash_with_ssh(tmp_path: Path) -> None:
    hostvars = gcs_hostvars()
    groups = with_emulator(hostvars, GCS_GROUPS)
    set_everywhere(hostvars, "cluster_gcs_emulator_port", 22)
    the_problem(
        problems(hostvars, tmp_path, groups),
        "cluster_ssh_port and cluster_gcs_emulator_port are both 22 on gcs1",
    )


# --- The balancers' floating address ------------------------------------------------------------


def test_a_free_floating_address_is_accepted(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    set_everywhere(hostvars, "cluster_lb_floating_address", "10.77.0.100")
    assert problems(hostvars, tmp_path) == []


@pytest.mark.parametrize("name", ["cluster_lb_floating_address", "cluster_db_floating_address"])
@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("10.77.0.300", ["'10.77.0.300'", "between 0 and 255", "free IPv4 address"]),
        ("lb.example.com", ["'lb.example.com'", "free IPv4 address"]),
        ("2001:db8::9", ["IPv6", "free IPv4 address"]),
        ("10.77.0.11", ["10.77.0.11 is the own address of was1", "Pick a free address"]),
    ],
)
def test_a_bad_floating_address_is_refused(
    name: str, value: str, words: list[str], tmp_path: Path
) -> None:
    hostvars = good_hostvars()
    set_everywhere(hostvars, name, value)
    the_problem(problems(hostvars, tmp_path), name, *words)


@pytest.mark.parametrize("router_id", [0, 256, "fifty"])
def test_a_bad_vrrp_router_id_is_refused(router_id: Any, tmp_path: Path) -> None:
    hostvars = good_hostvars()
    set_everywhere(hostvars, "cluster_lb_floating_address", "10.77.0.100")
    set_everywhere(hostvars, "cluster_lb_vrrp_router_id", router_id)
    the_problem(problems(hostvars, tmp_path), "cluster_lb_vrrp_router_id is", "1 to 255")


# --- The database's replicas and writer address -----------------------------------------------


def with_db(*names: str) -> tuple[dict[str, Any], dict[str, list[str]]]:
    hostvars = good_hostvars()
    for n, name in enumerate(names[1:], start=2):
        hostvars[name] = {**hostvars["db1"], "ansible_host": f"10.77.0.{20 + n}"}
    return hostvars, {**GROUPS, "all": list(hostvars), "db": list(names)}


def test_two_db_hosts_with_a_writer_address_are_accepted(tmp_path: Path) -> None:
    hostvars, groups = with_db("db1", "db2")
    set_everywhere(hostvars, "cluster_db_floating_address", "10.77.0.101")
    assert problems(hostvars, tmp_path, groups) == []


def test_two_db_hosts_need_a_writer_address(tmp_path: Path) -> None:
    hostvars, groups = with_db("db1", "db2")
    the_problem(
        problems(hostvars, tmp_path, groups),
        "Group 'db' has 2 hosts (db1, db2)",
        "cluster_db_floating_address is not set",
        "group_vars/all/cluster.yml",
    )


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("cluster_db_floating_address", "10.77.0.100", ["are both 10.77.0.100"]),
        ("cluster_db_vrrp_router_id", 51, ["router_id are both 51", "its own id"]),
    ],
)
def test_the_balancers_and_the_database_share_no_vrrp_setting(
    setting: str, value: Any, words: list[str], tmp_path: Path
) -> None:
    hostvars, groups = with_db("db1", "db2")
    set_everywhere(hostvars, "cluster_lb_floating_address", "10.77.0.100")
    set_everywhere(hostvars, "cluster_db_floating_address", "10.77.0.101")
    set_everywhere(hostvars, setting, value)
    the_problem(problems(hostvars, tmp_path, groups), *words)


# --- Redis Sentinel -------------------------------------------------------------------------------


def with_redis(
    redis: list[str], sentinels: list[str]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    hostvars = good_hostvars()
    for n, name in enumerate(redis[1:], start=2):
        hostvars[name] = {**hostvars["redis1"], "ansible_host": f"10.77.0.{30 + n}"}
    groups = {**GROUPS, "all": list(hostvars), "redis": redis, "sentinel": sentinels}
    return hostvars, groups


def test_two_redis_hosts_with_three_sentinels_are_accepted(tmp_path: Path) -> None:
    hostvars, groups = with_redis(["redis1", "redis2"], ["redis1", "redis2", "db1"])
    assert problems(hostvars, tmp_path, groups) == []


@pytest.mark.parametrize(
    ("redis", "sentinels", "words"),
    [
        (["redis1", "redis2"], [], ["group 'sentinel' has 0 (none)", "at least 3 sentinels"]),
        (["redis1", "redis2"], ["redis1", "redis2"], ["has 2 (redis1, redis2)", "majority"]),
        (["redis1"], ["redis1", "db1", "was1"], ["group 'redis' has only redis1", "no replica"]),
    ],
)
def test_a_redis_pair_without_a_sentinel_majority_is_refused(
    redis: list[str], sentinels: list[str], words: list[str], tmp_path: Path
) -> None:
    hostvars, groups = with_redis(redis, sentinels)
    the_problem(problems(hostvars, tmp_path, groups), *words)


def test_a_host_without_address_is_named_even_with_a_floating_address(tmp_path: Path) -> None:
    # db1 left only in the sentinel group (its db entry, with the address, deleted).
    hostvars, groups = with_redis(["redis1", "redis2"], ["redis1", "redis2", "db1"])
    del hostvars["db1"]["ansible_host"]
    groups["db"] = []
    set_everywhere(hostvars, "cluster_lb_floating_address", "10.77.0.100")
    found = problems(hostvars, tmp_path, groups)
    assert any("These hosts have no ansible_host: db1" in p for p in found), found
    assert any("Group 'db' has 0 host(s) (none)" in p for p in found), found


# --- Monitoring -----------------------------------------------------------------------------------


def monitored(tmp_path: Path, **settings: Any) -> list[str]:
    hostvars = good_hostvars()
    hostvars["mon1"] = {"ansible_host": "10.0.0.51", **hostvars["lb1"], **settings}
    hostvars["mon1"]["ansible_host"] = "10.0.0.51"
    groups = {**GROUPS, "monitoring": ["mon1"], "all": [*GROUPS["all"], "mon1"]}
    return problems(hostvars, tmp_path, groups)


GOOD_MAIL = {
    "cluster_alert_mail_to": "ops@example.com",
    "cluster_alert_mail_from": "alerts@example.com",
    "cluster_smtp_smarthost": "smtp.example.com:587",
}


def test_a_monitoring_host_with_its_mail_settings_is_fine(tmp_path: Path) -> None:
    assert monitored(tmp_path, **GOOD_MAIL) == []


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("cluster_alert_mail_to", "", ["cluster_alert_mail_to is empty", "mon1"]),
        ("cluster_smtp_smarthost", "smtp.example.com", ["not host:port", "smtp.example.com:587"]),
        ("cluster_alert_mail_from", "alerts", ["not a mail address"]),
    ],
)
def test_a_monitoring_host_needs_where_to_mail(
    name: str, value: str, words: list[str], tmp_path: Path
) -> None:
    the_problem(monitored(tmp_path, **{**GOOD_MAIL, name: value}), name, *words)


# --- Autoscaling ----------------------------------------------------------------------------------


def with_pool(
    tmp_path: Path, pool: list[str], monitoring: bool = True, **settings: Any
) -> list[str]:
    """The good inventory with these standby hosts and, unless told not to, a monitoring host."""
    hostvars = good_hostvars()
    extra = [*pool, *(["mon1"] if monitoring else [])]
    for number, host in enumerate(extra, 60):
        hostvars[host] = {**hostvars["lb1"], "ansible_host": f"10.0.0.{number}"}
    for host in hostvars:
        hostvars[host].update(GOOD_MAIL, **settings)
    groups = {**GROUPS, "was_pool": pool, "all": [*GROUPS["all"], *extra]}
    if monitoring:
        groups["monitoring"] = ["mon1"]
    return problems(hostvars, tmp_path, groups)


def test_a_pool_beside_a_monitoring_host_is_fine(tmp_path: Path) -> None:
    assert with_pool(tmp_path, ["was3", "was4"]) == []
    assert (
        with_pool(tmp_path, ["was3"], cluster_autoscale_min_was=1, cluster_autoscale_max_was=3)
        == []
    )


def test_a_pool_without_a_monitoring_host_is_refused(tmp_path: Path) -> None:
    the_problem(with_pool(tmp_path, ["was3"], monitoring=False), "no 'monitoring' host", "was3")


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (
            {"cluster_autoscale_max_was": 5},
            ["2 to 5 WAS", "2 WAS of its own and 1 in the pool", "<= 3"],
        ),
        (
            {"cluster_autoscale_min_was": 3, "cluster_autoscale_max_was": 2},
            ["3 to 2 WAS"],
        ),
        (
            {"cluster_autoscale_min_was": "many"},
            ['cluster_autoscale_min_was is "many"', "not a number"],
        ),
    ],
)
def test_autoscaling_bounds_the_pool_cannot_meet_are_refused(
    settings: dict[str, Any], words: list[str], tmp_path: Path
) -> None:
    the_problem(with_pool(tmp_path, ["was3"], **settings), *words)


def test_a_pool_host_that_serves_another_tier_is_refused(tmp_path: Path) -> None:
    hostvars = good_hostvars()
    hostvars["mon1"] = {**hostvars["lb1"], "ansible_host": "10.0.0.61", **GOOD_MAIL}
    for host in hostvars:
        hostvars[host].update(GOOD_MAIL)
    groups = {
        **GROUPS,
        "was_pool": ["db1"],
        "monitoring": ["mon1"],
        "all": [*GROUPS["all"], "mon1"],
    }
    the_problem(problems(hostvars, tmp_path, groups), "db1 is in the standby pool", "'db'")
