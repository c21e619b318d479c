"""Checks of an inventory against the cluster contract, before any host changes.

`inventory_problems` is the whole check: plain Python over plain mappings, so the unit tests
call it with dicts. Ansible hands it `hostvars` (templated on access: a variable whose template
fails raises, and that becomes a message too), `groups`, the contract's defaults and the raw
wiring (roles/wiring/vars/main.yml, untemplated). Every message names the variable, the hosts and
the file to edit.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HostVars = Mapping[str, Mapping[str, Any]]
Groups = Mapping[str, Sequence[str]]

WIRING_FILE = "roles/wiring/vars/main.yml"
HOSTS_FILES = ("hosts.yml", "hosts.yaml", "hosts.ini", "hosts")
# Generated lab secrets live there; they are not inventory (see ansible.cfg).
SKIPPED_DIRS = ("credentials",)
VAULT_HEADER = "$ANSIBLE_VAULT"

# Host variable naming a WAS's balancer route; the inventory name when unset.
ROUTE_VAR = "cluster_route"
ROUTE_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
# Variables of this project: a placeholder left in any of them is an example nobody replaced.
PROJECT_PREFIXES = (
    "cluster_",
    "apache_lb_",
    "django_",
    "mariadb_",
    "redis_",
    "object_storage_",
    "gcs_emulator_",
    "wheel_build_",
    "tls_ca_",
    "keepalived_",
    "firewall_",
    "ca_certificates_",
    "data_clients_",
    "vault_",
    "ansible_host",
)
VAULT_PREFIX = "vault_"
# Where media and static files live (cluster_storage), and the group each needs exactly one host
# of; the other storages' groups must be empty.
STORAGES = {"s3": "storage", "gcs": None}
GCS_KEY = "cluster_gcs_credentials_json"
GCS_KEY_FIELDS = ("client_email", "private_key", "project_id", "token_uri")
GCS_EMULATOR_GROUP = "gcs_emulator"
# A variable whose name holds one of these words is a secret: its value is never shown.
SECRET_WORDS = ("password", "secret", "key", "token")
# The contract ports each group's hosts serve ("all": every host). Two on one host must differ.
SERVED_PORTS: dict[str, tuple[str, ...]] = {
    "all": ("cluster_ssh_port",),
    "lb": ("cluster_http_port", "cluster_https_port"),
    "was": ("cluster_was_port",),
    "db": ("cluster_db_port",),
    "redis": ("cluster_redis_port",),
    "sentinel": ("cluster_sentinel_port",),
    "storage": ("cluster_s3_port",),
    "gcs_emulator": ("cluster_gcs_emulator_port",),
}
PORT_NAME = re.compile(r"^cluster_\w+_port$")
# The firewall role's switch and its SSH allow-list (roles/firewall/defaults/main.yml).
FIREWALL_ENABLED = "firewall_enabled"
FIREWALL_ADMIN_NETWORKS = "firewall_admin_networks"

NOT_AN_ADDRESS = "a name, not an IP address"
UNDEFINED = re.compile(r"'([A-Za-z_]\w*)' is undefined")
TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
# A name in an expression, with what precedes it (a filter's '|' or an attribute's '.') and
# whether a call follows: only bare names that are not called are variables.
NAME = re.compile(r"([|.]\s*)?\b([A-Za-z_]\w*)\b(\s*\()?")
JINJA_WORDS = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "for", "loop", "true", "false", "none"}
)
# Variables Ansible itself sets: a wiring template may read them, but no inventory can set them.
ANSIBLE_OWN = frozenset(
    {"playbook_dir", "inventory_dir", "groups", "hostvars", "inventory_hostname", "group_names"}
)


class Unreadable(Exception):
    """A variable is set but its template fails; the text says why, for a person."""

    def __init__(self, text: str, missing: str = "") -> None:
        super().__init__(text)
        self.missing = missing  # the undefined variable it reads, when that is the cause


@dataclass(frozen=True)
class Inventory:
    """The inputs of the checks, and the lookups they share."""

    hostvars: HostVars
    groups: Groups
    contract: Mapping[str, Any]
    wiring: Mapping[str, Any]
    inventory_dir: str
    base_dir: str = ""
    files: list[tuple[str, str]] = field(default_factory=list)

    @property
    def hosts(self) -> list[str]:
        """Every host, in inventory order."""
        return list(self.groups.get("all") or self.hostvars)

    def members(self, group: str) -> list[str]:
        return list(self.groups.get(group) or [])

    def var(self, host: str, name: str) -> Any:
        """A host's templated variable, as plain Python: KeyError when unset, Unreadable when its
        template fails."""
        try:
            variables = self.hostvars[host]
            present = name in variables
        except Exception as exc:
            raise Unreadable(f"the variables of {host} cannot be read: {exc}") from exc
        if not present:
            raise KeyError(name)
        try:
            # Ansible hands back an undefined value as a marker that raises only once used:
            # converting it all to plain Python here makes any such failure surface now.
            return plain(variables[name])
        except Exception as exc:
            raise Unreadable(explain(exc, self), undefined_name(exc)) from exc

    def is_set(self, host: str, name: str) -> bool:
        try:
            return name in self.hostvars[host]
        except Exception:
            return False

    def setting(self, host: str, name: str) -> Any:
        """A contract value as a host sees it: the inventory's (group_vars/all/cluster.yml), else
        the contract's default."""
        try:
            return self.var(host, name)
        except KeyError:
            return plain(self.contract.get(name))

    def cluster_setting(self, name: str) -> Any:
        """A contract value for the whole cluster: as the first host sees it."""
        hosts = self.hosts
        return self.setting(hosts[0], name) if hosts else plain(self.contract.get(name))

    def path(self, *parts: str) -> str:
        """A path of the inventory, as messages show it (relative to the repository)."""
        return display_path(Path(self.inventory_dir, *parts), self.base_dir)

    def hosts_file(self) -> str:
        for name in HOSTS_FILES:
            if Path(self.inventory_dir, name).is_file():
                return self.path(name)
        return f"the hosts file of {self.path()}"

    def found_in(self, name: str) -> list[str]:
        """The inventory files with a line that sets `name`."""
        return [path for path, text in self.files if defines(text, name, path)]

    def where(self, name: str, secret: bool = False) -> str:
        """The files that set `name`, or where to set it when none does."""
        found = self.found_in(name)
        if found:
            return " and ".join(found)
        if name.startswith("cluster_") and not secret:
            # Where the contract says overrides go.
            return self.path("group_vars", "all", "cluster.yml")
        return self.path("group_vars", "all") + "/"

    def vault_file(self) -> str:
        for path, text in self.files:
            if text.startswith(VAULT_HEADER):
                return path
        return self.path("group_vars", "all", "vault.yml")


