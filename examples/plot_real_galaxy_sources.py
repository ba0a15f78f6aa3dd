"""
Clumpy versus real galaxies as sources
======================================

Hezaveh et al. (2017) trained on a mixture of simulated clumpy galaxies and
real galaxies (Galaxy Zoo and GREAT3).  Real morphologies are what make
networks work on real data.  Here the same lens, the same source position and
the same observation are rendered with four clumpy sources (top) and four real
COSMOS HST galaxies (bottom), all rescaled to a half-light radius of 0.35".

The COSMOS galaxies are read from a GalSim RealGalaxyCatalog: the small
sample in the repository's shared data folder when it is there, or the full
COSMOS 23.5 training sample that `lenskit.datasets` downloads.

.. note::

   This tutorial reads real telescope data from lenskit's development data
   (``../shared/data`` beside a checkout). Where that folder is absent, the
   documentation shows the code without running it.
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import lenskit
from lenskit.lensing import ray_trace

# %%
# Find a RealGalaxyCatalog.
here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
candidates = [Path(os.environ.get("LENSKIT_COSMOS_CATALOG", "")),
              here.parent.parent / "shared/data/sources/cosmos_f814w/real_galaxy_catalog_23.5.fits",
              here.parent / "shared/data/sources/cosmos_f814w/real_galaxy_catalog_23.5.fits"]
catalog = next((c for c in candidates if c.is_file()), None)
if catalog is None:
    import lenskit.datasets

    catalog = lenskit.datasets.catalog("cosmos_23.5")  # downloads ~4 GB once
print("catalogue:", catalog)

rng = np.random.default_rng(2017)
clumpy = lenskit.get("source", "sersic_clump")(size=0.35).sample(4, rng)
real_src = lenskit.get("source", "great3")(catalog, size=0.35)
real = real_src.sample(4, rng)
print("prepared galaxies:", [s.ident for s in real_src.stamps])

# %%
# One lens, ray-traced once on the HST pixel grid (float64), then both source
# populations evaluated at the same source-plane positions.
sie = lenskit.get("mass_model", "sie")()
hst = lenskit.get("instrument", "hst_wfc3")(test=True)
x, y = hst.pixel_grid(dtype=torch.float64)
X, Y = x.reshape(1, 1, -1), y.reshape(1, -1, 1)
lens = dict(theta_E=1.3, e1=0.12, e2=-0.05, x0=0.02, y0=-0.03)
bx, by = ray_trace(sie, X.expand(1, 192, 192), Y.expand(1, 192, 192), **lens)
beta = np.array([0.12, 0.06])
bx, by = (bx - beta[0]).expand(4, 192, 192), (by - beta[1]).expand(4, 192, 192)

images = {}
for name, batch in (("clumpy", clumpy), ("real COSMOS", real)):
    ideal = batch.brightness(bx, by).unsqueeze(1).float()
    obs = hst.observe(ideal.clone(), np.random.default_rng(1), arcs=ideal)
    images[name] = (ideal, obs.images)

# %%
# Noise-free lensed sources (left block) and after the HST effects of the paper
# (right block): PSF, Poisson and Gaussian noise, cosmic rays, normalisation
# and test-set masks.
fig, axes = plt.subplots(2, 8, figsize=(18, 5))
for row, (name, (ideal, observed)) in enumerate(images.items()):
    for j in range(4):
        im = ideal[j, 0].numpy()
        axes[row, j].imshow(np.arcsinh(im / im.max() * 20), origin="lower", cmap="magma")
        axes[row, j + 4].imshow(observed[j, 0].numpy(), origin="lower", cmap="magma")
    axes[row, 0].set_ylabel(name)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_title("noise-free")
axes[0, 4].set_title("observed (HST recipe)")
fig.tight_layout()

# %%
# Training and test galaxies are split by identity, so a test set never holds a
# galaxy seen in training.  The Simulator passes its ``split`` to the source.
for split in ("train", "validation", "test"):
    print(split, [s.ident for s in real_src.with_split(split).galaxies()])
test_sim = lenskit.Simulator(source=real_src, instrument="hst_wfc3", split="test", seed=3)
plt.show()
