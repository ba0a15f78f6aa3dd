"""
Real lenses end to end: eight SLACS lenses against Bolton et al. (2008)
=======================================================================

Hezaveh et al. (2017) checked their networks on real lenses against published
models.  Here lenskit does the same on the HST ACS F814W images of eight SLACS
lenses in the development data, whose SIE parameters Bolton et al. (2008,
Table 5) measured by detailed modelling.  For each lens,
`lenskit.pipeline.model_lens`:

1. masks cosmic rays and hot pixels (L.A.Cosmic's Laplacian test);
2. subtracts the lens light with an elliptical Sérsic fit (one band);
3. resamples the arcs onto the shipped HST estimator's grid (0.04", 192 x 192,
   flux conserved, centred on the lens light) and estimates theta_E, e1, e2
   with the CNN in milliseconds;
4. refines with `lenskit.fit`, the maximum-likelihood SIE and Sérsic source,
   started from the CNN (and a grid of other starts).  Bolton et al.'s models
   are SIEs without external shear, so the fit here leaves the shear out too
   (``shear=False``): with a shear, the SIE's own ellipticity trades against
   it and its position angle no longer compares with theirs.

Real lenses are never used for training.

`lenskit.datasets.slacs_lenses` downloads the eight cutouts (17 files, about
6 MB, each checked against its SHA-256) into lenskit's cache on first use, and
reads them from there afterwards (``LENSKIT_OFFLINE=1`` never downloads).

.. note::

   The documentation is built offline: it runs this tutorial where lenskit's
   development data sit beside the checkout (``../shared/data``, which holds
   the same files) and otherwise shows the code without running it.
"""

import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np
from astropy.table import QTable

import lenskit
from lenskit.core import ellipticity_to_q_phi
from lenskit.datasets import slacs_lenses
from lenskit.modelling import model_lens
from lenskit.plotting import plot_lens_model, plot_predicted_vs_true

lenses = slacs_lenses(progress=False)  # cutouts (lenskit.io.fits.Cutout) with Bolton et al.'s theta_E, q and PA
print(f"{len(lenses)} SLACS lenses:", ", ".join(lens["name"] for lens in lenses))

# %%
# Model every lens
# ----------------
# Cutouts without a noise map (the four 198 x 198 images with a WCS) use the
# background's robust sigma; those without a PSF use a TinyTim ACS F814W PSF.
# ``fit_kwargs`` fits the SIE alone and skips the Laplace errors here to keep
# the tutorial short.  The CNN's own standard deviation (``cnn_theta_E_std``)
# comes with its estimate: a large one says the image is unlike the network's
# training set (0.25" and 0.49" for SDSS J0737 and J0946, the two it gets
# wrong, against 0.06-0.14" for the others).
estimator = lenskit.load_estimator("hst_wfc3")
results = []
for lens in lenses:
    res = model_lens(lens["cutout"], estimator, deblend=not lens["lens_subtracted"], psf=lens["psf"],
                     fit_kwargs={"laplace": False, "shear": False})
    results.append(res)
    print(f"{lens['name']}: CNN theta_E {res['cnn_theta_E']:.3f} +- {res['cnn_theta_E_std']:.3f}, "
          f"fit {res['theta_E']:.3f}, "
          f"published {lens['theta_E']:.2f} arcsec ({res['seconds_cnn']:.2f} and {res['seconds_fit']:.1f})")

# %%
# The comparison table
# --------------------
# Position angles are compared where the cutout has a WCS (north-up); the
# 281 x 281 cutouts have none.
tab = QTable()
tab["lens"] = [lens["name"] for lens in lenses]
for key, unit in (("theta_E", u.arcsec), ("q", None), ("pa", u.deg)):
    pub = np.array([lens[key] for lens in lenses])
    tab[f"{key}_pub"] = pub * unit if unit else pub
    for who, col in (("cnn", f"cnn_{key}"), ("fit", key)):
        vals = np.array([float(getattr(r[col], "value", r[col])) for r in results])
        tab[f"{key}_{who}"] = vals * unit if unit else vals
tab["chi2_red"] = [r["reduced_chi2"] for r in results]
for c in tab.colnames[1:]:
    tab[c].info.format = ".3f" if not c.startswith("pa") else ".1f"
print(tab)


def pa_diff(a, b):
    """Smallest difference of two axis angles (deg, modulo 180)."""
    d = np.abs(np.asarray(a) - np.asarray(b)) % 180
    return np.minimum(d, 180 - d)


for who in ("cnn", "fit"):
    dt = np.abs(tab[f"theta_E_{who}"] - tab["theta_E_pub"]).to_value(u.arcsec)
    dq = np.abs(tab[f"q_{who}"] - tab["q_pub"])
    dpa = pa_diff(tab[f"pa_{who}"].value, tab["pa_pub"].value)
    print(f"{who}: median |d theta_E| = {np.median(dt):.3f} arcsec, median |d q| = {np.median(dq):.3f}, "
          f"median |d PA| = {np.nanmedian(dpa):.1f} deg ({np.isfinite(dpa).sum()} lenses with a WCS)")

# %%
# Fig. 1 of Hezaveh et al. with the real lenses
# ---------------------------------------------
# The bands show the shipped CNN on simulated HST lenses of held-out galaxies
# (68% and 95% of the predictions in bins of the truth); the coloured points
# are the SLACS lenses: the CNN (open) and the refined fit (filled) against
# the published values.
sim = lenskit.Simulator(instrument="hst_wfc3", source="sersic_clump", split="test", seed=2008)
test = sim.sample(300)
est = estimator.predict(test)
q_true = ellipticity_to_q_phi(test.params["e1"], test.params["e2"])[0]
q_pred = ellipticity_to_q_phi(est.table["e1"], est.table["e2"])[0]
fig = plot_predicted_vs_true(
    QTable({"theta_E": est.table["theta_E"], "q": q_pred}), QTable({"theta_E": test.params["theta_E"], "q": q_true}),
    targets=["theta_E", "q"], color="0.5")
colours = plt.cm.tab10(np.arange(len(lenses)))
for ax, key in zip(fig.axes, ("theta_E", "q")):
    pub = np.asarray(getattr(tab[f"{key}_pub"], "value", tab[f"{key}_pub"]))
    for i, lens in enumerate(lenses):
        ax.plot(pub[i], np.asarray(getattr(tab[f"{key}_cnn"], "value", tab[f"{key}_cnn"]))[i], "o", mfc="none",
                mec=colours[i], ms=7)
        ax.plot(pub[i], np.asarray(getattr(tab[f"{key}_fit"], "value", tab[f"{key}_fit"]))[i], "o",
                color=colours[i], ms=5, label=lens["name"] if key == "theta_E" else None)
fig.axes[0].legend(fontsize=6, loc="upper left")
fig.set_size_inches(9, 4.2)
fig.tight_layout()

# %%
# One lens in detail
# ------------------
# `lenskit.plotting.plot_lens_model` draws what ``lenskit model`` draws: the
# cutout, the arcs after the Sérsic subtraction with the CNN's (dashed) and the
# fit's critical curves, the refined model, and the residual in units of the
# noise (masked pixels grey).
fig = plot_lens_model(results[0])
fig.suptitle(lenses[0]["name"], fontsize=10)
