"""The `packages_installed` action (plugins/action/): dpkg answers first, apt only when needed.

What it is for: a run where every package is installed must not run the apt module at all (it
opens apt's whole cache, seconds a task), and a run where one is missing must run it exactly as
ansible.builtin.apt would. The plays run on this machine (connection local), with the shipped
configuration and the system's Python (the apt module needs python3-apt).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.unit.repo_module import load

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
action = load("plugins/action/packages_installed.py")


@pytest.mark.parametrize(
    ("rc", "stdout", "wanted", "expected"),
    [
        (0, "a:amd64\tinstalled\nb:all\tinstalled\n", ["a", "b"], True),
        # Removed with its configuration kept: dpkg knows it, apt must install it again.
        (0, "a:amd64\tinstalled\nb:all\tconfig-files\n", ["a", "b"], False),
        (0, "a:amd64\thalf-configured\n", ["a"], False),
        # dpkg knows one of them not at all (rc 1, no line for it).
        (1, "a:amd64\tinstalled\n", ["a", "b"], False),
        (0, "a:amd64\tinstalled\n", ["a", "b"], False),
        # Two architectures of one package: one line each; a name with one needs that one.
        (0, "a:amd64\tinstalled\na:i386\tinstalled\n", ["a"], True),
        (0, "a:amd64\tinstalled\n", ["a:amd64"], True),
        (0, "a:amd64\tinstalled\na:i386\tconfig-files\n", ["a:i386"], False),
    ],
)
def test_only_every_package_installed_skips_apt(
    rc: int, stdout: str, wanted: list[str], expected: bool
) -> None:
    assert action.all_installed(rc, stdout, wanted) is expected


def test_names_come_as_a_list_or_a_comma_separated_string_each_once() -> None:
    assert action.wanted_names(["a", " b ", "a"]) == ["a", "b"]
    assert action.wanted_names("a, b,") == ["a", "b"]
    assert action.wanted_names(None) == []


def deferred(*args_of_each_task: dict[str, object]) -> list[dict[str, object]]:
    """The deferred list as the action keeps it: each task's name and arguments."""
    return [{"task": f"task {n}", "args": args} for n, args in enumerate(args_of_each_task)]


def test_deferred_tasks_merge_into_one_apt_run_per_set_of_options() -> None:
    runs = action.merged_runs(
        deferred(
            {"name": ["nftables"], "state": "present", "cache_valid_time": 3600},
            {"name": "prometheus-node-exporter", "install_recommends": False},
            {"name": ["mariadb-server", "nftables"], "update_cache": True, "cache_valid_time": 600},
            {"name": ["prometheus"], "install_recommends": False, "cache_valid_time": 3600},
        )
    )
    assert runs == [
        {
            "args": {
                "name": ["nftables", "mariadb-server"],
                "update_cache": True,
                "cache_valid_time": 600,
            },
            "tasks": ["task 0", "task 2"],
        },
        {
            "args": {
                "name": ["prometheus-node-exporter", "prometheus"],
                "install_recommends": False,
                "update_cache": True,
                "cache_valid_time": 3600,
            },
            "tasks": ["task 1", "task 3"],
        },
    ]
    assert action.merged_runs([]) == []


def test_update_cache_alone_refreshes_every_time_and_wins_the_merge() -> None:
    """apt refreshes its lists on every run for update_cache without cache_valid_time (0)."""
    runs = action.merged_runs(
        deferred({"name": "a", "cache_valid_time": 3600}, {"name": "b", "update_cache": True})
    )
    assert runs[0]["args"] == {"name": ["a", "b"], "update_cache": True, "cache_valid_time": 0}
    # A task that never refreshes leaves the run's refresh to the others.
    runs = action.merged_runs(deferred({"name": "a"}, {"name": "b"}))
    assert runs[0]["args"] == {"name": ["a", "b"]}


def run_play(tmp_path: Path, tasks: str, keep: str, play_vars: str = "{}") -> dict[str, object]:
    """The tasks in check mode on this machine, then `keep` (a Jinja expression) as JSON."""
    play = tmp_path / "play.yml"
    out = tmp_path / "result.json"
    play.write_text(
        f"""\
- hosts: localhost
  connection: local
  gather_facts: false
  vars: {play_vars}
  tasks:
{tasks}
    - name: Keep the outcome
      ansible.builtin.copy:
        content: "{{{{ {keep} | to_json }}}}"
        dest: {out}
      check_mode: false
"""
    )
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "--check", str(play)]
        + ["-e", "ansible_python_interpreter=/usr/bin/python3"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            # The test's own fact cache: what one play leaves there, the next play of the test
            # finds, and nothing of the repository's cache comes in.
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts"),
        },
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(json.loads(out.read_text()))


