"""The linear strategy run through Mitogen (ansible.cfg: strategy = mitogen_linear).

Mitogen keeps one Python interpreter per host for the whole run and sends each module once, where
plain Ansible starts a new interpreter and uploads the module for every task on every host. A
no-op converge is thousands of such task calls, so this is where its time went (docs/benchmarks.md).

The strategy itself comes from the `mitogen` package pinned in requirements.txt (`make setup`).
This module only finds it, so that ansible.cfg needs no path into a virtualenv.
To run without Mitogen: ANSIBLE_STRATEGY=linear ansible-playbook site.yml
"""

from ansible.errors import AnsibleError  # type: ignore[import-untyped]

try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import (  # type: ignore[import-untyped]
        StrategyModule,
    )
except ImportError as exc:
    raise AnsibleError(
        f"the mitogen_linear strategy (ansible.cfg) needs the mitogen package, which this Python "
        f"cannot import ({exc}). Install it with `make setup` (requirements.txt pins it), or run "
        f"without it: ANSIBLE_STRATEGY=linear ansible-playbook ..."
    ) from exc

__all__ = ["StrategyModule"]