# --- Helpers ------------------------------------------------------------------------------------


def display_path(path: Path, base_dir: str) -> str:
    """`path` relative to `base_dir` when it lies inside it, else absolute."""
    full = os.path.abspath(path)
    if base_dir:
        base = os.path.abspath(base_dir)
        if full == base or full.startswith(base + os.sep):
            return os.path.relpath(full, base)
    return full


def inventory_files(inventory_dir: str, base_dir: str = "") -> list[tuple[str, str]]:
    """(shown path, text) of the inventory's files: hosts file, group_vars/**, host_vars/**.

    Encrypted files (vault) keep only their header: their variables cannot be searched.
    """
    root = Path(inventory_dir)
    paths = [root / name for name in HOSTS_FILES if (root / name).is_file()]
    for sub in ("group_vars", "host_vars"):
        for dirpath, dirnames, filenames in os.walk(root / sub, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
            paths += [Path(dirpath, f) for f in sorted(filenames)]
    files = []
    for path in paths:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if text.startswith(VAULT_HEADER):
            text = VAULT_HEADER
        files.append((display_path(path, base_dir), text))
    return files


def defines(text: str, name: str, path: str = "") -> bool:
    """Whether a file's text sets `name`: `name:` in YAML, `name=` in INI."""
    if text == VAULT_HEADER:
        return False
    yaml_line = re.compile(rf"^\s*{re.escape(name)}\s*:", re.M)
    ini_line = re.compile(rf"(^|\s){re.escape(name)}=", re.M)
    if path.endswith(".ini") or os.path.basename(path) == "hosts":
        return bool(ini_line.search(text) or yaml_line.search(text))
    return bool(yaml_line.search(text))


def find_definitions(inventory_dir: str, name: str, base_dir: str = "") -> list[str]:
    """The inventory files (shown relative to `base_dir`) with a line setting `name`."""
    return [p for p, text in inventory_files(inventory_dir, base_dir) if defines(text, name, p)]


def undefined_name(exc: BaseException) -> str:
    """The undefined variable a template error names, or ''."""
    match = UNDEFINED.search(str(exc))
    return match.group(1) if match else ""


def explain(exc: BaseException, inv: Inventory | None = None) -> str:
    """What a failed template means, for a person."""
    missing = undefined_name(exc)
    if not missing:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    reason = f"{missing} is not defined"
    if missing.startswith(VAULT_PREFIX):
        vault = inv.vault_file() if inv else "group_vars/all/vault.yml"
        reason += (
            f"; the vault file ({vault}, see docs/production.md) is missing, not decrypted "
            f"(--ask-vault-pass or --vault-password-file) or lacks {missing}"
        )
    return reason


def is_secret(name: str) -> bool:
    return any(word in name.lower() for word in SECRET_WORDS)


def plain(value: Any) -> Any:
    """A value as plain Python (str, int, float, bool, None, list, dict), recursively.

    Anything else is turned into a string, so that a value that cannot be used raises here.
    """
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [plain(v) for v in value]
    return str(value)


def show(value: Any) -> str:
    return json.dumps(plain(value))


def listing(names: Iterable[str]) -> str:
    """a, b and c."""
    items = list(dict.fromkeys(names))
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def on_hosts(hosts: Sequence[str], inv: Inventory) -> str:
    """'on all hosts' or 'on lb1 and was1'."""
    everyone = inv.hosts
    if len(everyone) > 1 and list(hosts) == everyone:
        return "on all hosts"
    return "on " + listing(hosts)


def strings(value: Any) -> Iterable[str]:
    """Every string in a value, nested lists and dicts included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, Iterable):
        for item in value:
            yield from strings(item)


def is_true(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off", "n", "f")
    return bool(value)


def wired_sources(template: Any) -> list[str]:
    """The variables a wiring template reads: its cluster_* ones, else every variable it names."""
    names: list[str] = []
    for expression in TEMPLATE.findall(str(template)):
        for match in NAME.finditer(QUOTED.sub("''", expression)):
            before, name, call = match.groups()
            if before or call or name.lower() in JINJA_WORDS or name in ANSIBLE_OWN:
                continue
            names.append(name)
    names = list(dict.fromkeys(names))
    cluster = [n for n in names if n.startswith("cluster_")]
    return cluster or names


def size_text(low: int, high: int | None) -> str:
    if high is None:
        return f"at least {low}"
    if high == low:
        return f"exactly {low}"
    return f"between {low} and {high}"


def address_problem(value: str) -> str | None:
    """Why `value` is not an IP address, or None when it is one."""
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", value):
        parts = value.split(".")
        if len(parts) != 4 or "" in parts:
            return "not an IPv4 address: it needs four numbers separated by dots"
        if any(int(p) > 255 for p in parts):
            return "not an IPv4 address: each of its four numbers must be between 0 and 255"
        fixed = ".".join(str(int(p)) for p in parts)
        return (
            "not an IP address: a number with a leading zero is ambiguous (some tools read it "
            f"as octal); write {fixed}"
        )
    if ":" in value:
        return "not a valid IPv6 address"
    return NOT_AN_ADDRESS


def unreadable_setting(inv: Inventory, name: str, exc: Unreadable) -> str:
    return f"{name} cannot be read: {exc}. Fix it in {inv.where(name.split()[0])}."


# --- Checks: each returns its messages -----------------------------------------------------------


def check_group_sizes(inv: Inventory) -> list[str]:
    try:
        sizes = inv.cluster_setting("cluster_group_sizes") or {}
    except Unreadable as exc:
        return [unreadable_setting(inv, "cluster_group_sizes", exc)]
    problems = []
    for group, size in sizes.items():
        try:
            low = int(size.get("min", 1))
            high = None if size.get("max") is None else int(size["max"])
        except (AttributeError, TypeError, ValueError):
            problems.append(
                f"cluster_group_sizes.{group} is {show(size)}; write {{min: N}} or "
                f"{{min: N, max: M}} in {inv.where('cluster_group_sizes')}."
            )
            continue
        members = inv.members(group)
        if len(members) < low or (high is not None and len(members) > high):
            problems.append(
                f"Group '{group}' has {len(members)} host(s) ({', '.join(members) or 'none'}) "
                f"but needs {size_text(low, high)} (cluster_group_sizes). "
                f"Fix the '{group}' group in {inv.hosts_file()}."
            )
    both = sorted(set(inv.members("retired")) & set(inv.members("was")))
    if both:
        problems.append(
            f"{listing(both)} {'is' if len(both) == 1 else 'are'} in both 'was' and 'retired': a "
            f"retired server stops serving and loses its credentials. Remove it from one of the "
            f"two groups in {inv.hosts_file()}."
        )
    return problems


def own_address(inv: Inventory, host: str) -> str:
    """A host's ansible_host, or "" when it has none or it cannot be read (check_addresses
    reports those)."""
    try:
        return str(inv.var(host, "ansible_host")).strip()
    except (KeyError, Unreadable):
        return ""


def check_addresses(inv: Inventory) -> list[str]:
    problems = []
    missing = []
    holders: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, list[str]] = {}
    for host in inv.hosts:
        try:
            value = str(inv.var(host, "ansible_host")).strip()
        except KeyError:
            value = ""
        except Unreadable as exc:
            problems.append(f"ansible_host of {host} cannot be read: {exc}.")
            continue
        if not value:
            missing.append(host)
            continue
        reason = address_problem(value)
        if reason:
            fix = f"ansible_host to the host's private IP address in {inv.where('ansible_host')}"
            if reason == NOT_AN_ADDRESS:
                fix = (
                    "MariaDB runs with skip-name-resolve and the firewall matches source "
                    f"addresses: set {fix}"
                )
            else:
                fix = f"Set {fix}"
            problems.append(f"ansible_host of {host} is '{value}', {reason}. {fix}.")
            continue
        holders.setdefault(ipaddress.ip_address(value), []).append(host)
    if missing:
        problems.insert(
            0,
            f"These hosts have no ansible_host: {', '.join(missing)}. Give each one "
            f"`ansible_host: <its private IP address>` in {inv.hosts_file()}; grants, firewall "
            "rules and balancer members are built from it.",
        )
    for address, hosts in holders.items():
        if len(hosts) > 1:
            problems.append(
                f"These hosts share an address: {', '.join(hosts)} ({address}). Each host needs "
                f"its own ansible_host (its private address) in {inv.where('ansible_host')}; "
                "a copy-pasted entry is the usual cause."
            )
    return problems


def check_routes(inv: Inventory) -> list[str]:
    problems = []
    holders: dict[str, list[str]] = {}
    for host in inv.members("was"):
        try:
            route = str(inv.var(host, ROUTE_VAR))
        except KeyError:
            route = host
        except Unreadable as exc:
            problems.append(f"{ROUTE_VAR} of {host} cannot be read: {exc}.")
            continue
        if not ROUTE_PATTERN.fullmatch(route):
            problems.append(
                f"Balancer routes may hold only letters, digits, '-' and '_': {host} (route "
                f"'{route}'). Set {ROUTE_VAR} of {host} to a short name in {inv.hosts_file()} "
                "(a dotted host name cannot be its own route)."
            )
        holders.setdefault(route, []).append(host)
    route_files = " and ".join(inv.found_in(ROUTE_VAR)) or inv.hosts_file()
    for route, hosts in holders.items():
        if len(hosts) > 1:
            problems.append(
                f"These application servers share a balancer route: {', '.join(hosts)} (route "
                f"'{route}'). Sticky sessions need one route per server: give each a distinct "
                f"{ROUTE_VAR} in {route_files} (it defaults to the inventory name)."
            )
    return problems


def describe_source(inv: Inventory, host: str, name: str) -> str:
    """A variable the wiring reads, with its value when showing it helps and is safe."""
    if is_secret(name):
        return name
    try:
        value = inv.setting(host, name)
    except Unreadable:
        return name
    if isinstance(value, str) and "{{" in value:
        return f"{name} (derived from the inventory)"
    return name if value is None else f"{name} (= {show(value)})"


def check_wired_names(inv: Inventory) -> list[str]:
    """An inventory value of a wired name never reaches a role: the wiring wins. Refuse it."""
    sources = {name: wired_sources(template) for name, template in inv.wiring.items()}
    problems = []
    for name, srcs in sources.items():
        setters = [h for h in inv.hosts if inv.is_set(h, name)]
        if not setters:
            continue
        # What the inventory asked for, per host ("was1: 8001"); secrets are never shown.
        asked: dict[str, list[str]] = {}
        for host in setters:
            try:
                value = "" if is_secret(name) else show(inv.var(host, name))
            except (KeyError, Unreadable):
                value = ""
            asked.setdefault(value, []).append(host)
        shown = "; ".join(
            on_hosts(hosts, inv).removeprefix("on ") + (f": {value}" if value else "")
            for value, hosts in asked.items()
        )
        where = " and ".join(inv.found_in(name)) or "the inventory"
        if not srcs:
            problems.append(
                f"{name} is set in {where} ({shown}) but {WIRING_FILE} sets it, so "
                f"Ansible ignores the inventory's value. Remove {name}."
            )
            continue
        others = [n for n, s in sources.items() if n != name and set(s) & set(srcs)]
        also = f", which also feeds {listing(others)}" if others else ""
        feeds = listing(describe_source(inv, setters[0], s) for s in srcs)
        problems.append(
            f"{name} is set in {where} ({shown}) but {WIRING_FILE} sets it from "
            f"{feeds}{also}, so Ansible ignores the inventory's value. Remove {name} and set "
            f"{listing(srcs)} instead (in {listing(inv.where(s) for s in srcs)})."
        )
    return problems


def secret_hosts(inv: Inventory) -> dict[str, list[str]]:
    """Secret name -> the hosts that need it (every host of its groups), in inventory order."""
    try:
        secrets = inv.cluster_setting("cluster_secrets") or {}
    except Unreadable:
        return {}
    try:
        storage = inv.cluster_setting("cluster_storage")
    except Unreadable:
        storage = None
    needed = {}
    for name, spec in secrets.items():
        only_for = (spec or {}).get("storage")
        if only_for and only_for != storage:
            continue
        groups = (spec or {}).get("groups") or []
        members = {h for g in groups for h in inv.members(g)}
        needed[name] = [h for h in inv.hosts if h in members]
    return needed


def vault_names(inv: Inventory, name: str) -> list[str]:
    """The vault variables the inventory's definition of `name` reads ("{{ vault_x }}")."""
    line_of_name = re.compile(rf"^\s*{re.escape(name)}\s*:.*$", re.M)
    found = [
        vault
        for _, text in inv.files
        for line in line_of_name.findall(text)
        for vault in re.findall(rf"\b({VAULT_PREFIX}\w+)\b", line)
    ]
    return list(dict.fromkeys(found))


