"""The shipped ansible.cfg runs plays through Mitogen (plugins/strategy/mitogen_linear.py).

What Mitogen changes, and what would go if it were dropped: one Python per host serves every task
of a run. So the parent of a command's shell is the same process for two tasks in a row, where the
stock linear strategy starts a new one for each task. These run a two-task play on this machine
(connection local), with the shipped configuration.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

PLAY = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Name the process that runs the first task
      ansible.builtin.command: sh -c 'echo $PPID'
      register: first
      changed_when: false
    - name: Name the process that runs the second task
      ansible.builtin.command: sh -c 'echo $PPID'
      register: second
      changed_when: false
    - name: Say both
      ansible.builtin.debug:
        msg: "parents {{ first.stdout }} {{ second.stdout }}"
"""


def run_play(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(play)]
        + ["-e", "ansible_python_interpreter={{ ansible_playbook_python }}"],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), **env},
        check=False,
        timeout=120,
    )


def parents(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if "parents " in ln)
    return line.split("parents ", 1)[1].strip().strip("'\"").split()


def test_the_shipped_configuration_serves_every_task_from_one_python(tmp_path: Path) -> None:
    first, second = parents(run_play(tmp_path))
    assert first == second


def test_the_stock_strategy_starts_a_python_per_task(tmp_path: Path) -> None:
    """The comparison that makes the test above mean something."""
    first, second = parents(run_play(tmp_path, ANSIBLE_STRATEGY="linear"))
    assert first != second


def test_without_mitogen_the_run_stops_saying_how_to_fix_it(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked" / "ansible_mitogen"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('mitogen withheld by the test')\n")
    proc = run_play(tmp_path, PYTHONPATH=str(blocked.parent))
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "mitogen withheld by the test" in said
    assert "make setup" in said and "ANSIBLE_STRATEGY=linear" in said
