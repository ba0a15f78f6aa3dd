"""
Refusals you can rely on
========================

lenskit answers a bad request with an error that names what is wrong, before
any work and without writing anything.  This tutorial shows the refusals a user
meets most: data that do not suit an estimator, a cutout too small for a
network's field, a damaged file, and a request that cannot fit in memory (see
:ref:`trust`).
"""

import tempfile
from pathlib import Path

import astropy.units as u
import matplotlib.pyplot as plt

import lenskit
from lenskit.core import LenskitCorruptFileError

# %%
# An estimator refuses data it was not trained for
# ------------------------------------------------
# The shipped Euclid VIS estimator was trained on 0.1" pixels.  Given LSST
# r-band stamps of the same size (0.2" pixels) it would still return numbers,
# about half the true Einstein radii; instead it says why it cannot answer.
lsst_r = lenskit.Simulator(instrument=lenskit.get("instrument", "lsst")(bands=("r",)), seed=3).sample(40)
euclid = lenskit.load_estimator("euclid_vis")
print(euclid.expects)
try:
    euclid.predict(lsst_r)
except ValueError as err:
    print(err)

# %%
# With ``strict=False`` it warns and answers anyway.  The plot shows what
# that answer is worth, next to the Euclid estimator on Euclid images of lenses
# drawn from the same priors.
import warnings  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    wrong = euclid.predict(lsst_r, strict=False).table
euclid_ds = lenskit.Simulator(instrument="euclid_vis", seed=3).sample(40)
right = euclid.predict(euclid_ds).table
fig, ax = plt.subplots(figsize=(4.5, 4.5))
for ds, est, label in ((euclid_ds, right, "Euclid VIS images (what it expects)"),
                       (lsst_r, wrong, "LSST r images (strict=False)")):
    ax.scatter(ds.params["theta_E"].to_value(u.arcsec), est["theta_E"].to_value(u.arcsec), s=12, label=label)
lim = [0, 3.2]
ax.plot(lim, lim, color="0.5", lw=1)
ax.set(xlim=lim, ylim=lim, xlabel=r"true $\theta_E$ [arcsec]", ylabel=r"estimated $\theta_E$ [arcsec]",
       title=f"euclid_vis estimator, {len(lsst_r)} lenses each")
ax.legend(loc="upper left", fontsize=8)
fig.tight_layout()

# %%
# Quantities are accepted wherever a unit is meant, and a wrong unit is named:
sim = lenskit.Simulator(priors={"theta_E": (800 * u.mas, 1.5 * u.arcsec)}, seed=1)
print(sim.priors["theta_E"])
try:
    lenskit.Simulator(priors={"theta_E": (1 * u.km / u.s, 2 * u.km / u.s)})
except u.UnitConversionError as err:
    print(err)

# %%
# A cutout too small for the network's field
# -------------------------------------------
# The HST estimator reads a 7.68" field.  A real cutout (here lens-subtracted
# arcs) smaller than that reaches it with the rest of the field filled with
# the cutout's background noise -- a blank border, which no training image
# had, would spoil the answer -- and with a warning; one that covers less
# than half of the field is refused.
from lenskit.io.fits import Cutout  # noqa: E402

hst = lenskit.Simulator(source="sersic_clump", instrument=lenskit.get("instrument", "hst_wfc3")(test=True),
                        seed=5).sample(1)
arcs = hst.images[0, 0].astype(float)
for size in (192, 160, 80):  # 7.68", 6.4" and 3.2" cut about the stamp's centre
    c = (192 - size) // 2
    cut = Cutout(arcs[c:c + size, c:c + size], 0.04)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stamp = cut.to_stamp(0.04, (192, 192), centre=((size - 1) / 2, (size - 1) / 2))
        answer = lenskit.load_estimator("hst_wfc3").predict(stamp.to_dataset(lens_light=False)).table["theta_E"][0]
        print(f"{size * 0.04:.2f}\" cutout: {100 * stamp.outside_fraction:.0f}% of the field filled, theta_E "
              f"{answer:.2f} (true {hst.params['theta_E'][0]:.2f}){'; ' + str(caught[0].message) if caught else ''}")
    except ValueError as err:
        print(f"{size * 0.04:.2f}\" cutout: {err}")

# %%
# A damaged file is refused
# -------------------------
# Every binary block of an ASDF file carries a checksum, and a dataset's
# images the SHA-256 of its provenance; both are checked on read.
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "lenses.asdf"
    lsst_r[:4].write(path)
    raw = bytearray(path.read_bytes())
    start = raw.find(b"\xd3BLK") + 400
    raw[start:start + 64] = bytes(64)  # a few zeroed sectors, as a failing disk leaves them
    path.write_bytes(bytes(raw))
    try:
        lenskit.read(path)
    except LenskitCorruptFileError as err:
        print(type(err).__name__, ":", err)

# %%
# A request that cannot fit is refused before it starts
# -----------------------------------------------------
# ``sample`` holds its result in memory; a billion HST lenses would need
# hundreds of terabytes, so it points to the streaming and sharded
# alternatives instead of running until the machine runs out.
print(f"one HST system takes {lenskit.Simulator().bytes_per_system() / 1e3:.0f} kB")
try:
    lenskit.Simulator().sample(10**9)
except ValueError as err:
    print(err)