def secret_origin(inv: Inventory, name: str) -> str:
    """Where a secret is set, and the vault variable it reads when it reads one."""
    where = inv.where(name, secret=True)
    vaults = vault_names(inv, name)
    if vaults:
        where += (
            f" (its value comes from {listing(vaults)} in the vault: "
            f"ansible-vault edit {inv.vault_file()})"
        )
    return where


def check_secrets(inv: Inventory) -> list[str]:
    try:
        placeholder = str(inv.cluster_setting("cluster_placeholder") or "")
        specs = inv.cluster_setting("cluster_secrets") or {}
    except Unreadable as exc:
        return [unreadable_setting(inv, "cluster_placeholder or cluster_secrets", exc)]
    problems = []
    for name, hosts in secret_hosts(inv).items():
        min_length = int((specs.get(name) or {}).get("min_length") or 1)
        groups = listing((specs.get(name) or {}).get("groups") or [])
        found: dict[str, list[str]] = {}
        for host in hosts:
            try:
                value = inv.var(host, name)
            except KeyError:
                found.setdefault("missing", []).append(host)
                continue
            except Unreadable as exc:
                found.setdefault(f"unreadable:{exc}", []).append(host)
                continue
            if not isinstance(value, str):
                found.setdefault(f"type:{type(value).__name__}", []).append(host)
            elif placeholder and placeholder in value:
                found.setdefault("placeholder", []).append(host)
            elif len(value) < min_length:
                found.setdefault(f"short:{len(value)}", []).append(host)
        for kind, bad in found.items():
            who = listing(bad)
            if kind == "missing":
                problems.append(
                    f"{name} is not set for {who} (hosts of {groups} need it). Define it in "
                    f"{inv.path('group_vars', 'all')}/: production reads it from the vault "
                    "(see docs/production.md); the lab generates it "
                    "(group_vars/all/credentials.yml)."
                )
            elif kind.startswith("unreadable:"):
                problems.append(f"{name} of {who} cannot be read: {kind.partition(':')[2]}.")
            elif kind.startswith("type:"):
                problems.append(
                    f"{name} of {who} is of type {kind.partition(':')[2]}, not a string: quote "
                    f"it in {secret_origin(inv, name)}."
                )
            elif kind == "placeholder":
                problems.append(
                    f"{name} of {who} still holds the placeholder {placeholder}: replace it with "
                    f"a real secret of at least {min_length} characters in "
                    f"{secret_origin(inv, name)}."
                )
            else:
                problems.append(
                    f"{name} of {who} has {kind.partition(':')[2]} characters but needs at least "
                    f"{min_length} (cluster_secrets): set a longer one in "
                    f"{secret_origin(inv, name)} (docs/production.md shows how to generate one)."
                )
    return problems


