"""`lab`: create, inspect and tear down a lab of Debian hosts from an Ansible inventory."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lab import commands
from lab.errors import LabError
from lab.paths import LabPaths
from lab.spec import read_inventory, spec_from_inventory
from lab.system import require_root, require_tools

DEFAULT_INVENTORY = "inventory/lab"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="lab", description=__doc__)
    top.add_argument(
        "-i",
        "--inventory",
        default=os.environ.get("LAB_INVENTORY", DEFAULT_INVENTORY),
        help="Ansible inventory the lab is built from (default: %(default)s)",
    )
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="create and boot every host of the inventory")
    sub.add_parser("down", help="power off and remove every host, leaving nothing behind")
    sub.add_parser("prune", help="remove hosts that are no longer in the inventory")
    sub.add_parser("status", help="table of host, address and state")
    sub.add_parser("url", help="the balancer's URL on this machine (its published HTTP port)")
    for name, text in (
        ("start", "boot a host again with its disk as it was"),
        ("stop", "power a host off cleanly"),
        ("kill", "crash a host: kill all its processes at once"),
    ):
        sub.add_parser(name, help=text).add_argument("host")
    ssh = sub.add_parser("ssh", help="open a shell on a host, or run a command there")
    ssh.add_argument("host")
    ssh.add_argument("cmd", nargs=argparse.REMAINDER)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        require_root()
        require_tools()
        spec = spec_from_inventory(read_inventory(Path(args.inventory)))
        paths = LabPaths(spec.name)
        if args.command == "ssh":
            argv_ssh = commands.ssh_argv(paths, spec, args.host, args.cmd)
            os.execvp(argv_ssh[0], argv_ssh)
        action = getattr(commands, args.command)
        if args.command in ("start", "stop", "kill"):
            action(paths, spec, args.host)
        elif args.command == "up":
            # Where this inventory's generated secrets live; a copy of the inventory that links
            # them (tests do) resolves to the same place, so it is the same lab.
            action(paths, spec, (Path(args.inventory) / "credentials").resolve())
        else:
            action(paths, spec)
    except LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
