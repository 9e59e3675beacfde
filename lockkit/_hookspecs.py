"""The hook specs of `lockkit.spec`, marked for pluggy: imported only with pluggy.

`lockkit.spec` defines the hook functions (their signatures and docstrings are the
documented contract) without importing pluggy, so that a fresh process whose backend
comes from the registry's cache (`lockkit._regcache`) never imports it. The registry
imports this module when it first needs a plugin manager; it marks the same
functions, so ``lockkit.spec.lockkit_acquired.lockkit_spec`` exists from then on.
"""

from __future__ import annotations

import pluggy

from lockkit import spec

__all__ = ["EVENT_HOOKS", "HOOKS", "plugin_manager"]

EVENT_HOOKS = (
    "lockkit_acquired",
    "lockkit_released",
    "lockkit_contended",
    "lockkit_stale_broken",
    "lockkit_lost",
)
"""The observability hooks: called only when some plugin implements one."""

HOOKS = frozenset({"lockkit_register_backends", *EVENT_HOOKS})
"""Every hook a plugin may implement."""

_spec = pluggy.HookspecMarker(spec.NAME)
for _name in sorted(HOOKS):
    _spec(getattr(spec, _name))


def plugin_manager() -> pluggy.PluginManager:
    """A plugin manager that knows lockkit's hook specs."""
    manager = pluggy.PluginManager(spec.NAME)
    manager.add_hookspecs(spec)
    return manager
