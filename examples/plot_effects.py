"""
How each observational effect looks
===================================

Each effect is a small class in :mod:`lenskit.instruments.effects` that can be
used on its own.  Here the same noise-free lens goes through the HST chain of
Hezaveh et al. (2017) one effect at a time, and then through LSST's physical
CCD noise.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch

import lenskit
from lenskit.instruments import effects
from lenskit.instruments.hst import HSTWFC3

# %%
# A noise-free lens: no effects at all.
clean = lenskit.Simulator(instrument=HSTWFC3(effects=[]), source="sersic_clump", seed=12).sample(1)

steps = [
    ("Gaussian PSF, rms 0.08\"", effects.GaussianPSF(sigma=0.08)),
    ("Poisson, counts factor 300", effects.PoissonNoise(counts_factor=300.0)),
    ("Gaussian noise, 4% of peak", effects.GaussianNoise(rms=0.04)),
    ("cosmic rays + hot pixels", effects.CosmicRays(n_rays=(4, 4), hot_pixels=(60, 60), bank_size=8)),
    ("normalised, zero bias", effects.Normalize()),
    ("masks (<= 25% of arc flux)", effects.CircularMasks(n_masks=(4, 4))),
]
rng = np.random.default_rng(0)
obs = effects.Observation(images=torch.as_tensor(clean.images), pixel_scale=0.04,
                          truth={"arcs": torch.as_tensor(clean.truth["arcs"])})
fig, axes = plt.subplots(1, len(steps) + 1, figsize=(18, 3.2))
axes[0].imshow(clean.images[0, 0], origin="lower", cmap="magma")
axes[0].set_title("noise-free", fontsize=9)
for ax, (title, eff) in zip(axes[1:], steps):
    obs = eff(obs, rng)
    ax.imshow(obs.images[0, 0].numpy(), origin="lower", cmap="magma")
    ax.set_title(title, fontsize=9)
for ax in axes:
    ax.set_axis_off()
# what each effect drew for this image
print({k: np.asarray(v).tolist() for k, v in obs.meta.items()})

# %%
# Coloured noise: drizzling correlates the blank-field noise of HST images
# between pixels.  lenskit ships the noise correlation function GalSim
# measured on COSMOS ACS F814W images (``effects.noise_correlation``); the
# HST instrument colours the noise of half of its images with it, as
# Hezaveh et al. (2017) did.  Its central 3 x 3 lags:
corr = effects.noise_correlation("cosmos_acs_f814w")
print(np.round(corr[39:42, 39:42], 2))
white = effects.GaussianNoise(rms=0.05)(effects.Observation(images=torch.ones(1, 1, 96, 96), pixel_scale=0.04), rng)
col = effects.GaussianNoise(rms=0.05, correlation="cosmos_acs_f814w", coloured_fraction=1.0)(
    effects.Observation(images=torch.ones(1, 1, 96, 96), pixel_scale=0.04), rng)
fig, axes = plt.subplots(1, 2, figsize=(7, 3.5))
axes[0].imshow(white.images[0, 0].numpy(), origin="lower", cmap="gray")
axes[0].set_title("white noise")
axes[1].imshow(col.images[0, 0].numpy(), origin="lower", cmap="gray")
axes[1].set_title("coloured noise")

# %%
# Survey instruments use the physical model instead: sky and source photons in
# electrons, read noise for each read, dark current and gain.  The noise map
# of the dataset is the per-pixel standard deviation that model predicts.
lsst = lenskit.Simulator(instrument=lenskit.get("instrument", "lsst")(bands=("r",)), seed=2).sample(1)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
for ax, (title, im) in zip(axes, [("noise-free arcs + lens", lsst.truth["arcs"][0, 0] + lsst.truth["lens_light"][0, 0]),
                                  ("observed, one r visit", lsst.images[0, 0]),
                                  ("noise map [e-/s]", lsst.noise[0, 0])]):
    m = ax.imshow(im, origin="lower", cmap="magma")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    fig.colorbar(m, ax=ax, shrink=0.8)
# %%
# Ground-based seeing has wings: `~lenskit.instruments.effects.MoffatPSF`
# draws a Moffat PSF per image (FWHM, wing index beta, ellipticity), and
# ``Simulator(lens_light="residual")`` subtracts an imperfect model of the
# lens light, leaving the faint residuals a lens-light fit leaves
# (`lenskit.simulation.residuals`).  The robust training presets
# (``presets.robust``) use both.
point = torch.zeros((3, 1, 41, 41))
point[:, :, 20, 20] = 1.0
moffat = effects.MoffatPSF(fwhm=0.2, beta=(2.0, 2.0), ellipticity=0.0)
gauss = effects.GaussianPSF(fwhm=0.2)
pm = moffat(effects.Observation(images=point.clone(), pixel_scale=0.04), rng).images[0, 0].numpy()
pg = gauss(effects.Observation(images=point.clone(), pixel_scale=0.04), rng).images[0, 0].numpy()
residual = lenskit.Simulator(instrument=HSTWFC3(effects=[effects.GaussianPSF(sigma=0.04)]), source="sersic_clump",
                             lens_light="residual", seed=12).sample(1)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
axes[0].semilogy(np.arange(-20, 21) * 0.04, pm[20], label="Moffat, beta 2")
axes[0].semilogy(np.arange(-20, 21) * 0.04, pg[20], label="Gaussian")
axes[0].set_ylim(1e-6, 1)
axes[0].set_xlabel("arcsec")
axes[0].set_title("PSFs of FWHM 0.2\"", fontsize=9)
axes[0].legend(fontsize=8)
axes[1].imshow(residual.images[0, 0], origin="lower", cmap="magma")
axes[1].set_title("arcs after an imperfect lens-light subtraction", fontsize=9)
axes[1].set_axis_off()
fig.tight_layout()
plt.show()