def run_task(tmp_path: Path, args: dict[str, object]) -> dict[str, object]:
    """One packages_installed task; its registered result."""
    task = f"""\
    - name: The task under test
      packages_installed: {json.dumps(args)}
      register: result
      ignore_errors: true
"""
    return run_play(tmp_path, task, "result")


def run_deferred(
    tmp_path: Path, tasks: list[dict[str, object]], forget: bool = True, install: bool = True
) -> dict[str, object]:
    """Tasks deferred as playbooks/packages.yml defers them, after its `deferred: forget` task
    and before its `deferred: install` task (each unless told not to); that task's result, and
    the fact after it."""
    forget_task = "    - name: Forget\n      packages_installed: {deferred: forget}\n"
    install_task = (
        "    - name: Install\n      packages_installed: {deferred: install}\n"
        "      register: result\n"
    )
    play_tasks = "".join(
        [forget_task if forget else ""]
        + [
            f"    - name: Deferred task {n}\n      packages_installed: {json.dumps(args)}\n"
            for n, args in enumerate(tasks)
        ]
        + [install_task if install else ""]
    )
    keep = "{'result': result | default({}), 'after': ansible_facts.packages_installed_deferred}"
    return run_play(tmp_path, play_tasks, keep, "{packages_installed_defer: true}")


def test_deferred_tasks_install_nothing_until_the_play_installs_them_together(
    tmp_path: Path,
) -> None:
    """Three tasks, two sets of options: two runs, each answered by dpkg, and the fact emptied."""
    outcome = run_deferred(
        tmp_path,
        [
            {"name": ["dpkg"], "cache_valid_time": 3600},
            {"name": ["coreutils"], "install_recommends": False},
            {"name": ["dpkg", "bash"], "update_cache": True},
        ],
    )
    result = outcome["result"]
    assert isinstance(result, dict)
    assert result["changed"] is False and not result.get("failed")
    assert [run["msg"] for run in result["runs"]] == [
        "installed already (dpkg): dpkg, bash",
        "installed already (dpkg): coreutils",
    ]
    assert [run["tasks"] for run in result["runs"]] == [
        ["Deferred task 0", "Deferred task 2"],
        ["Deferred task 1"],
    ]
    assert result["msg"] == "3 deferred task(s) installed in 2 apt run(s)"
    assert outcome["after"] == []


def test_what_a_stopped_run_left_deferred_is_forgotten_not_installed(tmp_path: Path) -> None:
    """A run that stopped before its install leaves its list in the fact cache. The next run
    forgets it; without the forget task, its install would fail on the package left behind,
    and say which task deferred it."""
    left = run_deferred(tmp_path, [{"name": ["no-such-package-anywhere"]}], install=False)
    assert left["after"] == [
        {"task": "Deferred task 0", "args": {"name": ["no-such-package-anywhere"]}}
    ]
    again = run_deferred(tmp_path, [{"name": ["dpkg"]}])["result"]
    assert isinstance(again, dict)
    assert again["msg"] == "1 deferred task(s) installed in 1 apt run(s)"

    run_deferred(tmp_path, [{"name": ["no-such-package-anywhere"]}], install=False)
    with pytest.raises(AssertionError) as failed:
        run_deferred(tmp_path, [{"name": ["dpkg"]}], forget=False)
    assert (
        "installing no-such-package-anywhere, dpkg (deferred by Deferred task 0; Deferred "
        "task 0) failed: No package matching 'no-such-package-anywhere'" in str(failed.value)
    )


def test_a_task_run_once_is_never_deferred(tmp_path: Path) -> None:
    """Its packages are for one host, the fact would go to every host of the play (delegate_to
    is kept out the same way)."""
    outcome = run_deferred(tmp_path, [{"name": ["dpkg"]}], install=False)  # the control: deferred
    assert outcome["after"] != []
    task = """\
    - name: Once for the play
      packages_installed: {name: [dpkg]}
      run_once: true
      register: result
"""
    once = run_play(tmp_path, task, "result", "{packages_installed_defer: true}")
    assert once["msg"] == "installed already (dpkg): dpkg"


