"""Filters of the contract and the firewall: addresses, members and rule sources."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from repo_module import load

REPO = Path(__file__).resolve().parents[2]


contract = load("roles/cluster/filter_plugins/cluster.py")
firewall = load("roles/firewall/filter_plugins/firewall.py")

HOSTVARS = {
    "lb1": {"ansible_host": "10.77.0.10"},
    "was1": {"ansible_host": "10.77.0.11"},
    "was2": {"ansible_host": " 10.77.0.12 ", "cluster_route": "b"},
    "was6": {"ansible_host": "2001:db8::6"},
}
GROUPS = {"lb": ["lb1"], "was": ["was1", "was2", "was6"]}


def test_members_keep_inventory_order_and_take_routes_from_cluster_route() -> None:
    assert contract.cluster_members(["was2", "was1"], HOSTVARS) == [
        {"name": "was2", "address": "10.77.0.12", "route": "b"},
        {"name": "was1", "address": "10.77.0.11", "route": "was1"},
    ]


def test_addresses_come_from_ansible_host() -> None:
    assert contract.cluster_addresses(["lb1", "was2"], HOSTVARS) == ["10.77.0.10", "10.77.0.12"]


def test_each_database_account_has_its_own_password() -> None:
    accounts = contract.cluster_db_accounts(["10.77.0.11", "10.77.0.12"], "seed-of-the-passwords")
    assert [a["host"] for a in accounts] == ["10.77.0.11", "10.77.0.12"]
    first, second = (a["password"] for a in accounts)
    assert first != second
    assert len(first) == contract.DERIVED_PASSWORD_LENGTH
    assert "seed" not in first


def test_derived_passwords_are_stable_and_change_with_the_seed() -> None:
    again = contract.cluster_db_accounts(["10.77.0.11"], "seed-of-the-passwords")
    other = contract.cluster_db_accounts(["10.77.0.11"], "another-seed-entirely")
    assert again == contract.cluster_db_accounts(["10.77.0.11"], "seed-of-the-passwords")
    assert again[0]["password"] != other[0]["password"]


def test_an_empty_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        contract.cluster_derived_password("", "mariadb:10.77.0.11")


def test_sources_split_groups_into_ipv4_and_ipv6() -> None:
    rule = {"name": "gunicorn", "port": 8000, "from_groups": ["was", "lb"]}
    assert firewall.firewall_sources(rule, GROUPS, HOSTVARS) == {
        "any": False,
        "v4": ["10.77.0.10", "10.77.0.11", "10.77.0.12"],
        "v6": ["2001:db8::6"],
    }


def test_any_admits_everyone() -> None:
    rule = {"name": "http", "port": 80, "from_groups": ["any"]}
    assert firewall.firewall_sources(rule, GROUPS, HOSTVARS)["any"] is True


def test_a_group_the_inventory_lacks_admits_nobody() -> None:
    rule = {"name": "redis", "port": 6379, "from_groups": ["monitoring"]}
    assert firewall.firewall_sources(rule, GROUPS, HOSTVARS) == {"any": False, "v4": [], "v6": []}


@pytest.mark.parametrize(
    ("version", "expected"), [(4, ["10.77.0.1/32", "10.0.0.0/8"]), (6, ["2001:db8::/32"])]
)
def test_admin_networks_are_normalised_per_version(version: int, expected: list[str]) -> None:
    networks = ["10.77.0.1", "10.1.2.3/8", "2001:db8::/32"]
    assert firewall.firewall_networks(networks, version) == expected


def test_the_balancers_listing_a_member_come_from_their_local_facts() -> None:
    def lb(*addresses: str) -> dict[str, Any]:
        return {"apache_lb": {"members": [{"address": a} for a in addresses]}}

    hostvars = {
        "lb1": {"ansible_facts": {"local": lb("10.77.0.11", "10.77.0.12")}},  # gathered
        "lb2": {"ansible_facts": {"ansible_local": lb("10.77.0.11")}},  # delegated
        "lb3": {"ansible_facts": {}},  # not converged yet
    }
    listing = contract.cluster_balancers_listing
    assert listing(["lb1", "lb2", "lb3"], hostvars, "10.77.0.11") == ["lb1", "lb2"]
    assert listing(["lb1", "lb2", "lb3"], hostvars, "10.77.0.12") == ["lb1"]
    assert listing(["lb1", "lb2", "lb3"], hostvars, "10.77.0.13") == []
    assert listing([], hostvars, "10.77.0.11") == []


REDIS = ["10.77.0.31", "10.77.0.32"]


def asked(host: str, stdout: str = "", rc: int = 0, **more: Any) -> dict[str, Any]:
    """One sentinel's registered answer, as the loop in playbooks/redis.yml records it."""
    return {"item": host, "rc": rc, "stdout": stdout, **more}


def test_the_redis_master_is_what_the_answering_sentinels_agree_on() -> None:
    answers = [
        asked("redis1", rc=1, stdout=""),  # its sentinel is down
        asked("redis2", "10.77.0.32\n6379"),
        asked("db1", "10.77.0.32\n6379\n"),
        asked("db2", unreachable=True, rc=None),
    ]
    assert contract.cluster_redis_master(REDIS, answers) == "10.77.0.32"


def test_without_any_sentinel_answer_the_first_redis_host_is_the_master() -> None:
    answers = [asked("redis1", rc=127), asked("redis2", ""), asked("db1", "(nil)")]
    assert contract.cluster_redis_master(REDIS, answers) == "10.77.0.31"
    assert contract.cluster_redis_master(REDIS, []) == "10.77.0.31"


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (
            [asked("redis1", "10.77.0.31\n6379"), asked("db1", "10.77.0.32\n6379")],
            "The sentinels disagree on the Redis master "
            "(db1 says 10.77.0.32, redis1 says 10.77.0.31)",
        ),
        (
            [asked("db1", "10.77.0.33\n6379")],
            "name 10.77.0.33 as the Redis master, which is not in the 'redis' group",
        ),
        (
            [asked("db1", "WRONGPASS invalid username-password pair")],
            "The sentinel on db1 answered 'WRONGPASS invalid username-password pair'",
        ),
    ],
)
def test_sentinels_that_disagree_or_name_a_stranger_stop_the_run(
    answers: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(contract.RedisMasterError, match=re.escape(message)):
        contract.cluster_redis_master(REDIS, answers)