def check_placeholders(inv: Inventory) -> list[str]:
    """A placeholder in any project variable of any host, or a vault value it cannot read."""
    try:
        placeholder = str(inv.cluster_setting("cluster_placeholder") or "")
    except Unreadable:
        return []
    if not placeholder:
        return []
    # Secrets are checked where they are needed (check_secrets), and the vault variables they read
    # hold the same values: each problem is reported once, under the secret's name.
    secrets = set(secret_hosts(inv))
    covered = secrets | {vault for name in secrets for vault in vault_names(inv, name)}
    found: dict[tuple[str, str], list[str]] = {}
    for host in inv.hosts:
        try:
            names = [n for n in inv.hostvars[host] if str(n).startswith(PROJECT_PREFIXES)]
        except Exception:
            continue
        for name in names:
            if name in covered:
                continue
            try:
                value = inv.var(host, name)
            except KeyError:
                continue
            except Unreadable as exc:
                # Facts and play variables are not there yet; only a missing vault value is sure.
                if exc.missing.startswith(VAULT_PREFIX):
                    found.setdefault((name, f"unreadable:{exc}"), []).append(host)
                continue
            hits = [s for s in strings(value) if placeholder in s]
            if hits:
                detail = "" if is_secret(name) else show(hits[0])
                found.setdefault((name, f"placeholder:{detail}"), []).append(host)
    problems = []
    for (name, kind), hosts in found.items():
        label, _, detail = kind.partition(":")
        if label == "unreadable":
            problems.append(f"{name} cannot be read {on_hosts(hosts, inv)}: {detail}.")
        else:
            shown = f" ({detail})" if detail else ""
            where = inv.where(name)
            if name.startswith(VAULT_PREFIX) and not inv.found_in(name):
                where = f"the vault (ansible-vault edit {inv.vault_file()})"
            problems.append(
                f"{name} holds the placeholder {placeholder}{shown} {on_hosts(hosts, inv)}: "
                f"replace it in {where}."
            )
    return problems


