"""
Plugin system: the hook specification and the registry.

A third-party package registers implementations with::

    # my_plugin/hooks.py
    from lenskit.plugins import hookimpl

    @hookimpl
    def lenskit_register_implementations():
        return {"mass_model": {"my_model": "my_plugin.models:MyModel"}}

and advertises the module in its ``pyproject.toml``::

    [project.entry-points."lenskit.plugins"]
    my_plugin = "my_plugin.hooks"
"""

from lenskit.plugins import registry  # noqa: F401
from lenskit.plugins.hookspecs import hookimpl, hookspec  # noqa: F401
from lenskit.plugins.registry import (  # noqa: F401
    ENTRY_POINT_GROUP,
    PluginInfo,
    available,
    get,
    plugin_module_allowed,
    plugin_versions,
    plugins,
    reset,
)

__all__ = ["hookimpl", "hookspec", "get", "available", "plugins", "plugin_versions", "plugin_module_allowed", "reset",
           "PluginInfo", "ENTRY_POINT_GROUP"]