def test_a_task_with_an_environment_is_never_deferred(tmp_path: Path) -> None:
    """The merged run would not have its environment (an apt proxy, for instance)."""
    task = """\
    - name: With an apt proxy of its own
      packages_installed: {name: [dpkg]}
      environment: {http_proxy: "http://127.0.0.1:9"}
      register: result
"""
    proxied = run_play(tmp_path, task, "result", "{packages_installed_defer: true}")
    assert proxied["msg"] == "installed already (dpkg): dpkg"


def test_deferred_takes_forget_or_install_and_nothing_else(tmp_path: Path) -> None:
    result = run_task(tmp_path, {"deferred": "install", "name": "dpkg"})
    assert result["failed"] is True
    assert "`deferred: forget` or `deferred: install` and nothing else" in str(result["msg"])
    assert "and name" in str(result["msg"])


def test_installed_packages_are_answered_by_dpkg_alone(tmp_path: Path) -> None:
    result = run_task(tmp_path, {"name": ["dpkg", "coreutils", "dpkg"], "cache_valid_time": 3600})
    assert result["changed"] is False and not result.get("failed")
    assert result["msg"] == "installed already (dpkg): dpkg, coreutils"


def test_no_packages_is_nothing_to_do(tmp_path: Path) -> None:
    result = run_task(tmp_path, {"name": []})
    assert result["changed"] is False and not result.get("failed")


def test_a_package_dpkg_does_not_know_goes_to_apt(tmp_path: Path) -> None:
    """apt's own answer comes back: here, that the archive has no such package."""
    result = run_task(tmp_path, {"name": ["dpkg", "no-such-package-anywhere"]})
    assert result["failed"] is True
    assert "No package matching 'no-such-package-anywhere'" in str(result["msg"])


def test_no_name_is_refused_with_what_to_use_instead(tmp_path: Path) -> None:
    result = run_task(tmp_path, {"update_cache": True})
    assert result["failed"] is True
    assert "needs `name`" in str(result["msg"])


def test_other_states_are_refused_with_what_to_use_instead(tmp_path: Path) -> None:
    result = run_task(tmp_path, {"name": "dpkg", "state": "absent"})
    assert result["failed"] is True
    assert "use ansible.builtin.apt" in str(result["msg"])


# Roles whose packages playbooks/packages.yml leaves to their own play, and why.
LEFT_TO_THEIR_PLAY = {
    "autoscaler": "three small packages on one host, and only with a pool of standby hosts",
}


def included_roles(play_path: Path) -> set[str]:
    """Roles whose tasks_from the play includes: a literal name, or the names its loop lists."""
    roles = {p.name for p in (REPO / "roles").iterdir() if p.is_dir()}
    found: set[str] = set()
    for play in yaml.safe_load(play_path.read_text()):
        for task in play.get("tasks", []):
            include = task.get("ansible.builtin.include_role")
            if not include:
                continue
            named = str(include["name"])
            words = re.findall(r"\w+", str(task.get("loop", ""))) if "{{" in named else [named]
            found |= roles & set(words)
    return found


def test_every_role_with_packages_is_in_the_play_that_installs_them_at_once() -> None:
    """A role whose packages.yml the play forgot installs them in its own play, alone: correct,
    but the fresh converge loses what the play is for."""
    with_packages = {p.parent.parent.name for p in REPO.glob("roles/*/tasks/packages.yml")}
    assert len(with_packages) > 10
    included = included_roles(REPO / "playbooks/packages.yml")
    assert sorted(with_packages - included - set(LEFT_TO_THEIR_PLAY)) == []
    assert sorted(included - with_packages) == []


def test_roles_install_packages_through_dpkg_first() -> None:
    """ansible.builtin.apt with state present costs every no-op run seconds a task; roles use
    packages_installed (apt stays for removals)."""
    offenders = []
    for path in sorted(REPO.glob("roles/*/tasks/*.yml")):
        text = path.read_text()
        for block in text.split("\n- name: "):
            if re.search(r"(?m)^\s+(ansible\.builtin\.)?apt:", block) and not re.search(
                r"(?m)^\s+state: absent", block
            ):
                offenders.append(f"{path.relative_to(REPO)}: {block.splitlines()[0]}")
    assert offenders == []
