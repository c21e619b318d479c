"""Helpers of the cluster tests (tests/converge, tests/infra, tests/e2e, bench/).

Names, addresses and secrets come from the inventory under test (LAB_INVENTORY, default
inventory/lab); what a role installed (ports, services, paths) from the JSON local fact it leaves
on each host, /etc/ansible/facts.d/<role>.fact. Nothing is hard-coded and no role's defaults are
re-read, so the same tests check the lab and a production inventory.
"""

from __future__ import annotations

import functools
import importlib.util
import ipaddress
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ansible_runner
import requests
import testinfra
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ANSIBLE_CONFIG = REPO / "ansible.cfg"
# testinfra and ansible-runner call ansible-inventory / ansible-playbook by name.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("ANSIBLE_CONFIG", str(ANSIBLE_CONFIG))

# Variables rendered for every host by `host_vars` (templated by Ansible, vault included).
CONNECTION_VARS = (
    "ansible_host",
    "ansible_user",
    "ansible_port",
    "ansible_connection",
    "ansible_ssh_private_key_file",
    "ansible_ssh_common_args",
)
# Secrets the clients of the data tiers present; the inventory holds them (lab: generated files,
# production: the vault), never a fact.
SECRET_VARS = (
    "cluster_db_password",
    "cluster_redis_password",
    "cluster_s3_access_key",
    "cluster_s3_secret_key",
    "cluster_gcs_credentials_json",
)
# Variables rendered by `rendered`: a WAS host's balancer route, and the secrets.
RENDERED_VARS = ("cluster_route", "cluster_lb_floating_address", *SECRET_VARS)
FACTS_DIR = "/etc/ansible/facts.d"
# The role serving each group (DESIGN.md); it leaves /etc/ansible/facts.d/<role>.fact on its hosts.
# The firewall role runs on every host and leaves firewall.fact.
GROUP_ROLES = {
    "lb": "apache_lb",
    "was": "django_was",
    "db": "mariadb",
    "redis": "redis",
    "sentinel": "sentinel",
    "storage": "object_storage",
    "gcs_emulator": "gcs_emulator",
    "build": "wheel_build",
    "monitoring": "monitoring",
}
# Reads a role's local fact of an inventory host: (host name, role name) -> the fact.
FactReader = Callable[[str, str], dict[str, Any]]


def lab_inventory() -> Path:
    """The inventory under test: $LAB_INVENTORY (relative to the repository) or inventory/lab."""
    path = Path(os.environ.get("LAB_INVENTORY", "inventory/lab"))
    return path if path.is_absolute() else REPO / path


@functools.cache
def inventory_data(inventory: Path) -> dict[str, Any]:
    """`ansible-inventory --list`: groups and raw (untemplated) host variables."""
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"ansible-inventory -i {inventory} failed:\n{proc.stderr}"
    return json.loads(proc.stdout)


def group_hosts(inventory: Path, group: str) -> list[str]:
    """Hosts of a group, its child groups' included ("all" lists every host), in inventory order."""
    return list(dict.fromkeys(_walk_group(inventory_data(inventory), group)))


def _walk_group(data: dict[str, Any], group: str) -> Iterator[str]:
    entry = data.get(group, {})
    yield from entry.get("hosts", [])
    for child in entry.get("children", []):
        yield from _walk_group(data, child)


def host_groups(inventory: Path, host: str) -> set[str]:
    """Every group a host belongs to, directly or through a child group."""
    data = inventory_data(inventory)
    return {g for g in data if g != "_meta" and host in _walk_group(data, g)}


