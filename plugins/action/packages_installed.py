"""Action `packages_installed`: Debian packages present, asking dpkg before apt.

    - name: Ensure MariaDB is installed
      packages_installed:
        name: [mariadb-server, python3-pymysql]
        cache_valid_time: 3600

Takes ansible.builtin.apt's arguments, for packages wanted present. dpkg's own database answers
first (`dpkg-query --show`, a few milliseconds). When it lists every package as installed, nothing
else runs: the apt module would open apt's whole cache to say the same, 0.4 to 6 seconds a task on
these hosts, and refresh the package lists once they are older than cache_valid_time
(docs/benchmarks.md). Otherwise, a package dpkg does not know or holds only half (removed, its
configuration kept), the apt module runs with the arguments as given: its result, its check mode
and its diff are this task's.
"""

from __future__ import annotations

import shlex
from typing import Any

from ansible.errors import AnsibleActionFail  # type: ignore[import-untyped]
from ansible.plugins.action import ActionBase  # type: ignore[import-untyped]

DPKG_QUERY = [
    "dpkg-query",
    "--show",
    "--showformat=${Package}:${Architecture}\\t${db:Status-Status}\\n",
]


def wanted_names(name: Any) -> list[str]:
    """The task's `name` as a list of packages (apt takes a list or a comma-separated string),
    each once."""
    items = name if isinstance(name, list) else str(name or "").split(",")
    return list(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))


def all_installed(rc: int, stdout: str, wanted: list[str]) -> bool:
    """Whether dpkg's answer lists each wanted package as installed.

    One "name:architecture<TAB>status" line per package dpkg knows (one per architecture); rc 1
    when it knows some package not at all. Any status but installed (config-files,
    half-installed, ...) means apt has work to do. A name with an architecture (foo:i386) needs
    that one. A name dpkg does not take as a package (a version pin foo=1.2, a release
    foo/trixie, a virtual package) is never answered here: apt decides those, every run.
    """
    if rc != 0:
        return False
    installed = set()
    for line in stdout.splitlines():
        package, _, status = line.partition("\t")
        if status == "installed":
            installed.update({package, package.partition(":")[0]})
    return all(name in installed for name in wanted)


class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        args = dict(self._task.args)
        if args.get("state", "present") != "present":
            raise AnsibleActionFail(
                f"packages_installed installs packages only (state: present), not state "
                f"{args['state']!r}: use ansible.builtin.apt for that"
            )
        if "name" not in args:
            raise AnsibleActionFail(
                "packages_installed needs `name`, the packages to install (for deb, upgrade or "
                "update_cache alone, use ansible.builtin.apt)"
            )
        wanted = wanted_names(args["name"])
        if not wanted:
            result.update(changed=False, msg="no packages to install")
            return result
        # A read, run in check mode too (the command module would skip itself there).
        query = self._low_level_execute_command(shlex.join(DPKG_QUERY + wanted))
        if all_installed(query["rc"], query.get("stdout", ""), wanted):
            result.update(changed=False, msg=f"installed already (dpkg): {', '.join(wanted)}")
            return result
        result.update(
            self._execute_module(
                module_name="ansible.legacy.apt", module_args=args, task_vars=task_vars
            )
        )
        return result