def check_https(inv: Inventory) -> list[str]:
    bad = []
    for host in inv.hosts:
        try:
            https = is_true(inv.setting(host, "cluster_https"))
            names = inv.setting(host, "cluster_public_names")
        except Unreadable:
            continue
        if https and not names:
            bad.append(host)
    if not bad:
        return []
    names_file, https_file = inv.where("cluster_public_names"), inv.where("cluster_https")
    return [
        f"cluster_https is true but cluster_public_names is empty {on_hosts(bad, inv)}: HTTPS "
        "needs the names clients use. Set cluster_public_names (e.g. [www.example.com]) in "
        f"{names_file}, or cluster_https: false (plain HTTP)"
        + ("." if https_file == names_file else f" in {https_file}.")
    ]


DB_BUDGET = (
    "cluster_db_connections_per_was",
    "cluster_db_migrate_connections",
    "cluster_db_reserved_connections",
    "cluster_db_max_connections",
)


def check_db_connections(inv: Inventory) -> list[str]:
    """Every WAS's connection budget, the migration's and the reserve fit in max_connections."""
    values = {}
    for name in DB_BUDGET:
        try:
            value = inv.cluster_setting(name)
        except Unreadable as exc:
            return [unreadable_setting(inv, name, exc)]
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)  # from -e or a template: numbers arrive as text
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return [
                f"{name} is {show(value)}, not a whole number of connections: set one in "
                f"{inv.where(name)}."
            ]
        values[name] = value
    per_was, migrate, reserved, limit = (values[name] for name in DB_BUDGET)
    was = len(inv.members("was"))
    needed = was * per_was + migrate + reserved
    if needed <= limit:
        return []
    return [
        f"The database would need {needed} connections ({was} WAS x {per_was} "
        f"cluster_db_connections_per_was + {migrate} for migrations + {reserved} reserved) but "
        f"cluster_db_max_connections is {limit}: raise cluster_db_max_connections, or lower "
        f"cluster_db_connections_per_was with gunicorn's workers or threads, in "
        f"{inv.where('cluster_db_max_connections')}."
    ]


# The floating addresses: the group whose hosts share each, and its VRRP router id's name.
FLOATING_ADDRESSES = {
    "cluster_lb_floating_address": ("lb", "cluster_lb_vrrp_router_id"),
    "cluster_db_floating_address": ("db", "cluster_db_vrrp_router_id"),
}


def floating_address_problems(inv: Inventory, name: str) -> tuple[list[str], str, Any]:
    """One floating address: an IPv4 address nobody owns, and a valid VRRP router id. Returns the
    problems, the address ('' for none) and the router id."""
    group, router_id_name = FLOATING_ADDRESSES[name]
    try:
        value = str(inv.cluster_setting(name) or "").strip()
        router_id = inv.cluster_setting(router_id_name)
    except Unreadable as exc:
        return [unreadable_setting(inv, name, exc)], "", None
    if not value:
        return [], "", router_id
    problems = []
    reason = address_problem(value)
    if reason is None and ":" in value:
        reason = "an IPv6 address: VRRP here carries one IPv4 address"
    if reason:
        problems.append(
            f"{name} is '{value}', {reason}. Set it to a free IPv4 address on the {group} hosts' "
            f"network in {inv.where(name)}."
        )
    else:
        owners = [h for h in inv.hosts if own_address(inv, h) == value]
        if owners:
            problems.append(
                f"{name} {value} is the own address of {listing(owners)}: the floating address "
                f"must belong to no host. Pick a free address in {inv.where(name)}."
            )
    if isinstance(router_id, str) and router_id.strip().isdigit():
        router_id = int(router_id)
    if isinstance(router_id, bool) or not isinstance(router_id, int) or not 0 < router_id < 256:
        problems.append(
            f"{router_id_name} is {show(router_id)}: a VRRP router id is a whole number from 1 "
            f"to 255. Fix it in {inv.where(router_id_name)}."
        )
    return problems, value, router_id


