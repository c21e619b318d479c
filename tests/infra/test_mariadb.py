"""MariaDB (role mariadb): private address only, accounts per WAS with their own passwords and
data rights only, a migration account for DDL, TLS required."""

from __future__ import annotations

import re
from typing import Any

import pytest
from cluster_support import CLOSED, Tier, env_command, mariadb_app_command, probe_closed
from testinfra.backend.base import CommandResult
from testinfra.host import Host


def sql(db_host: Host, query: str) -> list[list[str]]:
    """Rows of a query run locally as root (unix socket)."""
    out = db_host.check_output("mariadb --batch --skip-column-names -e %s", query)
    return [line.split("\t") for line in out.splitlines()]


def app_client(
    was_host: Host, was_fact: dict[str, Any], query: str, password: str | None = None
) -> CommandResult:
    """Run a query from a WAS as the app does: the mariadb client with the account, password,
    server and TLS settings of the WAS's environment file, read there (never on a command line).
    `password` (a wrong one) replaces the file's."""
    return was_host.run(mariadb_app_command(was_fact["env_file"], query, password))


def test_mariadb_is_running_and_enabled(db_host: Host, db_fact: dict[str, Any]) -> None:
    service = db_host.service(db_fact["service"])
    assert service.is_running
    assert service.is_enabled


def test_mariadb_listens_on_the_private_address_only(
    db_host: Host, db_fact: dict[str, Any]
) -> None:
    port = f":{db_fact['port']}"
    listening = {s for s in db_host.socket.get_listening_sockets() if s.endswith(port)}
    # And on the writer's floating address, wherever it is (the kernel lets MariaDB bind it).
    wanted = [db_host.address] + (
        [db_fact["floating_address"]] if db_fact["floating_address"] else []
    )
    assert db_fact["listen_addresses"] == wanted
    assert listening == {f"tcp://{a}{port}" for a in wanted}


def test_mariadb_resolves_no_names(db_host: Host) -> None:
    assert sql(db_host, "SELECT @@skip_name_resolve") == [["1"]]


def test_each_was_account_has_its_own_password(
    db_host: Host, db_fact: dict[str, Any], was_addresses: set[str]
) -> None:
    query = "SELECT DISTINCT authentication_string FROM mysql.user WHERE User = '%s'"
    rows = sql(db_host, query % db_fact["app_user"])
    assert len(rows) == len(was_addresses), "two WAS share a database password"


def test_there_is_one_migration_account_per_was_address(
    db_host: Host, db_fact: dict[str, Any], was_addresses: set[str]
) -> None:
    rows = sql(db_host, f"SELECT Host FROM mysql.user WHERE User = '{db_fact['migrate_user']}'")
    assert sorted(row[0] for row in rows) == sorted(was_addresses)


@pytest.mark.parametrize("kind", ["app", "migrate"])
def test_accounts_require_tls_and_have_a_connection_limit(
    db_host: Host, db_fact: dict[str, Any], was_host: Host, kind: str
) -> None:
    user = db_fact[f"{kind}_user"]
    create = sql(db_host, f"SHOW CREATE USER '{user}'@'{was_host.address}'")[0][0]
    if db_fact["require_tls"]:
        assert "REQUIRE SSL" in create, create
    assert re.search(r"MAX_USER_CONNECTIONS [1-9]", create), create


def test_the_migration_account_holds_the_ddl(
    db_host: Host, db_fact: dict[str, Any], was_host: Host
) -> None:
    grants = sql(db_host, f"SHOW GRANTS FOR '{db_fact['migrate_user']}'@'{was_host.address}'")
    text = " ".join(row[0] for row in grants)
    for privilege in ("CREATE", "ALTER", "DROP", "INDEX"):
        assert privilege in text, text


def test_the_runtime_account_has_no_ddl(was_host: Host, was_fact: dict[str, Any]) -> None:
    result = app_client(was_host, was_fact, "SHOW GRANTS")
    assert result.rc == 0, result.stderr
    for privilege in ("CREATE", "ALTER", "DROP", "INDEX", "REFERENCES", "ALL PRIVILEGES"):
        assert privilege not in result.stdout, result.stdout


def test_the_app_connects_over_tls(was_host: Host, was_fact: dict[str, Any]) -> None:
    result = app_client(was_host, was_fact, "SHOW STATUS LIKE 'Ssl_version'")
    assert result.rc == 0, result.stderr
    assert re.search(r"Ssl_version\tTLSv1\.[23]", result.stdout), result.stdout


def test_a_connection_without_tls_is_refused(
    was_host: Host, was_fact: dict[str, Any], db_fact: dict[str, Any]
) -> None:
    if not db_fact["require_tls"]:
        pytest.skip("the inventory does not require TLS")
    script = (
        'MYSQL_PWD="$DJANGO_DB_PASSWORD" mariadb --skip-ssl --connect-timeout=5'
        ' -h "$DJANGO_DB_HOST" -P "$DJANGO_DB_PORT" -u "$DJANGO_DB_USER" -e "SELECT 1"'
    )
    result = was_host.run(env_command(was_fact["env_file"], script))
    assert result.rc != 0
    assert "Access denied" in result.stderr, result.stderr


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


def test_app_logs_in_from_each_was(was_host: Host, was_fact: dict[str, Any], db: Tier) -> None:
    result = app_client(was_host, was_fact, "SELECT CURRENT_USER()")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == f"{db['app_user']}@{was_host.address}"


def test_app_sees_only_its_own_database(was_host: Host, was_fact: dict[str, Any], db: Tier) -> None:
    result = app_client(was_host, was_fact, "SHOW DATABASES")
    assert result.rc == 0, result.stderr
    assert set(result.stdout.split()) == {db["database"], "information_schema"}


def test_a_wrong_password_is_refused(was_host: Host, was_fact: dict[str, Any]) -> None:
    result = app_client(was_host, was_fact, "SELECT 1", password="not-the-password")
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
def test_app_cannot_leave_its_database(
    was_host: Host, was_fact: dict[str, Any], query: str
) -> None:
    result = app_client(was_host, was_fact, query)
    assert result.rc != 0
    assert "denied" in result.stderr
