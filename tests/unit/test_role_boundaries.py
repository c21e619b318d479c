"""Roles stay inside their boundaries: a role names only its own variables, never reaches outside
its directory, and never picks hosts out of a group by name.

What crosses tiers is wired in one place (roles/cluster, roles/wiring), and
each role takes only its own prefixed inputs (docs: /work/shared/STYLE.md, "Ansible roles").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "roles"

# Every role's variable prefix. A new role must be added here, or test_role_prefixes fails.
ROLE_PREFIXES = {
    "apache_lb": "apache_lb_",
    "django_was": "django_was_",
    "mariadb": "mariadb_",
    "redis": "redis_",
    "sentinel": "sentinel_",
    "object_storage": "object_storage_",
    "gcs_emulator": "gcs_emulator_",
    "wheel_build": "wheel_build_",
    "tls_ca": "tls_ca_",
    "keepalived": "keepalived_",
    "db_backup": "db_backup_",
    "exporters": "exporters_",
    "monitoring": "monitoring_",
    "autoscaler": "autoscaler_",
    "firewall": "firewall_",
    "ca_certificates": "ca_certificates_",
    "data_clients": "data_clients_",
    "validate_inventory": "validate_inventory_",
    "cluster": "cluster_",
}
# The one role that names every other role's inputs, by design: the wiring (variables only).
WIRING_ROLE = "wiring"
# Words that carry a prefix but name no variable, and what they are instead.
NOT_VARIABLES = {
    "cluster_firewall": "the firewall role's nftables table (firewall.fact: table)",
    "cluster_access": "the balancer's access log, cluster_access.log (exporters' mtail reads it)",
}
# Where a role names variables: its API, its internals, its tasks and templates.
SCANNED_DIRS = ("defaults", "vars", "tasks", "handlers", "templates")
SCANNED_FILES = ("meta/argument_specs.yml",)
SCANNED_SUFFIXES = (".yml", ".yaml", ".j2")
# Group names a role may spell out: Ansible's own, not the cluster's topology.
BUILTIN_GROUPS = {"all", "ungrouped"}

REACHES_OUT = re.compile(r"role_path(?:[\s'\"}~+]*/\.\.|\s*\|\s*dirname)")
LITERAL_GROUP = re.compile(r"""groups\s*(?:\[\s*['"]([\w-]+)['"]\s*\]|\.([A-Za-z_]\w*))""")


def name_pattern(prefixes: dict[str, str]) -> re.Pattern[str]:
    """Project variable names: a prefix, then at least one identifier character.

    `__` in front (internal variables) counts with the prefix after it. Not a name: a prefix glued
    to a longer word or to a hyphen (mariadb-server, python3-redis_x), a role name alone
    (`role: django_was`, `mariadb.nft`, `facts.d/redis.fact`).
    """
    alternatives = "|".join(re.escape(p) for p in sorted(set(prefixes.values()), key=len)[::-1])
    return re.compile(rf"(?<![A-Za-z0-9_-])(_{{0,2}}(?:{alternatives})[A-Za-z0-9_]+)")


def scanned_files(role_dir: Path) -> Iterator[Path]:
    for name in SCANNED_DIRS:
        base = role_dir / name
        if base.is_dir():
            yield from (
                p for p in sorted(base.rglob("*")) if p.is_file() and p.suffix in SCANNED_SUFFIXES
            )
    for name in SCANNED_FILES:
        if (role_dir / name).is_file():
            yield role_dir / name


def role_dirs(roles: Path) -> list[Path]:
    return sorted(p for p in roles.iterdir() if p.is_dir() and not p.name.startswith("."))


def owner(name: str, prefixes: dict[str, str]) -> str:
    """The role whose prefix `name` carries (the longest prefix wins)."""
    bare = name.lstrip("_")
    matches = [(len(p), role) for role, p in prefixes.items() if bare.startswith(p)]
    return max(matches)[1]


def foreign_names(roles: Path, prefixes: dict[str, str] = ROLE_PREFIXES) -> list[str]:
    """Every variable name a role spells with another role's prefix, as "file:line: name (role)".

    A role missing from `prefixes` is an offence too: its own names could not be told apart.
    """
    pattern = name_pattern(prefixes)
    offences = []
    for role_dir in role_dirs(roles):
        role = role_dir.name
        if role == WIRING_ROLE:
            continue
        if role not in prefixes:
            offences.append(f"{role_dir.relative_to(roles.parent)}: no prefix for role {role}")
            continue
        for path in scanned_files(role_dir):
            where = path.relative_to(roles.parent)
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                for name in pattern.findall(line):
                    other = owner(name, prefixes)
                    if other != role and name not in NOT_VARIABLES:
                        offences.append(f"{where}:{number}: {name} (role {other})")
    return offences


def reaches_outside(roles: Path) -> list[str]:
    """Lines of any file under roles/ that climb out of a role with role_path/.."""
    return [
        f"{path.relative_to(roles.parent)}:{number}: {line.strip()}"
        for path in sorted(roles.rglob("*"))
        if path.is_file()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if REACHES_OUT.search(line)
    ]


def literal_groups(roles: Path, exempt: tuple[str, ...] = ("cluster", WIRING_ROLE)) -> list[str]:
    """Lines where a role picks a group by name (groups['db']); the contract and the wiring may,
    once for all."""
    offences = []
    for role_dir in role_dirs(roles):
        if role_dir.name in exempt:
            continue
        for path in scanned_files(role_dir):
            lines = path.read_text(errors="replace").splitlines()
            for number, line in enumerate(lines, 1):
                for quoted, dotted in LITERAL_GROUP.findall(line):
                    group = quoted or dotted
                    if group not in BUILTIN_GROUPS:
                        where = path.relative_to(roles.parent)
                        offences.append(f"{where}:{number}: groups[{group!r}]")
    return offences


def report(offences: list[str]) -> str:
    return f"{len(offences)} offence(s):\n" + "\n".join(offences)


def test_role_prefixes_cover_every_role() -> None:
    unknown = {p.name for p in role_dirs(ROLES)} - ROLE_PREFIXES.keys() - {WIRING_ROLE}
    assert not unknown, f"add the variable prefix of {sorted(unknown)} to ROLE_PREFIXES"


def test_the_wiring_is_variables_only() -> None:
    """Its exemption from the prefixes covers wiring only: no tasks, templates or defaults."""
    files = {str(p.relative_to(ROLES / WIRING_ROLE)) for p in (ROLES / WIRING_ROLE).rglob("*")}
    assert files - {"vars", "meta"} == {"vars/main.yml", "meta/main.yml"}


def test_every_play_of_a_wired_role_lists_the_wiring_first() -> None:
    """A play whose roles take inputs from the wiring lists it first in `roles:`."""
    wiring = yaml.safe_load((ROLES / WIRING_ROLE / "vars/main.yml").read_text())
    wired = {r for r, prefix in ROLE_PREFIXES.items() if any(n.startswith(prefix) for n in wiring)}
    unwired = []
    for path in sorted((REPO / "playbooks").glob("*.yml")):
        for play in yaml.safe_load(path.read_text()) or []:
            roles = [r["role"] if isinstance(r, dict) else r for r in play.get("roles") or []]
            if wired & set(roles) and roles[0] != WIRING_ROLE:
                unwired.append(f"{path.relative_to(REPO)}: {play.get('name')!r}: {roles}")
    assert not unwired, "\n".join(unwired)


def test_roles_name_only_their_own_variables() -> None:
    offences = foreign_names(ROLES)
    assert not offences, report(offences)


def test_roles_never_reach_outside_themselves() -> None:
    offences = reaches_outside(ROLES)
    assert not offences, report(offences)


def test_roles_pick_no_group_by_name() -> None:
    offences = literal_groups(ROLES)
    assert not offences, report(offences)


# --- The checkers themselves, on small trees: they must find what they are meant to. -----------


def make_role(roles: Path, role: str, relative: str, text: str) -> Path:
    path = roles / role / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("port: '{{ django_was_port }}'", ["django_was_port (role django_was)"]),
        ("packages: '{{ __redis_packages }}'", ["__redis_packages (role redis)"]),
        ("# set apache_lb_members in the inventory", ["apache_lb_members (role apache_lb)"]),
        ("when: hostvars[h].firewall_enabled", ["firewall_enabled (role firewall)"]),
        ("db: '{{ cluster_db_address }}'", ["cluster_db_address (role cluster)"]),
        ("name: [mariadb-server, python3-redis]", []),
        ("src: etc/nftables.d/redis.nft.j2", []),
        ("role: django_was", []),
        ("dest: /etc/ansible/facts.d/object_storage.fact", []),
        ("x: '{{ mariadb_port }}{{ __mariadb_service }}'", []),
        ("x: '{{ my_redis_port }}'", []),
        ("table: cluster_firewall", []),
        ("x: '{{ cluster_firewall_rules }}'", ["cluster_firewall_rules (role cluster)"]),
    ],
)
def test_foreign_names_reports_exactly_the_foreign_names(
    tmp_path: Path, line: str, found: list[str]
) -> None:
    make_role(tmp_path / "roles", "mariadb", "tasks/main.yml", f"---\n{line}\n")
    assert foreign_names(tmp_path / "roles") == [
        f"roles/mariadb/tasks/main.yml:2: {name}" for name in found
    ]


