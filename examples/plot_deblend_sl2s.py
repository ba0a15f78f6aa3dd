"""
Removing the lens light of a real lens: SL2S J0219-0829
========================================================

Hezaveh et al. (2017) removed the lens galaxy's light automatically with
independent component analysis (ICA) of two HST filters, F475X and F600LP,
and checked it against a Sérsic fit (their Extended Data Fig. 2).  Here we do
the same on the real two-band HST WFC3 images of SL2S J0219-0829 that ship
with the development data (``../shared/data/real_lenses``).

The lens galaxy is red and the lensed source blue, so each filter is a
different mixture of two images that are spatially independent: ICA unmixes
them.  lenskit masks the lens centre and bright cosmic rays (0.2" discs),
decides which component holds the arcs from the morphology (the lens light is
the concentrated one), and returns the arcs in each band's flux units.

.. note::

   This tutorial reads real telescope data from lenskit's development data
   (``../shared/data`` beside a checkout). Where that folder is absent, the
   documentation shows the code without running it.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from astropy.io import fits

import lenskit

here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
data = next(p for p in (here.parent.parent / "shared", here.parent / "shared", here.parent.parent.parent / "shared")
            if p.exists()) / "data" / "real_lenses" / "sl2s_wfc3_two_band"

bands = ("F475X", "F600LP")
images, noise, psfs = [], [], []
for band in bands:
    with fits.open(data / f"SL2SJ0219-0829_{band}.fits") as hdul:
        img = hdul[0].data.astype(float)
        # noise: background rms plus the Poisson noise of the light (the EXPTIME extension is the exposure map)
        noise.append(np.sqrt(hdul[0].header["BKG_RMS"] ** 2 + np.clip(img, 0, None) / hdul["EXPTIME"].data))
        psfs.append(hdul["PSF"].data.astype(float))
        images.append(img)
        pixel_scale = hdul[0].header["PIXSCALE"]
cube = np.stack(images)
noise = np.stack(noise)
print(f"two bands of {cube.shape[1]} x {cube.shape[2]} pixels at {pixel_scale:.3f} arcsec")

# %%
# ICA of the two filters
# ----------------------
ica = lenskit.get("deblender", "ica")()
res = ica.separate(cube, bands=bands, pixel_scale=pixel_scale, noise=noise)
row = res.params[0]
print(f"arcs in component {row['arc_component']}: light-weighted radius {row['arc_radius']:.2f} arcsec, "
      f"lens light {row['lens_radius']:.2f} arcsec; {row['n_cosmic_rays']} cosmic ray(s) masked")

# %%
# A Sérsic fit of the lens light in F600LP
# ----------------------------------------
# An elliptical Sérsic plus sky, integrated over pixels, convolved with the
# band's PSF and weighted by the noise, refitted while the arcs are masked.
# Told the PSF, the fit then adds a smooth model of what one Sérsic profile
# misses (`~lenskit.deblenders.sersic.profile_correction`: B-splines in the
# fitted ellipse's radius, with and without the quadrupole, fitted to the
# residual outside the arc mask).
ser = lenskit.get("deblender", "sersic")().separate(cube[1], pixel_scale=pixel_scale, noise=noise[1],
                                                   psf=psfs[1], bands=["F600LP"])
p = ser.params[0]
print(f"Sérsic: R_e = {p['R_e']:.2f}, n = {p['n']:.2f}, q = {p['q']:.2f}, reduced chi2 = {p['reduced_chi2']:.2f}, "
      f"{p['iterations']} rounds of arc masking, profile corrected: {ser.diagnostics['profile_corrected']}")

# %%
# What the profile correction takes out
# -------------------------------------
# The same fit with one Sérsic profile alone (``profile_correction=False``):
# the difference is the correction, and the residual's scatter about the
# galaxy's centre, outside the arc mask, is what a CNN reading the arcs would
# otherwise see there.
one = lenskit.get("deblender", "sersic")(profile_correction=False).separate(
    cube[1], pixel_scale=pixel_scale, noise=noise[1], psf=psfs[1], bands=["F600LP"])
yy, xx = np.indices(cube.shape[1:])
cx = (cube.shape[2] - 1) / 2 + p["x0"].to_value("arcsec") / pixel_scale
cy = (cube.shape[1] - 1) / 2 + p["y0"].to_value("arcsec") / pixel_scale
near = (np.hypot(xx - cx, yy - cy) * pixel_scale < 1.0) & ~ser.masks[0]
for name, d in (("one Sérsic profile", one), ("profile corrected", ser)):
    chi = d.arcs[0, 0][near] / noise[1][near]
    print(f"{name}: residual within 1 arcsec of the centre, outside the arc mask: "
          f"rms {np.sqrt(np.mean(chi ** 2)):.2f} sigma, mean {np.mean(chi):+.2f} sigma")

# %%
# The inputs, the ICA components and the residual arcs
# ----------------------------------------------------
# As in Extended Data Fig. 2 of Hezaveh et al. (2017): the two filters, the
# two independent components (the ICA arcs component is the first of the
# lower row), and the Sérsic residual.  The centre is masked in the ICA
# result (its estimate there is unreliable).
comps = res.diagnostics["components"][0]
arc_c, lens_c = int(row["arc_component"]), int(row["lens_component"])
panels = [(cube[0], "F475X"), (cube[1], "F600LP"), (comps[lens_c], "ICA: lens light component"),
          (res.arcs[0, 1], "ICA: arcs (F600LP units)"), (comps[arc_c], "ICA: arcs component"),
          (ser.arcs[0, 0], "Sérsic residual (F600LP)")]
fig, axes = plt.subplots(2, 3, figsize=(9, 6.3))
for ax, (im, title) in zip(axes.flat, panels):
    lo, hi = np.percentile(im, [2, 99.7])
    ax.imshow(im, origin="lower", cmap="magma", vmin=lo, vmax=hi)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("SL2S J0219-0829, HST WFC3: removing the lens light")
fig.tight_layout()

# %%
# The Sérsic residual with one profile, with the correction, and the
# correction itself (the same colour scale for all three):
fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
lo, hi = np.percentile(one.arcs[0, 0], [2, 99.7])
for ax, (im, title) in zip(axes, [(one.arcs[0, 0], "one Sérsic profile"), (ser.arcs[0, 0], "profile corrected"),
                                  (one.arcs[0, 0] - ser.arcs[0, 0], "the correction")]):
    ax.imshow(im, origin="lower", cmap="magma", vmin=lo, vmax=hi)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()

# %%
# Both results are `~lenskit.core.Deblended` objects and write to ASDF:
# ``res.write("sl2s_ica.asdf")``.  On the command line::
#
#     lenskit deblend SL2SJ0219-0829_F475X.fits SL2SJ0219-0829_F600LP.fits -o sl2s_ica.asdf
#     lenskit deblend SL2SJ0219-0829_F600LP.fits --method sersic -o sl2s_sersic.asdf
