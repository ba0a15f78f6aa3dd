"""
Real galaxies from the Hubble eXtreme Deep Field
================================================

Ten COSMOS galaxies are too few to train a network that generalises: its
training loss keeps falling while its error on held-out galaxies stalls.  The
``hudf`` source cuts hundreds of real galaxies out of the Hubble eXtreme Deep
Field image that scikit-image ships, with nothing to download: photutils
segments the field, each galaxy is cut out, cleaned of its neighbours,
tapered, and split into training, validation and test galaxies by its
position in the field.

The image is a colour release image with a display stretch, so the galaxies'
shapes are real (clumps, arms, bars, mergers) while their dynamic range is
compressed, as in the Galaxy Zoo JPEGs that Hezaveh et al. (2017) lensed.
"""

import matplotlib.pyplot as plt
import numpy as np

import lenskit

# %%
# The first 60 galaxies of the field (all of them, about 400, take about
# 30 seconds to prepare).
xdf = lenskit.get("source", "hudf")(max_galaxies=60)
stamps = xdf.galaxies()
print(f"{len(stamps)} galaxies; splits:",
      {s: len(xdf.with_split(s).galaxies()) for s in ("train", "validation", "test")})

fig, axes = plt.subplots(2, 6, figsize=(10, 3.8))
for ax, st in zip(axes.flat, stamps[:12]):
    ax.imshow(np.arcsinh(st.image[0] / (3 * st.noise)), origin="lower", cmap="gray")
    ax.set_title(f"{st.ident}\nr_half {st.r_half:.2f}\"", fontsize=7)
    ax.axis("off")
fig.suptitle("Prepared XDF stamps (background subtracted, neighbours removed, tapered)")
fig.tight_layout()

# %%
# Lensed through HST WFC3 by the same simulator as any other source: the
# training galaxies only, so that a test set can hold galaxies never seen.
sim = lenskit.Simulator(source=xdf.with_split("train"), instrument="hst_wfc3", seed=4)
ds = sim.sample(6)
fig, axes = plt.subplots(1, 6, figsize=(12, 2.4))
for ax, img, p in zip(axes, ds.images[:, 0], ds.params):
    ax.imshow(img, origin="lower", cmap="magma")
    ax.set_title(f"theta_E {p['theta_E'].value:.2f}\"", fontsize=8)
    ax.axis("off")
fig.tight_layout()

# %%
# A source can also be restricted to named galaxies, for example to see how
# many training galaxies a network needs (``benchmarks/galaxy_count.py``:
# for the HST network, ten galaxies help as much as all of them).  The split
# still applies on top.
train_ids = [s.ident for s in xdf.with_split("train").galaxies()]
three = xdf.with_galaxies(train_ids[:3])
ds3 = lenskit.Simulator(source=three, split="train", instrument="hst_wfc3", seed=5).sample(6)
print("sources drawn:", sorted({str(i) for i in ds3.params["source_id"]}), "of", sorted(train_ids[:3]))
plt.show()
