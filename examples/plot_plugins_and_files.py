"""
Plugins and ASDF files
======================

Everything lenskit can simulate with is found through its plugin registry,
and every product is written to ASDF with a versioned schema and its
provenance.
"""

import tempfile
from pathlib import Path

import lenskit

# %%
# What is registered, by kind.
for kind, names in lenskit.available().items():
    print(f"{kind:12s} {names}")

# %%
# A third-party mass model is used exactly like a built-in one once its package
# is installed (see ``examples/plugin_package``).  Unknown names list what exists:
try:
    lenskit.get("mass_model", "nfw")
except lenskit.LenskitPluginError as err:
    print(err)

# %%
# Write a dataset, read it back, and inspect its provenance.
ds = lenskit.Simulator(instrument="euclid_vis", seed=4).sample(4)
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "euclid.asdf"
    ds.write(path)
    back = lenskit.read(path)
    print(back)
    print("identical:", back == ds)
    print("provenance:", back.provenance)
    print("selection used:", back.provenance.config["selection"])