def check_floating_address(inv: Inventory) -> list[str]:
    """The balancers' and the database's floating addresses: each valid and free, not the same
    address or router id; two or more db hosts need one (the WAS write through it)."""
    problems: list[str] = []
    found = {}
    for name in FLOATING_ADDRESSES:
        own_problems, value, router_id = floating_address_problems(inv, name)
        problems += own_problems
        if value and not own_problems:
            found[name] = (value, router_id)
    lb, db = (found.get(name) for name in FLOATING_ADDRESSES)
    if lb and db and lb[0] == db[0]:
        problems.append(
            f"cluster_lb_floating_address and cluster_db_floating_address are both {lb[0]}: the "
            f"balancers and the database need addresses of their own. Change one in "
            f"{inv.where('cluster_db_floating_address')}."
        )
    if lb and db and lb[1] == db[1]:
        problems.append(
            f"cluster_lb_vrrp_router_id and cluster_db_vrrp_router_id are both {lb[1]}: each VRRP "
            f"group on a network needs its own id. Change one in "
            f"{inv.where('cluster_db_vrrp_router_id')}."
        )
    db_hosts = inv.members("db")
    if len(db_hosts) > 1 and "cluster_db_floating_address" not in found and not problems:
        problems.append(
            f"Group 'db' has {len(db_hosts)} hosts ({', '.join(db_hosts)}) but "
            "cluster_db_floating_address is not set: the application servers write through that "
            "address, which follows the primary on a failover. Set it to a free IPv4 address on "
            f"the db hosts' network in {inv.where('cluster_db_floating_address')}."
        )
    both = sorted(set(inv.members("lb")) & set(db_hosts))
    if lb and db and both:
        verb = "is" if len(both) == 1 else "are"
        problems.append(
            f"{listing(both)} {verb} in both groups 'lb' and 'db': with two floating addresses "
            f"each group needs hosts of its own. Move the host out of one group in "
            f"{inv.hosts_file()}."
        )
    return problems


# Sentinels a failover needs: a majority must survive the loss of any one host.
MIN_SENTINELS = 3


def check_sentinels(inv: Inventory) -> list[str]:
    """Two or more Redis servers need Sentinel (at least three voters) to fail over; sentinels
    without a Redis to watch, or beside a single one, have nothing to promote."""
    redis, sentinels = inv.members("redis"), inv.members("sentinel")
    if len(redis) > 1 and len(sentinels) < MIN_SENTINELS:
        return [
            f"Group 'redis' has {len(redis)} hosts ({', '.join(redis)}) but group 'sentinel' has "
            f"{len(sentinels)} ({', '.join(sentinels) or 'none'}): a replica is promoted only by a "
            f"majority of at least {MIN_SENTINELS} sentinels, on hosts that fail separately. Add "
            f"hosts to the 'sentinel' group in {inv.hosts_file()} (the Redis hosts and one more), "
            "or keep one Redis host."
        ]
    if len(redis) == 1 and sentinels:
        return [
            f"Group 'sentinel' has hosts ({', '.join(sentinels)}) but group 'redis' has only "
            f"{redis[0]}: Sentinel has no replica to promote. Add a Redis host to the 'redis' "
            f"group, or empty the 'sentinel' group, in {inv.hosts_file()}."
        ]
    return []


def gcs_key_problem(text: str) -> str | None:
    """What is wrong with a service-account key's JSON text, or None. Never quotes the key."""
    try:
        key = json.loads(text)
    except ValueError as exc:
        return f"is not JSON ({exc.__class__.__name__}: {exc})"
    if not isinstance(key, dict):
        return f"is JSON of type {type(key).__name__}, not an object"
    if key.get("type") != "service_account":
        return (
            f'has type {show(key.get("type"))}, not "service_account": use the key file of a '
            "service account (IAM > Service accounts > Keys), not a user's or a workload "
            "identity's credentials"
        )
    missing = [name for name in GCS_KEY_FIELDS if not str(key.get(name) or "").strip()]
    if missing:
        return f"lacks {listing(missing)}"
    try:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        load_pem_private_key(str(key["private_key"]).encode(), password=None)
    except (ValueError, TypeError) as exc:
        return f"has a private_key that does not load ({exc.__class__.__name__})"
    return None


