"""The pluggy hook specification that lenskit plugins implement."""

import pluggy

__all__ = ["hookspec", "hookimpl", "lenskit_register_implementations", "PROJECT"]

PROJECT = "lenskit"
hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorator for a plugin's hook implementation.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def lenskit_register_implementations():
    """
    Return the implementations a plugin provides.

    Returns
    -------
    dict
        ``{kind: {name: class_or_"module:Class"}}`` with ``kind`` one of
        ``mass_model``, ``source``, ``instrument``, ``estimator``,
        ``deblender``.  Strings are imported only when the implementation
        is first requested with `lenskit.get`.
    """
