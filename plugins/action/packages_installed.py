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

Deferred, for a play that installs every role's packages at once (playbooks/packages.yml): with
the variable `packages_installed_defer` true, a task installs nothing. It adds its arguments to
the host's `packages_installed_deferred` fact; the play's last task installs them all:

    - name: Start with no packages deferred
      packages_installed:
        deferred: forget
    ...  (tasks deferred: packages_installed with packages_installed_defer true)
    - name: Install what the roles want, one apt run per set of options
      packages_installed:
        deferred: install

`deferred: install` merges the deferred tasks into one apt run per set of options
(install_recommends, ...): the names together, update_cache if any task asked, the shortest
cache_valid_time. Each apt run costs a host about 1.3 core-seconds before it installs anything
(apt's cache opened twice, dpkg's triggers run again), so a host whose roles want packages from
five tasks saves about four runs. The fact cache keeps facts across runs, so the play first
forgets what a run stopped before its install left there.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from ansible.errors import AnsibleActionFail  # type: ignore[import-untyped]
from ansible.module_utils.parsing.convert_bool import boolean  # type: ignore[import-untyped]
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


DEFER_VAR = "packages_installed_defer"
DEFERRED_FACT = "packages_installed_deferred"
# Options that merge across tasks instead of keeping them apart.
MERGED_OPTIONS = ("name", "state", "update_cache", "cache_valid_time")


def merged_runs(deferred: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The deferred tasks' arguments as one apt run per set of other options, in first-seen
    order: their names each once, update_cache if any asked, the shortest cache_valid_time."""
    runs: dict[str, dict[str, Any]] = {}
    for args in deferred:
        options = {k: v for k, v in args.items() if k not in MERGED_OPTIONS}
        run = runs.setdefault(json.dumps(options, sort_keys=True), {**options, "name": []})
        run["name"] = wanted_names(run["name"] + wanted_names(args.get("name")))
        if args.get("update_cache"):
            run["update_cache"] = True
        if "cache_valid_time" in args:
            given = int(args["cache_valid_time"])
            run["cache_valid_time"] = min(given, run.get("cache_valid_time", given))
    return list(runs.values())


class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        if "deferred" in args:
            return self.deferred(result, args, task_vars)
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
        if boolean(self._templar.template(task_vars.get(DEFER_VAR, False)), strict=False):
            deferred = list(task_vars.get("ansible_facts", {}).get(DEFERRED_FACT) or [])
            result.update(
                changed=False,
                msg=f"deferred to the play's install (deferred: install): {', '.join(wanted)}",
                ansible_facts={DEFERRED_FACT: deferred + [args]},
            )
            return result
        result.update(self.install(args, wanted, task_vars))
        return result

    def install(
        self, args: dict[str, Any], wanted: list[str], task_vars: dict[str, Any]
    ) -> dict[str, Any]:
        """dpkg first; apt with args unless dpkg lists every wanted package as installed."""
        # A read, run in check mode too (the command module would skip itself there).
        query = self._low_level_execute_command(shlex.join(DPKG_QUERY + wanted))
        if all_installed(query["rc"], query.get("stdout", ""), wanted):
            return {"changed": False, "msg": f"installed already (dpkg): {', '.join(wanted)}"}
        return dict(
            self._execute_module(
                module_name="ansible.legacy.apt", module_args=args, task_vars=task_vars
            )
        )

    def deferred(
        self, result: dict[str, Any], args: dict[str, Any], task_vars: dict[str, Any]
    ) -> dict[str, Any]:
        """`deferred: forget` empties the host's list; `deferred: install` installs what it
        holds, one apt run per set of options, then empties it."""
        what = args.pop("deferred")
        if what not in ("forget", "install") or args:
            raise AnsibleActionFail(
                f"packages_installed with `deferred` takes `deferred: forget` or `deferred: "
                f"install` and nothing else (got deferred: {what!r}"
                + (f", and {', '.join(sorted(args))}" if args else "")
                + "): the deferred tasks carry the packages and options"
            )
        deferred = task_vars.get("ansible_facts", {}).get(DEFERRED_FACT) or []
        if what == "forget":
            result.update(
                changed=False,
                msg=f"forgot {len(deferred)} deferred task(s)",
                ansible_facts={DEFERRED_FACT: []},
            )
            return result
        runs = []
        for run in merged_runs(deferred):
            outcome = self.install(run, run["name"], task_vars)
            runs.append({"name": run["name"], **outcome})
            if outcome.get("failed"):
                result.update(
                    failed=True,
                    runs=runs,
                    msg=f"installing {', '.join(run['name'])} failed: {outcome.get('msg', '')}",
                )
                return result
        result.update(
            changed=any(run.get("changed") for run in runs),
            runs=runs,
            msg=f"{len(deferred)} deferred task(s) installed in {len(runs)} apt run(s)",
            ansible_facts={DEFERRED_FACT: []},
        )
        return result
