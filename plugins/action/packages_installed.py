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
the variable `packages_installed_defer` true, a task installs nothing. It adds its name and
arguments to the host's `packages_installed_deferred` fact, and a later task installs them all:

    - name: Ensure no packages are deferred yet
      packages_installed:
        deferred: forget
    ...  (the roles' tasks, deferred: packages_installed_defer is true)
    - name: Ensure every deferred package is installed
      packages_installed:
        deferred: install

`deferred: install` merges the deferred tasks into one apt run per set of options
(install_recommends, ...), in the order the tasks came: the names together, update_cache if any
task asked, the shortest cache_valid_time (0, refresh always, for a task with update_cache and no
cache_valid_time). Each apt run costs a host about 1.3 core-seconds before it installs anything
(apt's cache opened twice, dpkg's triggers run again), so a host whose roles want packages from
five tasks saves about four runs. A package that two runs would both pull in comes with the
first run's options. apt's diff and warnings are the task's; a failed run names the tasks whose
packages it held. The fact cache keeps facts across runs, so the play first forgets what a run
stopped before its install left there.

A task that runs elsewhere or once for many hosts (delegate_to, run_once) is never deferred: its
packages belong to another host than the fact would. Nor is a task with an `environment` (a
proxy for apt, say): the merged run would not have it. Other keywords of a deferred task, such as
`become`, are not carried over either: the install task's own apply, so in a play that defers,
give them to the play, not to one task.
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


def deferred_so_far(task_vars: dict[str, Any]) -> list[dict[str, Any]]:
    """The host's deferred tasks, as its facts hold them now."""
    return list(task_vars.get("ansible_facts", {}).get(DEFERRED_FACT) or [])


def refresh_age(args: dict[str, Any]) -> int | None:
    """How old apt's lists may be before this task refreshes them; None if it never does (apt:
    cache_valid_time implies update_cache, and update_cache alone refreshes every time)."""
    if "cache_valid_time" in args:
        return int(args["cache_valid_time"])
    return 0 if args.get("update_cache") else None


def merged_runs(deferred: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The deferred tasks ({"task": its name, "args": its arguments}) as one apt run per set of
    other options, in first-seen order: their names each once, the lists refreshed at the
    shortest age any asked for, and the tasks that wanted the run."""
    runs: dict[str, dict[str, Any]] = {}
    for entry in deferred:
        args = entry["args"]
        options = {k: v for k, v in args.items() if k not in MERGED_OPTIONS}
        key = json.dumps(options, sort_keys=True)
        run = runs.setdefault(key, {"args": {**options, "name": []}, "tasks": []})
        run["args"]["name"] = wanted_names(run["args"]["name"] + wanted_names(args.get("name")))
        run["tasks"].append(entry["task"])
        age = refresh_age(args)
        if age is not None:
            known = run["args"].get("cache_valid_time", age)
            run["args"].update(update_cache=True, cache_valid_time=min(age, known))
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
        if self.defers(task_vars):
            held = deferred_so_far(task_vars)
            entry = {"task": self._task.get_name(), "args": args}
            result.update(
                changed=False,
                msg=f"deferred to the play's install (deferred: install): {', '.join(wanted)}",
                ansible_facts={DEFERRED_FACT: held + [entry]},
            )
            return result
        result.update(self.install(args, wanted, task_vars))
        return result

    def defers(self, task_vars: dict[str, Any]) -> bool:
        """Whether this task only adds itself to the host's deferred list."""
        # environment is a list of the task's and its blocks' dicts ([{}] when none is set).
        if self._task.delegate_to or self._task.run_once or any(self._task.environment or []):
            return False
        return bool(boolean(self._templar.template(task_vars.get(DEFER_VAR, False)), strict=False))

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
        held = deferred_so_far(task_vars)
        if what == "forget":
            result.update(
                changed=False,
                msg=f"forgot {len(held)} deferred task(s)",
                ansible_facts={DEFERRED_FACT: []},
            )
            return result
        runs = []
        for run in merged_runs(held):
            outcome = self.install(run["args"], run["args"]["name"], task_vars)
            runs.append({"name": run["args"]["name"], "tasks": run["tasks"], **outcome})
            # apt's diff and warnings, as a single apt task would show them.
            if outcome.get("diff"):
                result.setdefault("diff", []).append(outcome["diff"])
            if outcome.get("warnings"):
                result.setdefault("warnings", []).extend(outcome["warnings"])
            if outcome.get("failed"):
                result.update(
                    failed=True,
                    runs=runs,
                    msg=(
                        f"installing {', '.join(run['args']['name'])} (deferred by "
                        f"{'; '.join(run['tasks'])}) failed: {outcome.get('msg', '')}"
                    ),
                )
                return result
        result.update(
            changed=any(run.get("changed") for run in runs),
            runs=runs,
            msg=f"{len(held)} deferred task(s) installed in {len(runs)} apt run(s)",
            ansible_facts={DEFERRED_FACT: []},
        )
        return result