def test_foreign_names_scans_templates_defaults_and_argument_specs(tmp_path: Path) -> None:
    roles = tmp_path / "roles"
    make_role(roles, "redis", "templates/etc/redis.conf.j2", "bind {{ mariadb_bind_address }}\n")
    make_role(roles, "redis", "defaults/main.yml", "redis_port: '{{ cluster_redis_port }}'\n")
    make_role(roles, "redis", "meta/argument_specs.yml", "# like firewall_rules\n")
    make_role(roles, "redis", "meta/main.yml", "# not scanned: firewall_enabled\n")
    assert foreign_names(roles) == [
        "roles/redis/defaults/main.yml:1: cluster_redis_port (role cluster)",
        "roles/redis/templates/etc/redis.conf.j2:1: mariadb_bind_address (role mariadb)",
        "roles/redis/meta/argument_specs.yml:1: firewall_rules (role firewall)",
    ]


def test_a_role_without_a_prefix_is_an_offence(tmp_path: Path) -> None:
    make_role(tmp_path / "roles", "haproxy", "tasks/main.yml", "---\n")
    assert foreign_names(tmp_path / "roles") == ["roles/haproxy: no prefix for role haproxy"]


@pytest.mark.parametrize(
    "line",
    [
        "src: '{{ role_path }}/../../app'",
        "src: \"{{ role_path ~ '/../files' }}\"",
        "path: {{role_path}}/..",
        "path: '{{ role_path | dirname }}/app'",
    ],
)
def test_reaches_outside_finds_role_path_climbing_out(tmp_path: Path, line: str) -> None:
    make_role(tmp_path / "roles", "redis", "tasks/main.yml", f"---\n{line}\n")
    assert len(reaches_outside(tmp_path / "roles")) == 1


def test_reaches_outside_allows_files_inside_the_role(tmp_path: Path) -> None:
    make_role(tmp_path / "roles", "redis", "tasks/main.yml", "src: '{{ role_path }}/files/x'\n")
    assert reaches_outside(tmp_path / "roles") == []


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("hosts: \"{{ groups['db'] }}\"", ["groups['db']"]),
        ('hosts: "{{ groups["was"] | length }}"', ["groups['was']"]),
        ("hosts: '{{ groups.lb }}'", ["groups['lb']"]),
        ("hosts: \"{{ groups['all'] }}\"", []),
        ("hosts: '{{ groups[item] }}'", []),
        ("x: '{{ rule | firewall_sources(groups, hostvars) }}'", []),
    ],
)
def test_literal_groups_finds_groups_picked_by_name(
    tmp_path: Path, line: str, found: list[str]
) -> None:
    make_role(tmp_path / "roles", "redis", "tasks/main.yml", f"---\n{line}\n")
    make_role(tmp_path / "roles", "cluster", "defaults/main.yml", f"---\n{line}\n")
    assert literal_groups(tmp_path / "roles") == [
        f"roles/redis/tasks/main.yml:2: {group}" for group in found
    ]
