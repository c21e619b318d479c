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


def test_networks_join_the_groups_addresses() -> None:
    rule = {
        "name": "prometheus",
        "from_groups": ["lb"],
        "from_networks": ["10.77.0.1", "2001:db8::/48"],
    }
    assert firewall.firewall_sources(rule, GROUPS, HOSTVARS) == {
        "any": False,
        "v4": ["10.77.0.10", "10.77.0.1/32"],
        "v6": ["2001:db8::/48"],
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


# --- The database primary, as playbooks/db.yml finds it on the servers ---------------------------

DB = ["db1", "db2", "db3"]
DB_HOSTVARS = {f"db{n}": {"ansible_host": f"10.77.0.{20 + n}"} for n in (1, 2, 3)}
SERVER_HEADER = "read_only\tgtid_binlog_pos\tgtid_current_pos\thas_database\tdata_schemas"
REPLICA_HEADER = "Slave_IO_State\tMaster_Host\tGtid_IO_Pos\tSlave_IO_Running\tSlave_SQL_Running"


def server(
    host: str, read_only: int, has_database: int = 1, source: str = "", gtid: str = "0-21-9"
) -> dict[str, Any]:
    """One server's answer to playbooks/tasks/db_servers.yml (mariadb --batch output)."""
    position = gtid if has_database else ""
    lines = [SERVER_HEADER, f"{read_only}\t{position}\t{position}\t{has_database}\t{has_database}"]
    if source:
        lines += [REPLICA_HEADER, f"Waiting\t{source}\t{gtid}\tYes\tYes"]
    return asked(host, "\n".join(lines))


def new_server(host: str) -> dict[str, Any]:
    return asked(host, rc=127, stdout="")


@pytest.mark.parametrize(
    ("answers", "primary"),
    [
        # A new install: no MariaDB anywhere yet, or only Debian's empty one.
        ([new_server("db1"), server("db2", 0, 0), new_server("db3")], "10.77.0.21"),
        # After a failover: db2 took writes, db1 came back read-only, db3 follows db2.
        (
            [server("db1", 1), server("db2", 0), server("db3", 1, source="10.77.0.22")],
            "10.77.0.22",
        ),
        # db1 (the primary) restarted read-only; its replicas still follow it.
        (
            [server("db1", 1), server("db2", 1, source="10.77.0.21"), new_server("db3")],
            "10.77.0.21",
        ),
        # The only copy, read-only after a run stopped midway; the others are new.
        ([server("db1", 1), server("db2", 0, 0), new_server("db3")], "10.77.0.21"),
    ],
)
def test_the_primary_is_found_on_the_servers(answers: list[dict[str, Any]], primary: str) -> None:
    assert contract.cluster_db_primary(DB, DB_HOSTVARS, answers) == primary


def test_an_operator_settles_a_cluster_where_no_server_takes_writes() -> None:
    answers = [server("db1", 1), server("db2", 1), new_server("db3")]
    assert contract.cluster_db_primary(DB, DB_HOSTVARS, answers, "db2") == "10.77.0.22"


@pytest.mark.parametrize(
    ("answers", "chosen", "message"),
    [
        (
            [server("db1", 0), server("db2", 0), new_server("db3")],
            "",
            "Two database servers accept writes (db1 at GTID 0-21-9, db2 at GTID 0-21-9)",
        ),
        (
            [server("db1", 0), asked("db2", unreachable=True, rc=None), new_server("db3")],
            "",
            "db2 does not answer",
        ),
        ([server("db1", 0), new_server("db2")], "", "db3 does not answer"),
        (
            [server("db1", 1), server("db2", 1), new_server("db3")],
            "",
            "do not name one primary (db1 follows no one, db2 follows no one)",
        ),
        (
            [server("db1", 1), server("db2", 0, source="10.77.0.21"), new_server("db3")],
            "",
            "db2 accepts writes but replicates from 10.77.0.21",
        ),
        (
            # db2 was promoted and restarted; db3 still follows the stale db1.
            [
                server("db1", 1, gtid="0-21-9"),
                server("db2", 1, gtid="0-22-15"),
                server("db3", 1, source="10.77.0.21", gtid="0-21-9"),
            ],
            "",
            "db1 would be the primary, but db2 holds transactions it never had",
        ),
        (
            [server("db1", 0), server("db2", 1, source="10.77.0.21"), new_server("db3")],
            "db2",
            "db1 is the primary and accepts writes: db_primary=db2 would make two",
        ),
        (
            [
                asked("db1", "ERROR 1045 (28000): Access denied"),
                new_server("db2"),
                new_server("db3"),
            ],
            "",
            "The database server db1 answered",
        ),
    ],
)
def test_two_primaries_a_silent_server_or_none_stop_the_run(
    answers: list[dict[str, Any]], chosen: str, message: str
) -> None:
    with pytest.raises(contract.DbPrimaryError, match=re.escape(message)):
        contract.cluster_db_primary(DB, DB_HOSTVARS, answers, chosen)


def test_the_failover_promotes_the_replica_that_received_the_most() -> None:
    answers = [
        server("db2", 1, source="10.77.0.21", gtid="0-21-99"),
        server("db3", 1, source="10.77.0.21", gtid="0-21-105"),
    ]  # db1 did not answer SSH: it is not in the answers
    plan = contract.cluster_db_failover_plan(DB, DB_HOSTVARS, answers)
    assert (plan["failed"], plan["promote"], plan["repoint"]) == ("db1", "db3", ["db2"])
    assert plan["promote_address"] == "10.77.0.23"


@pytest.mark.parametrize(
    ("answers", "failed", "message"),
    [
        (
            [server("db1", 0), server("db2", 1, source="10.77.0.21")],
            "",
            "db1 answers and accepts writes: it has not failed",
        ),
        (
            [server("db2", 0), server("db3", 1, source="10.77.0.21")],
            "db1",
            "db2 already accepts writes",
        ),
        (
            [asked("db1", rc=1), asked("db2", rc=1), server("db3", 1, source="10.77.0.22")],
            "db1",
            "No replica of db1 answers (db2, db3)",
        ),
        ([server("db2", 1), server("db3", 1)], "", "Name the lost primary: -e db_failed=<host>"),
    ],
)
def test_a_failover_that_would_make_two_primaries_or_has_nobody_stops(
    answers: list[dict[str, Any]], failed: str, message: str
) -> None:
    with pytest.raises(contract.DbPrimaryError, match=re.escape(message)):
        contract.cluster_db_failover_plan(DB, DB_HOSTVARS, answers, failed)


def test_followers_are_the_running_replicas_of_the_primary() -> None:
    answers = [
        server("db1", 0),
        server("db2", 1, source="10.77.0.21"),
        server("db3", 1, source="10.77.0.22"),
    ]
    assert contract.cluster_db_followers(DB, DB_HOSTVARS, answers, "10.77.0.21") == ["db2"]


def test_a_restore_sees_every_answering_server_with_the_database_as_holding_it() -> None:
    answers = [
        server("db1", 0),  # the primary
        server("db2", 0, 0),  # Debian's fresh, empty server
        server("db3", 1, source="10.77.0.21"),  # a replica: the database is not lost
    ]
    assert contract.cluster_db_holders(DB, DB_HOSTVARS, answers) == ["db1", "db3"]
    lost = [asked("db1", rc=1), server("db2", 1, 0), new_server("db3")]
    assert contract.cluster_db_holders(DB, DB_HOSTVARS, lost) == []


def test_scrape_targets_follow_the_groups_and_name_each_host_and_tier() -> None:
    groups = {
        "all": ["lb1", "was1", "was2"],
        "lb": ["lb1"],
        "was": ["was1", "was2"],
        "sentinel": ["lb1"],
    }
    jobs = {"node": ["all"], "apache": ["lb"], "gunicorn": ["was"], "redis": ["redis"]}
    ports = {"node": 9100, "apache": "9117", "gunicorn": 9102, "redis": 9121}
    targets = contract.cluster_scrape_targets(
        ["lb1", "was1"], groups, HOSTVARS, jobs, ports, ["lb", "was"]
    )
    assert targets == [
        {"job": "node", "host": "lb1", "tier": "lb", "address": "10.77.0.10", "port": 9100},
        {"job": "apache", "host": "lb1", "tier": "lb", "address": "10.77.0.10", "port": 9117},
        {"job": "node", "host": "was1", "tier": "was", "address": "10.77.0.11", "port": 9100},
        {"job": "gunicorn", "host": "was1", "tier": "was", "address": "10.77.0.11", "port": 9102},
    ]
    lone = contract.cluster_scrape_targets(["was1"], groups, HOSTVARS, jobs, ports, ["db"])
    assert lone[0]["tier"] == "other"
