"""
A gallery of simulated lenses per instrument
============================================

Like Extended Data Fig. 1 of Hezaveh, Perreault Levasseur & Marshall (2017),
but for the three instruments lenskit ships: HST WFC3 with the paper's
observational effects, LSST g, r, i single visits and Euclid VIS, the last two
with lens light and physical CCD noise.  Critical curves (white) and caustics
with the cut (cyan) are drawn over each HST image.
"""

import matplotlib.pyplot as plt
import numpy as np

import lenskit
from lenskit.plotting import plot_gallery

# %%
# HST WFC3: 192 x 192 pixels of 0.04", clumpy sources, the Hezaveh et al. recipe
# (random Gaussian PSF, Poisson and Gaussian noise, cosmic rays, normalisation, masks).
hst = lenskit.Simulator(mass_model="sie", source="sersic_clump", instrument="hst_wfc3", seed=7).sample(8)
fig = plot_gallery(hst, n=8, title="HST WFC3 (Hezaveh et al. 2017 recipe)")

# %%
# The parameters of each system are in a QTable with units.
print(hst.params["theta_E", "q", "magnification", "arc_snr", "psf_fwhm", "masked_flux_fraction"][:5])

# %%
# LSST: 57 x 57 pixels of 0.2" in g, r, i (shown as RGB = i, r, g), one visit of 2 x 15 s.
# Lens light dominates; the Pearson et al. (2019) selection keeps systems whose arcs
# reach S/N > 20 in at least one band.
lsst = lenskit.Simulator(instrument="lsst", source="sersic_clump", seed=3).sample(8)
fig = plot_gallery(lsst, n=8, show_curves=False, title="LSST g, r, i single visits")

# %%
# The same LSST systems after a perfect lens-light removal: ``lens_light="subtracted"``
# observes the lens light and subtracts its true profile, so its shot noise stays
# (in the image and in ``noise``), as in real subtracted data and in Pearson et al.'s
# images without lens light.  The arcs are what the ``_no_lens_light`` estimators read.
sub = lenskit.Simulator(instrument="lsst", source="sersic_clump", seed=3, lens_light="subtracted").sample(8)
fig = plot_gallery(sub, n=8, show_curves=False, title="LSST g, r, i, lens light subtracted")
centre = (slice(None), slice(None), slice(24, 33), slice(24, 33))
print(f"median noise in the central 9 x 9 pixels: {float(np.median(lsst.noise[centre])):.2f} with the lens light, "
      f"{float(np.median(sub.noise[centre])):.2f} after subtracting it (unchanged: its shot noise stays)")

# %%
# Euclid VIS: 57 x 57 pixels of 0.1", 565 s.
euclid = lenskit.Simulator(instrument="euclid_vis", source="sersic_clump", seed=5).sample(8)
fig = plot_gallery(euclid, n=8, title="Euclid VIS")
plt.show()