@functools.cache
def host_vars(inventory: Path, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Templated values of `names` for every host, rendered by Ansible (one ad-hoc run).

    Undefined variables come back as None.
    """
    expr = "{{ {" + ", ".join(f"'{n}': {n} | default(none)" for n in names) + "} }}"
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ANSIBLE_CONFIG),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
    }
    proc = subprocess.run(
        [str(BIN / "ansible"), "all", "-i", str(inventory), "-m", "ansible.builtin.debug"]
        + ["-a", f"msg={expr}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, f"rendering {names} failed:\n{proc.stdout[-3000:]}\n{proc.stderr}"
    return {host: result["msg"] for host, result in _task_results(json.loads(proc.stdout)).items()}


def _task_results(report: dict[str, Any]) -> dict[str, Any]:
    """Every host's result in an ansible.posix.json report of one task.

    Ansible's linear strategy reports an ad-hoc task once for all hosts; Mitogen's reports it once
    per host, so the hosts are spread over as many task entries.
    """
    return {
        host: result
        for play in report["plays"]
        for task in play["tasks"]
        for host, result in task["hosts"].items()
    }


def rendered(inventory: Path, host: str) -> dict[str, Any]:
    """RENDERED_VARS of one host (None where undefined), rendered once for the whole inventory."""
    return host_vars(inventory, RENDERED_VARS)[host]


def route(inventory: Path, host: str) -> str:
    """The balancer route of a WAS host: its `cluster_route`, else its inventory name."""
    return str(rendered(inventory, host)["cluster_route"] or host)


def address(inventory: Path, host: str) -> str:
    return str(inventory_data(inventory)["_meta"]["hostvars"][host]["ansible_host"])


def get_host(inventory: Path, name: str) -> testinfra.host.Host:
    """A testinfra host reached the way Ansible reaches it.

    testinfra's ansible:// backend reads connection variables untemplated, so a key path such as
    "/var/lib/lab/{{ lab_name }}/id_ed25519" would break it: render them first, then use ssh://.
    """
    hv = host_vars(inventory, CONNECTION_VARS)[name]
    if (hv.get("ansible_connection") or "ssh") not in ("ssh", "smart"):
        return testinfra.get_host(
            f"ansible://{name}?ansible_inventory={inventory}&force_ansible=True"
        )
    user = hv.get("ansible_user") or "root"
    spec = f"ssh://{user}@{hv['ansible_host']}"
    if hv.get("ansible_port"):
        spec += f":{hv['ansible_port']}"
    kwargs: dict[str, Any] = {"ssh_extra_args": hv.get("ansible_ssh_common_args") or ""}
    if hv.get("ansible_ssh_private_key_file"):
        kwargs["ssh_identity_file"] = hv["ansible_ssh_private_key_file"]
    if user != "root":
        kwargs["sudo"] = True
    return testinfra.get_host(spec, **kwargs)


def run_playbook(
    playbook: str,
    inventory: Path,
    workdir: Path,
    cmdline: str | None = None,
    timeout: int = 1800,
) -> ansible_runner.Runner:
    """Run a playbook of this repository with ansible-runner, quietly; the caller asserts."""
    workdir.mkdir(parents=True, exist_ok=True)
    return ansible_runner.run(
        private_data_dir=str(workdir),
        project_dir=str(REPO),
        playbook=str(REPO / playbook),
        inventory=str(inventory),
        cmdline=cmdline,
        envvars={"ANSIBLE_CONFIG": str(ANSIBLE_CONFIG), "ANSIBLE_NOCOLOR": "1"},
        quiet=True,
        timeout=timeout,
    )


def output(runner: ansible_runner.Runner) -> str:
    return Path(runner.stdout.name).read_text(errors="replace")


def describe(runner: ansible_runner.Runner, tail: int = 6000) -> str:
    """What a failed assertion shows: status, stats, tasks changed or failed, the output's end."""
    return (
        f"status={runner.status} rc={runner.rc} stats={runner.stats}\n"
        f"{notable_tasks(runner)}\n{output(runner)[-tail:]}"
    )


def notable_tasks(runner: ansible_runner.Runner) -> str:
    """One line per task result that changed or failed; the output's tail may not show them."""
    lines = []
    for event in runner.events:
        data = event.get("event_data", {})
        result = data.get("res", {})
        where = f"[{data.get('host')}] {data.get('task')}"
        if event.get("event") == "runner_on_failed":
            lines.append(f"failed: {where}: {result.get('msg', '')}")
        elif event.get("event") == "runner_on_ok" and result.get("changed"):
            lines.append(f"changed: {where}")
    return "\n".join(lines) or "(no task changed or failed)"


def roles_run(runner: ansible_runner.Runner) -> set[str]:
    """The roles with at least one task of their own that ran (ok or changed) on some host. The
    argument check Ansible adds to a role runs under every tag, so it does not count."""
    return {
        event["event_data"].get("role", "")
        for event in runner.events
        if event.get("event") == "runner_on_ok" and not _is_argument_check(event["event_data"])
    } - {""}


def _is_argument_check(data: dict[str, Any]) -> bool:
    action = data.get("resolved_action") or data.get("task_action") or ""
    return action.rsplit(".", 1)[-1] == "validate_argument_spec"


def changed_hosts(runner: ansible_runner.Runner) -> dict[str, int]:
    return {h: n for h, n in (runner.stats or {}).get("changed", {}).items() if n}


def copy_inventory(source: Path, target: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of an inventory with hosts.yml edited; group_vars, host_vars, credentials linked.

    The links keep the copy's secrets the same as the original's: the lab generates credentials
    under <inventory>/credentials/, and a fresh directory would mean new passwords.
    """
    target.mkdir(parents=True)
    hosts = yaml.safe_load((source / "hosts.yml").read_text())
    edit(hosts)
    (target / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    for name in ("group_vars", "host_vars", "credentials"):
        if (source / name).exists():
            (target / name).symlink_to((source / name).resolve(), target_is_directory=True)
    return target


def free_host(inventory: Path, group: str) -> tuple[str, str]:
    """A name and an address for a new host of `group` in a lab inventory (scale-out tests)."""
    return free_hosts(inventory, group, 1)[0]


def free_hosts(inventory: Path, group: str, count: int) -> list[tuple[str, str]]:
    """Names and addresses for `count` new hosts of `group` in a lab inventory.

    Each name is `<group><n>`, the first such names the inventory does not use; each address the
    next free one after the group's highest, inside the inventory's `lab_subnet`.
    """
    hosts = group_hosts(inventory, "all")
    lab_subnet = inventory_data(inventory)["_meta"]["hostvars"][hosts[0]].get("lab_subnet")
    assert lab_subnet, f"{inventory} is not a lab inventory (no lab_subnet): no room to grow"
    subnet = ipaddress.ip_network(str(lab_subnet))
    used = {ipaddress.ip_address(address(inventory, h)) for h in hosts}
    members = group_hosts(inventory, group) or hosts
    candidate = max(ipaddress.ip_address(address(inventory, h)) for h in members)
    names = (f"{group}{n}" for n in range(1, len(hosts) + count + 2) if f"{group}{n}" not in hosts)
    found = []
    for name in itertools.islice(names, count):
        while candidate in used:
            candidate += 1
        assert candidate in subnet, f"no free address after the {group} hosts in {subnet}"
        found.append((name, str(candidate)))
        used.add(candidate)
    return found


def host_fact(host: testinfra.host.Host, name: str) -> dict[str, Any]:
    """The JSON local fact role `name` left on the host: /etc/ansible/facts.d/<name>.fact."""
    path = f"{FACTS_DIR}/{name}.fact"
    result = host.run("cat %s", path)
    where = host.backend.get_hostname()
    assert result.rc == 0, (
        f"{where} has no {path} ({result.stderr.strip()}): the role {name} writes it when it "
        "converges; converge first (ansible-playbook site.yml)"
    )
    try:
        fact = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{where}:{path} is not JSON ({exc}): re-run site.yml") from exc
    assert isinstance(fact, dict), f"{where}:{path} holds {type(fact).__name__}, not an object"
    return fact


# --- Secrets stay off command lines -------------------------------------------------------------
# Every command a test runs is a command line twice over: testinfra starts `ssh … <command>` (the
# ansible backend: `ansible … -a <command>`) on the controller, and the host runs
# `/bin/sh -c <command>`; `ps` shows both to every user. So no command string ever holds a secret.
# A command that needs one reads it on the host, from the file the service itself reads (a WAS's
# environment file, the django_was fact's `env_file`), and names it: the host's shell expands
# "$DJANGO_DB_PASSWORD" into a client's environment (MYSQL_PWD=…, REDISCLI_AUTH=…) or into the
# output of a builtin piped to the client's stdin (printf … | curl -K -); ps shows neither.
# tests/secret_watch.py checks this while the cluster tests run.
#
# ENV_RUN loads a KEY=value file the way the app does (gunicorn.conf.py, app-manage): one variable
# per line, no quoting, # starts a comment line. Not with the shell's `.`: a value holding `$`, a
# quote or `;` would be expanded or run. Its own argv holds code, the file's path and the script.
ENV_RUN = """
import os, sys
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            if sep:
                os.environ[key.strip()] = value
os.execv("/bin/sh", ["sh", "-c", sys.argv[2]])
"""


def env_command(env_file: str, script: str, *args: str) -> str:
    """A command running the sh `script` with the variables of `env_file` in its environment.

    `script` refers to secrets by name only ("$DJANGO_DB_PASSWORD"). Like host.run, each %s in it
    becomes one of `args`, shell-quoted (%% is a literal %, with or without args). Run the result
    as `host.run(command)`, with no further arguments.
    """
    body = script % tuple(shlex.quote(a) for a in args)
    return shlex.join(["python3", "-c", ENV_RUN, env_file, body])


def mariadb_app_command(
    env_file: str, query: str, password: str | None = None, server: str | None = None
) -> str:
    """The mariadb client on a WAS, connecting as the app does: account, password, server and TLS
    from that WAS's environment file (with DJANGO_DB_SSL_CA set, TLS verifying the server against
    that CA). `password` replaces the file's (a wrong one, to be refused); `server` replaces the
    address it connects to (one database server rather than the writer's address)."""
    script = (
        ("DJANGO_DB_PASSWORD=%s; " if password is not None else "")
        + ("DJANGO_DB_HOST=%s; " if server is not None else "")
        + 'set --; if [ -n "$DJANGO_DB_SSL_CA" ]; then'
        ' set -- --ssl --ssl-ca="$DJANGO_DB_SSL_CA" --ssl-verify-server-cert; fi;'
        ' MYSQL_PWD="$DJANGO_DB_PASSWORD" mariadb "$@" --batch --skip-column-names'
        ' --connect-timeout=5 -h "$DJANGO_DB_HOST" -P "$DJANGO_DB_PORT" -u "$DJANGO_DB_USER"'
        ' "$DJANGO_DB_NAME" -e %s'
    )
    args = [a for a in (password, server) if a is not None]
    return env_command(env_file, script, *args, query)


# Prints the password of the WAS's cache URL DJANGO_REDIS_URL (redis://user:password@host:port/db,
# URL-encoded), read from its environment.
REDIS_URL_PASSWORD = (
    "import os, urllib.parse as p; "
    'print(p.unquote(p.urlsplit(os.environ["DJANGO_REDIS_URL"]).password or ""))'
)


def redis_app_command(env_file: str, address: str, port: int, user: str, *command: str) -> str:
    """redis-cli on a WAS as `user` (the app's Redis user), with the password of DJANGO_REDIS_URL
    in that WAS's environment file; it reaches redis-cli as REDISCLI_AUTH."""
    script = (
        'REDISCLI_AUTH="$(python3 -c %s)" redis-cli --no-auth-warning -h %s -p %s --user %s '
        + " ".join(["%s"] * len(command))
    )
    return env_command(env_file, script, REDIS_URL_PASSWORD, address, str(port), user, *command)


def sentinel_command(env_file: str, address: str, port: int, *command: str) -> str:
    """redis-cli to a Redis Sentinel from a WAS, with the WAS's DJANGO_REDIS_SENTINEL_PASSWORD
    (read from its environment file; it reaches redis-cli as REDISCLI_AUTH)."""
    script = (
        'REDISCLI_AUTH="$DJANGO_REDIS_SENTINEL_PASSWORD" redis-cli --no-auth-warning -h %s -p %s '
        + " ".join(["%s"] * len(command))
    )
    return env_command(env_file, script, address, str(port), *command)


def redis_pairs(text: str) -> dict[str, str]:
    """redis-cli's field/value lines (e.g. SENTINEL MASTER) as a dict."""
    lines = text.splitlines()
    return dict(zip(lines[0::2], lines[1::2], strict=False))


# Turns "user:password" on stdin into curl's config line `user = "…"` (\ and " escaped).
CURL_USER_CONFIG = r"""sed 's/[\\"]/\\&/g; s/.*/user = "&"/'"""
CURL = "curl -sS --max-time 20 -w '\\n%%{http_code}' "


def curl_user_config(user: str) -> str:
    """sh printing curl's config line for `user`, a shell word over the environment file's
    variables such as "$DJANGO_S3_ACCESS_KEY:$DJANGO_S3_SECRET_KEY" (printf is a builtin)."""
    return f"printf '%%s\\n' {user} | {CURL_USER_CONFIG}"


def curl(
    host: testinfra.host.Host, *args: str, env_file: str | None = None, user: str | None = None
) -> tuple[int, str]:
    """curl on a host: (status code, body); curl printing the code on its own last line.

    With `user` (see curl_user_config) the credentials come from `env_file` on the host and reach
    curl as a config on its stdin (-K -), never as --user on its command line.
    """
    words = " ".join(["%s"] * len(args))
    if user is None:
        result = host.run(CURL + words, *args)
    else:
        assert env_file, "curl: credentials come from an environment file on the host"
        script = f"{curl_user_config(user)} | {CURL}-K - {words}"
        result = host.run(env_command(env_file, script, *args))
    assert result.rc == 0, result.stderr
    body, _, code = result.stdout.rpartition("\n")
    return int(code), body


def listening_sockets(host: testinfra.host.Host) -> set[tuple[str, int]]:
    """(address, port) of the host's listening TCP sockets, from `ss -Hltn`.

    Addresses lose ss's brackets and %interface suffix; a wildcard reads "0.0.0.0", "::" or "*".
    """
    sockets = set()
    for line in host.check_output("ss -Hltn").splitlines():
        local, _, port = line.split()[3].rpartition(":")
        sockets.add((local.strip("[]").partition("%")[0], int(port)))
    return sockets


def is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # a wildcard ("*")
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (mapped or ip).is_loopback


# Connects from a host with python3 only (every host has it) and reports what happened:
# "refused", "timeout", or "connected: <first bytes the server sent, after `send`>".
PROBE = """
import socket, sys
host, port, send, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), float(sys.argv[4])
try:
    s = socket.create_connection((host, port), timeout=timeout)
except ConnectionRefusedError:
    print("refused"); sys.exit()
except OSError as e:
    print("timeout" if isinstance(e, TimeoutError) else type(e).__name__); sys.exit()
s.settimeout(timeout)
if send:
    s.sendall(send)
try:
    data = s.recv(512)
except OSError:
    data = b""
print("connected: " + data.decode("latin-1"))
"""
# Seconds a probe waits for an answer; a probe expected to fail waits less: the firewalls drop
# (no answer at all), so a closed port costs the whole timeout.
PROBE_TIMEOUT = 5.0
CLOSED_PROBE_TIMEOUT = 2.0
# What a probe of a port that must not be reachable may report: refused (nothing listens, or no
# firewall) or timeout (a firewall dropped the connection).
CLOSED = ("refused", "timeout")


def probe(
    host: testinfra.host.Host,
    address: str,
    port: int,
    send: str = "",
    timeout: float = PROBE_TIMEOUT,
) -> str:
    result = host.run("python3 -c %s %s %s %s %s", PROBE, address, str(port), send, str(timeout))
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def probe_closed(host: testinfra.host.Host, address: str, port: int, send: str = "") -> str:
    """A probe expected not to connect, with the short timeout."""
    return probe(host, address, port, send, timeout=CLOSED_PROBE_TIMEOUT)


@dataclass(frozen=True)
class Tier:
    """One data-tier server as its clients see it.

    `tier["port"]` reads what its role reports (the role's local fact on that host); secrets come
    from the inventory, for the controller's own use only: never in a command string (a command
    reads a secret on the host, see env_command); `firewall` is whether the host's firewall role
    says it filters.
    """

    name: str
    address: str
    fact: dict[str, Any]
    secrets: dict[str, Any]
    firewall: bool

    def __getitem__(self, key: str) -> Any:
        return self.fact[key]


# --- Every secret the tests must keep off command lines (tests/secret_watch.py watches for them) --
CONTRACT_DEFAULTS = REPO / "roles/cluster/defaults/main.yml"
CONTRACT_FILTERS = REPO / "roles/cluster/filter_plugins/cluster.py"
# A lab subnet this small or smaller has the derived database password of each of its addresses
# watched: a scale-out test's new WAS takes an address the inventory does not list.
WATCHED_SUBNET_SIZE = 4096
# Variables of a WAS's environment file that hold a secret (beside the password of any URL).
ENV_SECRET = re.compile(r"PASSWORD|SECRET|_KEY$")


def secret_names(inventory: Path) -> tuple[str, ...]:
    """The inventory's secret variables: the contract's `cluster_secrets` (roles/cluster/defaults,
    or the inventory's own if it sets one), and SECRET_VARS."""
    contract = yaml.safe_load(CONTRACT_DEFAULTS.read_text()) or {}
    names = list(contract.get("cluster_secrets") or {})
    for variables in inventory_data(inventory)["_meta"]["hostvars"].values():
        if isinstance(variables.get("cluster_secrets"), dict):
            names.extend(variables["cluster_secrets"])
    return tuple(dict.fromkeys([*names, *SECRET_VARS]))


def watched_secrets(inventory: Path) -> dict[str, str]:
    """Secret value -> what it is (a name, never the value), for everything the cluster tests
    must keep off command lines: each value of the inventory's secret variables (rendered here on
    the controller), the secrets in each WAS's environment file (those readable now: a lab not
    converged yet has none) and the database password derived for each WAS address."""
    secrets: dict[str, str] = {}

    def add(value: Any, name: str) -> None:
        if value is not None and str(value).strip():
            secrets.setdefault(str(value), name)

    names = secret_names(inventory)
    values = host_vars(inventory, names)
    for host_values in values.values():
        for name in names:
            add(host_values.get(name), name)
            for part, value in _key_file_secrets(host_values.get(name)):
                add(value, f"{name} ({part})")
    for host, variable, value in env_file_secrets(inventory):
        add(value, f"{variable} in the environment file of {host}")
    seeds = {str(v["cluster_db_password"]) for v in values.values() if v.get("cluster_db_password")}
    for where, value in derived_db_passwords(inventory, seeds):
        add(value, f"the database password of {where} (derived from cluster_db_password)")
    return secrets


def _key_file_secrets(value: Any) -> Iterator[tuple[str, str]]:
    """The private parts of a service-account key (JSON text): a command line would more likely
    hold one of them than the whole text. Nothing for any other value."""
    try:
        data = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return
    if not isinstance(data, dict):
        return
    if isinstance(data.get("private_key_id"), str):
        yield "private_key_id", data["private_key_id"]
    for line in str(data.get("private_key") or "").splitlines():
        if not line.startswith("-----"):
            yield "private_key", line


def env_file_secrets(inventory: Path) -> Iterator[tuple[str, str, str]]:
    """(host, variable, value) of the secrets in each WAS's environment file (read through SSH's
    output, never a command line): variables named like secrets, the password of any URL. A WAS
    whose file cannot be read (not converged yet, unreachable) is skipped."""
    for name in group_hosts(inventory, "was"):
        try:
            host = get_host(inventory, name)
            text = host.check_output("cat %s", host_fact(host, "django_was")["env_file"])
        except Exception:  # best effort: the derived passwords cover a lab not converged yet
            continue
        for variable, value in read_env(text.splitlines()).items():
            if ENV_SECRET.search(variable):
                yield name, variable, value
            if "://" in value:
                password = urllib.parse.urlsplit(value).password
                if password:
                    yield name, f"{variable} (password)", urllib.parse.unquote(password)
                    yield name, f"{variable} (password)", password


def read_env(lines: Iterable[str]) -> dict[str, str]:
    """KEY=value lines as the app reads its environment file (and ENV_RUN on the hosts)."""
    env = {}
    for raw in lines:
        line = raw.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            if sep:
                env[key.strip()] = value
    return env


def derived_db_passwords(inventory: Path, seeds: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(address, password) of the database accounts the contract derives from each seed, for each
    inventory address and each address of a small lab subnet (the contract's filter computes
    them; nothing when this tree's contract derives none)."""
    spec = importlib.util.spec_from_file_location("cluster_contract_filters", CONTRACT_FILTERS)
    if spec is None or spec.loader is None:
        return
    filters = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(filters)
    accounts = getattr(filters, "cluster_db_accounts", None)
    if accounts is None:
        return
    hostvars = inventory_data(inventory)["_meta"]["hostvars"]
    addresses = {str(v["ansible_host"]).strip() for v in hostvars.values() if "ansible_host" in v}
    for subnet in {str(v["lab_subnet"]) for v in hostvars.values() if v.get("lab_subnet")}:
        network = ipaddress.ip_network(subnet, strict=False)
        if network.num_addresses <= WATCHED_SUBNET_SIZE:
            addresses.update(str(a) for a in network.hosts())
    for seed in seeds:
        for account in accounts(sorted(addresses), seed):
            yield account["host"], account["password"]


# --- Pages of the app ---------------------------------------------------------------------------


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token in the form"
    return match.group(1)


def logged_in_as(html: str) -> str:
    """The user a page says is logged in (the header's `who`), or ""."""
    match = re.search(r'<span class="who">([^<]+)</span>', html)
    return match.group(1) if match else ""


def post_form(
    session: requests.Session,
    url: str,
    data: dict[str, str],
    files: dict[str, tuple[str, bytes, str]] | None = None,
) -> requests.Response:
    """GET a form for its CSRF token, then POST it, like a browser."""
    page = session.get(url, timeout=10)
    page.raise_for_status()
    payload = {"csrfmiddlewaretoken": csrf_token(page.text), **data}
    return session.post(url, data=payload, files=files, timeout=30, headers={"Referer": url})


def sign_up(cluster: Any, session: requests.Session, username: str) -> None:
    """Sign `username` up through `cluster.url` (the balancers); the session is logged in."""
    password = "Correct-Horse-Battery-42"
    response = post_form(
        session,
        f"{cluster.url}/accounts/signup/",
        {"username": username, "password1": password, "password2": password},
    )
    assert response.status_code == 200 and logged_in_as(response.text) == username, response.text[
        :2000
    ]
