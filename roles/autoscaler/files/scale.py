#!/usr/bin/env python3
"""scale: the autoscaler's step. Runs the installer's site.yml, through ansible-runner, with the
pool hosts that are to serve.

    scale.py --installer DIR --inventory DIR --state FILE --key FILE --runs DIR
             [--vault-password-file FILE] SERVING

SERVING is the pool hosts that serve after the step, comma-separated (may be empty). A pool host
that serves now (the state file) and is not in SERVING leaves: the run puts it in `retired`, so the
balancers drop it first and it stops last. The exit status is the run's; the output ends with its
recap, which the autoscaler mails. The state file is the autoscaler's to write, after a success.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import ansible_runner  # type: ignore[import-untyped]


def serving_now(state_file: Path) -> list[str]:
    if not state_file.exists():
        return []
    return list(json.loads(state_file.read_text()).get("serving", []))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--installer", type=Path, required=True)
    parser.add_argument("--inventory", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--vault-password-file", type=Path)
    parser.add_argument("serving")
    args = parser.parse_args()
    serving = [host for host in args.serving.split(",") if host]
    leaving = [host for host in serving_now(args.state) if host not in serving]
    print(f"serving after this step: {serving or 'no pool host'}; leaving: {leaving or 'none'}")
    # ansible-runner starts ansible-playbook from PATH: this virtualenv's.
    os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    cmdline = (
        f"--vault-password-file {args.vault_password_file}" if args.vault_password_file else None
    )
    args.runs.mkdir(parents=True, exist_ok=True)
    runner = ansible_runner.run(
        private_data_dir=str(args.runs),
        project_dir=str(args.installer),
        playbook="site.yml",
        inventory=str(args.inventory),
        extravars={
            "autoscaler_serving": serving,
            "autoscaler_leaving": leaving,
            "ansible_ssh_private_key_file": str(args.key),
        },
        envvars={
            "ANSIBLE_CONFIG": str(args.installer / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
        },
        cmdline=cmdline,
        rotate_artifacts=20,
        quiet=True,
    )
    output = Path(runner.stdout.name).read_text(errors="replace")
    print(output[-6000:])
    print(f"site.yml: {runner.status} (rc {runner.rc}), artifacts in {runner.config.artifact_dir}")
    return 0 if runner.status == "successful" else 1


if __name__ == "__main__":
    raise SystemExit(main())
