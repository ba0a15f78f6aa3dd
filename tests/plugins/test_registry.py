import os
import subprocess
import sys

import pytest

import lenskit
from lenskit.core import LenskitPluginError, LenskitPluginWarning, MassModel
from lenskit.plugins import builtin, plugins


def test_builtins_listed(fresh_registry):
    avail = lenskit.available()
    for kind, names in builtin.BUILTINS.items():
        assert sorted(names) == [n for n in avail[kind] if n in names]
    assert "sie" in lenskit.available("mass_model")


def test_get_returns_interface_subclass(fresh_registry):
    cls = lenskit.get("mass_model", "sie")
    assert issubclass(cls, MassModel)


def test_unknown_name_lists_available(fresh_registry):
    with pytest.raises(LenskitPluginError, match=r"unknown mass_model 'nfw'.*available: \[.*'sie'"):
        lenskit.get("mass_model", "nfw")


def test_unknown_kind(fresh_registry):
    with pytest.raises(ValueError, match="kind must be one of"):
        lenskit.get("galaxy", "sie")


def test_lazy_builtins_do_not_import_networks():
    code = ("import sys, lenskit; lenskit.available(); "
            "print('torch' in sys.modules, 'lenskit.mass_models.sie' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


PLUGIN_OK = """
from lenskit.plugins import hookimpl
from lenskit.mass_models.shear import ExternalShear

class MyShear(ExternalShear):
    name = "my_shear"

@hookimpl
def lenskit_register_implementations():
    return {"mass_model": {"my_shear": MyShear}}
"""


def test_entry_point_plugin_found(fake_plugin):
    fake_plugin("goodplugin", PLUGIN_OK)
    assert "my_shear" in lenskit.available("mass_model")
    info = {p.name: p for p in plugins()}["goodplugin"]
    assert info.status == "loaded"
    assert info.distribution == "goodplugin" and info.version == "0.3.1"
    assert info.provides == {"mass_model": ["my_shear"]}


def test_broken_plugin_only_warns(fake_plugin):
    fake_plugin("brokenplugin", "raise ImportError('missing dependency xyz')\n")
    fake_plugin("goodplugin", PLUGIN_OK)
    with pytest.warns(LenskitPluginWarning, match="brokenplugin.*missing dependency xyz"):
        names = lenskit.available("mass_model")
    assert "my_shear" in names and "sie" in names
    info = {p.name: p for p in plugins()}["brokenplugin"]
    assert info.status == "failed" and "xyz" in info.error


def test_strict_mode_reraises(fake_plugin, monkeypatch):
    fake_plugin("brokenplugin", "raise ImportError('missing dependency xyz')\n")
    monkeypatch.setenv("LENSKIT_STRICT_PLUGINS", "1")
    with pytest.raises(ImportError, match="xyz"):
        lenskit.available("mass_model")


def test_disable_by_name(fake_plugin, monkeypatch):
    fake_plugin("brokenplugin", "raise ImportError('boom')\n")
    fake_plugin("goodplugin", PLUGIN_OK)
    monkeypatch.setenv("LENSKIT_DISABLE_PLUGINS", "brokenplugin, goodplugin")
    names = lenskit.available("mass_model")  # no warning: the broken one is never imported
    assert "my_shear" not in names
    assert {p.name: p.status for p in plugins()}["goodplugin"] == "disabled"


def test_duplicate_name_names_both_plugins(fake_plugin):
    fake_plugin("dupplugin", """
        from lenskit.plugins import hookimpl
        @hookimpl
        def lenskit_register_implementations():
            return {"mass_model": {"sie": "lenskit.mass_models.shear:ExternalShear"}}
    """)
    with pytest.warns(LenskitPluginWarning, match="'sie' is registered by several plugins"):
        with pytest.raises(LenskitPluginError, match="'sie' is registered by several plugins \\('lenskit', 'dupplugin'\\)"):
            lenskit.get("mass_model", "sie")
    # only the contested name fails: every other built-in still resolves
    assert lenskit.get("mass_model", "external_shear").name == "external_shear"
    assert "sie" not in lenskit.available("mass_model")
    status = {p.name: (p.status, p.conflicts) for p in plugins()}
    assert status["dupplugin"][0] == "conflict" and "mass_model 'sie'" in status["dupplugin"][1][0]
    assert status["lenskit"][0] == "conflict"


def test_wrong_interface_rejected(fake_plugin):
    fake_plugin("wrongplugin", """
        from lenskit.plugins import hookimpl
        @hookimpl
        def lenskit_register_implementations():
            return {"source": {"not_a_source": "collections:OrderedDict"}}
    """)
    with pytest.raises(LenskitPluginError, match="does not implement lenskit.core.Source"):
        lenskit.get("source", "not_a_source")


def test_unimportable_spec_is_clear(fake_plugin):
    fake_plugin("lazyplugin", """
        from lenskit.plugins import hookimpl
        @hookimpl
        def lenskit_register_implementations():
            return {"deblender": {"ghost": "no_such_module_anywhere:Ghost"}}
    """)
    with pytest.raises(LenskitPluginError, match="'ghost' from plugin 'lazyplugin' could not be imported"):
        lenskit.get("deblender", "ghost")


def test_bad_hook_result_is_a_failure(fake_plugin):
    fake_plugin("badresult", """
        from lenskit.plugins import hookimpl
        @hookimpl
        def lenskit_register_implementations():
            return {"galaxy": {}}
    """)
    with pytest.warns(LenskitPluginWarning, match="unknown kind 'galaxy'"):
        lenskit.available()


def test_example_plugin_package(example_plugin_site, fresh_registry, monkeypatch):
    """The real example package, installed by pip, is found, listed and simulates."""
    monkeypatch.syspath_prepend(str(example_plugin_site))
    import importlib

    importlib.invalidate_caches()
    assert "point_mass" in lenskit.available("mass_model")
    info = {p.name: p for p in plugins()}["point_mass"]
    assert info.distribution == "lenskit-point-mass" and info.version == "0.1.0"
    pm = lenskit.get("mass_model", "point_mass")()
    ax, ay = pm.deflection([2.0], [0.0], theta_E=1.0, x0=0.0, y0=0.0)
    assert ax[0] == pytest.approx(0.5) and ay[0] == 0
    sim = lenskit.Simulator(mass_model="point_mass", source="sersic", instrument="hst_wfc3", seed=3,
                            priors={"theta_E": (0.8, 1.2)}, lens_light=False)
    ds = sim.sample(2)
    assert ds.images.shape == (2, 1, 192, 192)
    assert set(ds.params.colnames) >= {"theta_E", "x0", "y0"}


def test_cli_lists_example_plugin(example_plugin_site):
    env = dict(os.environ, PYTHONPATH=str(example_plugin_site))
    out = subprocess.run([sys.executable, "-m", "lenskit.cli", "plugins"], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert "point_mass" in out and "lenskit-point-mass" in out and "sie" in out
