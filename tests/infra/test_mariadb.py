"""MariaDB (role mariadb): private address only, one account per WAS, least privilege."""

from __future__ import annotations

import re
from typing import Any

import pytest
from cluster_support import CLOSED, Tier, probe_closed
from testinfra.backend.base import CommandResult
from testinfra.host import Host


def sql(db_host: Host, query: str) -> list[list[str]]:
    """Rows of a query run locally as root (unix socket)."""
    out = db_host.check_output("mariadb --batch --skip-column-names -e %s", query)
    return [line.split("\t") for line in out.splitlines()]


def app_client(was_host: Host, db: Tier, query: str, password: str | None = None) -> CommandResult:
    """Run a query from a WAS as the application account, with the mariadb client."""
    return was_host.run(
        "MYSQL_PWD=%s mariadb --batch --skip-column-names --connect-timeout=5"
        " -h %s -P %s -u %s %s -e %s",
        password if password is not None else db.secrets["cluster_db_password"],
        db.address,
        str(db["port"]),
        db["app_user"],
        db["database"],
        query,
    )


def test_mariadb_is_running_and_enabled(db_host: Host, db_fact: dict[str, Any]) -> None:
    service = db_host.service(db_fact["service"])
    assert service.is_running
    assert service.is_enabled


def test_mariadb_listens_on_the_private_address_only(
    db_host: Host, db_fact: dict[str, Any]
) -> None:
    port = f":{db_fact['port']}"
    listening = {s for s in db_host.socket.get_listening_sockets() if s.endswith(port)}
    assert listening == {f"tcp://{db_host.address}{port}"}


def test_mariadb_resolves_no_names(db_host: Host) -> None:
    assert sql(db_host, "SELECT @@skip_name_resolve") == [["1"]]


def test_there_is_one_app_account_per_was_address(
    db_host: Host, db_fact: dict[str, Any], was_addresses: set[str]
) -> None:
    rows = sql(db_host, f"SELECT Host FROM mysql.user WHERE User = '{db_fact['app_user']}'")
    hosts = [row[0] for row in rows]
    assert sorted(hosts) == sorted(was_addresses)


def test_the_fact_lists_the_app_accounts(db_fact: dict[str, Any], was_addresses: set[str]) -> None:
    assert sorted(db_fact["app_hosts"]) == sorted(was_addresses)


def test_no_account_matches_any_host_or_anonymous_user(db_host: Host) -> None:
    rows = sql(
        db_host,
        # '%' and '_' are wildcards in account host names.
        "SELECT User, Host FROM mysql.user"
        " WHERE User = '' OR Host LIKE '%\\%%' OR Host LIKE '%\\_%'",
    )
    assert rows == []


def test_root_logs_in_locally_through_the_unix_socket_only(db_host: Host) -> None:
    assert sql(db_host, "SELECT Host FROM mysql.user WHERE User = 'root'") == [["localhost"]]
    create = sql(db_host, "SHOW CREATE USER 'root'@'localhost'")[0][0]
    assert "unix_socket" in create
    # Debian's "mysql_native_password USING 'invalid' OR unix_socket" has no usable password.
    assert re.findall(r"USING '([^']*)'", create) in ([], ["invalid"]), create


def test_there_is_no_test_database(db_host: Host) -> None:
    databases = {row[0] for row in sql(db_host, "SHOW DATABASES")}
    assert "test" not in databases


def test_the_app_account_holds_what_django_needs_on_its_database_only(
    db_host: Host, db_fact: dict[str, Any], was_host: Host
) -> None:
    user, database = db_fact["app_user"], db_fact["database"]
    wanted = {p.upper() for p in db_fact["app_privileges"]}
    grants = [row[0] for row in sql(db_host, f"SHOW GRANTS FOR '{user}'@'{was_host.address}'")]
    assert len(grants) == 2, grants
    assert grants[0].startswith("GRANT USAGE ON *.* TO "), grants
    match = re.match(rf"GRANT (.+) ON `{database}`\.\* TO ", grants[1])
    assert match, grants
    assert {p.strip() for p in match.group(1).split(",")} == wanted


def test_app_logs_in_from_each_was(was_host: Host, db: Tier) -> None:
    result = app_client(was_host, db, "SELECT CURRENT_USER()")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == f"{db['app_user']}@{was_host.address}"


def test_app_sees_only_its_own_database(was_host: Host, db: Tier) -> None:
    result = app_client(was_host, db, "SHOW DATABASES")
    assert result.rc == 0, result.stderr
    assert set(result.stdout.split()) == {db["database"], "information_schema"}


def test_a_wrong_password_is_refused(was_host: Host, db: Tier) -> None:
    result = app_client(was_host, db, "SELECT 1", password="not-the-password")
    assert result.rc != 0
    assert "Access denied" in result.stderr


def test_the_balancer_cannot_reach_the_database(lb_host: Host, db: Tier) -> None:
    answer = probe_closed(lb_host, db.address, db["port"])
    if db.firewall:
        # nftables drops the connection before MariaDB sees it.
        assert answer in CLOSED, answer
    else:
        # MariaDB accepts TCP, then refuses any client address that has no account.
        assert f"Host '{lb_host.address}' is not allowed to connect" in answer, answer


@pytest.mark.parametrize("query", ["SELECT * FROM mysql.user", "CREATE DATABASE other"])
def test_app_cannot_leave_its_database(was_host: Host, db: Tier, query: str) -> None:
    result = app_client(was_host, db, query)
    assert result.rc != 0
    assert "denied" in result.stderr