def check_storage(inv: Inventory) -> list[str]:
    try:
        storage = inv.cluster_setting("cluster_storage")
    except Unreadable as exc:
        return [unreadable_setting(inv, "cluster_storage", exc)]
    where = inv.where("cluster_storage")
    if storage not in STORAGES:
        return [
            f"cluster_storage is {show(storage)}: use s3 (SeaweedFS on the storage group's host) "
            f"or gcs (a Google Cloud Storage bucket) in {where}."
        ]
    problems = []
    for kind, group in STORAGES.items():
        if group is None:
            continue
        members = inv.members(group)
        if kind == storage and len(members) != 1:
            problems.append(
                f"cluster_storage is {kind}, so group '{group}' needs exactly one host, and has "
                f"{len(members)} ({', '.join(members) or 'none'}). Fix the '{group}' group in "
                f"{inv.hosts_file()}."
            )
        elif kind != storage and members:
            problems.append(
                f"cluster_storage is {storage}, but group '{group}' has {listing(members)}, which "
                f"only {kind} uses. Remove {'it' if len(members) == 1 else 'them'} from "
                f"'{group}' in {inv.hosts_file()}, or set cluster_storage: {kind} in {where}."
            )
    emulators = inv.members(GCS_EMULATOR_GROUP)
    if emulators and storage != "gcs":
        problems.append(
            f"Group '{GCS_EMULATOR_GROUP}' ({listing(emulators)}) stands in for Google Cloud "
            f"Storage, but cluster_storage is {storage}. Set cluster_storage: gcs in {where}, or "
            f"remove the group from {inv.hosts_file()}."
        )
    if storage == "gcs":
        problems += check_gcs_key(inv)
    return problems


def check_gcs_key(inv: Inventory) -> list[str]:
    """The key's JSON: length and presence are check_secrets' part, its content is this one's."""
    bad: dict[str, list[str]] = {}
    for host in secret_hosts(inv).get(GCS_KEY, []):
        try:
            value = inv.var(host, GCS_KEY)
        except (KeyError, Unreadable):
            continue
        if isinstance(value, str):
            problem = gcs_key_problem(value)
            if problem:
                bad.setdefault(problem, []).append(host)
    return [
        f"{GCS_KEY} {problem} {on_hosts(hosts, inv)}. Paste the whole JSON key file of the "
        f"service account as a string in {secret_origin(inv, GCS_KEY)} (docs/production.md)."
        for problem, hosts in bad.items()
    ]


def served_groups(inv: Inventory, host: str) -> list[str]:
    """The groups of a host that serve a contract port (beyond SSH, which every host serves)."""
    return [g for g in SERVED_PORTS if g != "all" and host in inv.members(g)]


