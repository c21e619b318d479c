"""The free strategy run through Mitogen: each host goes through its tasks without waiting for the
others. Only playbooks/packages.yml uses it (every host installs its own packages at once); all
else runs linear (ansible.cfg). Like mitogen_linear.py, this only finds the pinned package.
"""

from ansible.errors import AnsibleError  # type: ignore[import-untyped]

try:
    from ansible_mitogen.plugins.strategy.mitogen_free import (  # type: ignore[import-untyped]
        StrategyModule,
    )
except ImportError as exc:
    raise AnsibleError(
        f"the mitogen_free strategy (playbooks/packages.yml) needs the mitogen package, which this "
        f"Python cannot import ({exc}). Install it with `make setup` (requirements.txt pins it)."
    ) from exc

__all__ = ["StrategyModule"]
