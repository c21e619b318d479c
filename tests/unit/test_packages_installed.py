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


def run_task(tmp_path: Path, args: dict[str, object]) -> dict[str, object]:
    """One packages_installed task in check mode on this machine; its registered result."""
    play = tmp_path / "play.yml"
    out = tmp_path / "result.json"
    play.write_text(
        f"""\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: The task under test
      packages_installed: {json.dumps(args)}
      register: result
      ignore_errors: true
    - name: Keep its result
      ansible.builtin.copy:
        content: "{{{{ result | to_json }}}}"
        dest: {out}
      check_mode: false
"""
    )
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "--check", str(play)]
        + ["-e", "ansible_python_interpreter=/usr/bin/python3"],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(json.loads(out.read_text()))


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
    "django_was": "including the role runs its dependency, the whole firewall role",
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