def check_ports(inv: Inventory) -> list[str]:
    port_names = [n for n in inv.contract if PORT_NAME.match(n)]
    invalid: dict[tuple[str, str], list[str]] = {}
    shared: dict[tuple[tuple[str, ...], int], list[str]] = {}
    for host in inv.hosts:
        ports: dict[str, Any] = {}
        for name in port_names:
            try:
                ports[name] = inv.setting(host, name)
            except Unreadable:
                continue
            value = ports[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
                invalid.setdefault((name, show(value)), []).append(host)
        served: dict[int, list[str]] = {}
        for group in ["all", *served_groups(inv, host)]:
            for name in SERVED_PORTS[group]:
                value = ports.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    served.setdefault(value, []).append(name)
        for port, names in served.items():
            if len(set(names)) > 1:
                shared.setdefault((tuple(dict.fromkeys(names)), port), []).append(host)
    problems = [
        f"{name} is {value} {on_hosts(hosts, inv)}: a port is a whole number from 1 to 65535 "
        f"(unquoted). Fix it in {inv.where(name)}."
        for (name, value), hosts in invalid.items()
    ]
    for (clash, port), hosts in shared.items():
        served_by = list(dict.fromkeys(g for h in hosts for g in served_groups(inv, h)))
        problems.append(
            f"{listing(clash)} are {'both' if len(clash) == 2 else 'all'} {port} "
            f"{on_hosts(hosts, inv)} ({'group' if len(served_by) == 1 else 'groups'} "
            f"{listing(served_by)}): one host cannot serve two services on one port. Give one of "
            f"them another port in {listing(inv.where(n) for n in clash)}."
        )
    return problems


def check_firewall(inv: Inventory) -> list[str]:
    found: dict[tuple[str, str], list[str]] = {}
    for host in inv.hosts:
        try:
            enabled = is_true(inv.var(host, FIREWALL_ENABLED))
        except KeyError:
            enabled = True  # the firewall role's default
        except Unreadable:
            continue
        if not enabled:
            continue
        try:
            networks = inv.var(host, FIREWALL_ADMIN_NETWORKS)
        except KeyError:
            networks = []
        except Unreadable:
            continue
        if isinstance(networks, str | Mapping) or not isinstance(networks, Iterable):
            found.setdefault(("type", type(networks).__name__), []).append(host)
            continue
        networks = list(networks)
        if not networks:
            found.setdefault(("empty", ""), []).append(host)
        for network in networks:
            try:
                ipaddress.ip_network(str(network).strip(), strict=False)
            except ValueError:
                found.setdefault(("invalid", str(network)), []).append(host)
    where = inv.where(FIREWALL_ADMIN_NETWORKS)
    problems = []
    for (kind, detail), hosts in found.items():
        if kind == "empty":
            problems.append(
                f"{FIREWALL_ADMIN_NETWORKS} is empty {on_hosts(hosts, inv)} while the firewall is "
                "on: SSH would be closed to everyone, Ansible included. List the networks Ansible "
                f'connects from in {where}, e.g. {FIREWALL_ADMIN_NETWORKS}: ["192.0.2.0/24"] '
                f"(the controller's network), or set {FIREWALL_ENABLED}: false if you manage the "
                "firewall yourself."
            )
        elif kind == "type":
            problems.append(
                f"{FIREWALL_ADMIN_NETWORKS} is of type {detail}, not a list, "
                f"{on_hosts(hosts, inv)}: write it as a list of networks in {where}, e.g. "
                '["192.0.2.0/24"].'
            )
        else:
            problems.append(
                f"{FIREWALL_ADMIN_NETWORKS} holds '{detail}' {on_hosts(hosts, inv)}, which is not "
                f"a network: write e.g. 192.0.2.0/24 or 2001:db8::/32 in {where}."
            )
    return problems


MAIL_SETTINGS = ("cluster_alert_mail_to", "cluster_alert_mail_from", "cluster_smtp_smarthost")


def check_monitoring_mail(inv: Inventory) -> list[str]:
    """A monitoring host mails its alerts: where to, from whom, and through which relay."""
    hosts = inv.members("monitoring")
    if not hosts:
        return []
    problems = []
    for name in MAIL_SETTINGS:
        try:
            value = inv.setting(hosts[0], name)
        except Unreadable:
            continue
        text = str(value or "").strip()
        if not text:
            problems.append(
                f"{name} is empty, and the monitoring host {hosts[0]} mails every alert: set it in "
                f"{inv.where(name)} (e.g. ops@example.com, alertmanager@example.com, "
                "smtp.example.com:587), or remove the monitoring group."
            )
        elif name == "cluster_smtp_smarthost" and not re.fullmatch(r"[^\s:]+:\d{1,5}", text):
            problems.append(
                f"cluster_smtp_smarthost is '{text}', which is not host:port: write e.g. "
                f"smtp.example.com:587 in {inv.where(name)}."
            )
        elif name != "cluster_smtp_smarthost" and "@" not in text:
            problems.append(
                f"{name} is '{text}', which is not a mail address: write e.g. ops@example.com in "
                f"{inv.where(name)}."
            )
    return problems


POOL_GROUP = "was_pool"
AUTOSCALE_BOUNDS = ("cluster_autoscale_min_was", "cluster_autoscale_max_was")


def check_autoscaling(inv: Inventory) -> list[str]:
    """A standby pool needs the monitoring host (its alerts and its autoscaler), hosts that do
    nothing else, and bounds the pool can meet."""
    pool = inv.members(POOL_GROUP)
    if not pool:
        return []
    if not inv.members("monitoring"):
        return [
            f"Group '{POOL_GROUP}' has hosts ({', '.join(pool)}) but there is no 'monitoring' "
            "host: the pool grows and shrinks on its alerts, through the autoscaler it runs. Add a "
            f"monitoring host, or empty the '{POOL_GROUP}' group, in {inv.hosts_file()}."
        ]
    problems = []
    for host in pool:
        others = [
            group
            for group, members in inv.groups.items()
            if host in (members or []) and group not in ("all", "ungrouped", "was", POOL_GROUP)
        ]
        if others:
            named = ", ".join(f"'{group}'" for group in others)
            problems.append(
                f"{host} is in the standby pool '{POOL_GROUP}' and in group(s) {named}: a standby "
                "host serves nothing until the autoscaler makes it a WAS. Remove it from one of "
                f"them in {inv.hosts_file()}."
            )
    fixed = len([host for host in inv.members("was") if host not in pool])
    bounds = []
    for name in AUTOSCALE_BOUNDS:
        try:
            value = inv.cluster_setting(name)
            bounds.append(int(value or 0))
        except Unreadable as exc:
            return [*problems, unreadable_setting(inv, name, exc)]
        except (TypeError, ValueError):
            return [
                *problems,
                f"{name} is {show(value)}, not a number of WAS hosts: write e.g. 2 (0: the "
                f"default) in {inv.where(name)}.",
            ]
    low, high = bounds[0] or fixed, bounds[1] or fixed + len(pool)
    if not 1 <= low <= high <= fixed + len(pool):
        problems.append(
            f"The autoscaling bounds are {low} to {high} WAS (cluster_autoscale_min_was, "
            f"cluster_autoscale_max_was), but the inventory has {fixed} WAS of its own and "
            f"{len(pool)} in the pool: need 1 <= minimum <= maximum <= {fixed + len(pool)}. "
            f"Fix them in {inv.where(AUTOSCALE_BOUNDS[0])}, or grow the pool."
        )
    return problems


CHECKS = (
    check_group_sizes,
    check_addresses,
    check_routes,
    check_wired_names,
    check_secrets,
    check_storage,
    check_placeholders,
    check_https,
    check_db_connections,
    check_floating_address,
    check_sentinels,
    check_ports,
    check_firewall,
    check_monitoring_mail,
    check_autoscaling,
)


def inventory_problems(
    hostvars: HostVars,
    groups: Groups,
    contract: Mapping[str, Any],
    wiring: Mapping[str, Any],
    inventory_dir: str,
    base_dir: str = "",
) -> list[str]:
    """Every problem of the inventory, one message each; empty when it is fine.

    `contract` holds the contract's defaults; an inventory value of the same name (usually in
    group_vars/all/cluster.yml) wins, as it does for the plays. `base_dir` (the repository)
    shortens the paths the messages show.
    """
    inv = Inventory(
        hostvars=hostvars,
        groups=groups,
        contract=contract,
        wiring=wiring,
        inventory_dir=str(inventory_dir),
        base_dir=str(base_dir or ""),
        files=inventory_files(str(inventory_dir), str(base_dir or "")),
    )
    problems: list[str] = []
    for check in CHECKS:
        problems += check(inv)
    return problems


def problem_report(problems: Sequence[str]) -> str:
    """The problems as one message: a summary line, then one numbered line each."""
    lines = [f"The inventory has {len(problems)} problem(s); no host has been changed:"]
    lines += [f"{number}. {problem}" for number, problem in enumerate(problems, 1)]
    return "\n".join(lines)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "cluster_inventory_problems": inventory_problems,
            # The same filter under the role's own prefix, for the role's YAML.
            "validate_inventory_problems": inventory_problems,
            "validate_inventory_report": problem_report,
        }
