"""
Critical curves, caustics and images
====================================

For one SIE lens with external shear, draw the critical curves over the lensed
image, and the caustics and the cut over the source plane; then find the
images of a point source with the triangle-mapping solver and check the lens
equation.  Last, the elliptical power law (``epl``): how its slope moves the
critical curves and caustics.
"""

import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np

import lenskit
from lenskit.lensing import caustics, critical_curves, image_positions, ray_trace
from lenskit.mass_models.composite import CompositeMassModel

lens = CompositeMassModel([lenskit.get("mass_model", "sie")(), lenskit.get("mass_model", "external_shear")()])
p = dict(theta_E=1.2 * u.arcsec, e1=0.12, e2=-0.06, x0=0.05 * u.arcsec, y0=0.0 * u.arcsec, gamma1=0.04, gamma2=0.03)

# %%
# Ray-trace a Sérsic source through the lens on a 0.02" grid.
c = np.linspace(-2.5, 2.5, 251)
X, Y = np.meshgrid(c, c)
bx, by = ray_trace(lens, X, Y, **p)
src = dict(x=0.08, y=0.05, R_e=0.15)
image = np.exp(-7.67 * ((np.hypot(bx - src["x"], by - src["y"]) / src["R_e"]) ** 0.25 - 1))

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 5))
ax1.imshow(image, origin="lower", extent=[-2.5, 2.5, -2.5, 2.5], cmap="magma")
for cc in critical_curves(lens, **p):
    ax1.plot(cc[:, 0], cc[:, 1], color="white", lw=1)
ax1.set(title="image plane: critical curve", xlabel="x [arcsec]", ylabel="y [arcsec]")

for i, cs in enumerate(caustics(lens, **p)):
    ax2.plot(cs[:, 0], cs[:, 1], color="C0" if i == 0 else "C1", label="caustic" if i == 0 else "cut")
ax2.plot(src["x"], src["y"], "r*", ms=12, label="source")
ax2.set(title="source plane", xlabel="x [arcsec]", aspect="equal")
ax2.legend()

# %%
# The four images of a point source at the source's centre, with their magnifications.
imgs, mu = image_positions(lens, src["x"], src["y"], **p)
ax1.plot(imgs[:, 0], imgs[:, 1], "c+", ms=14, mew=2)
for (x, y), m in zip(imgs.to_value(u.arcsec), mu):
    print(f"image at ({x:+.3f}, {y:+.3f}) arcsec, magnification {m:+.2f}")
back = ray_trace(lens, imgs[:, 0], imgs[:, 1], **p)
print("lens-equation residual:", np.max(np.hypot(back[0].value - src["x"], back[1].value - src["y"])), "arcsec")

# %%
# An elliptical power law of the same Einstein radius and ellipticity: ``slope`` is the logarithmic
# slope of the 3-D density (2 is the SIE).  Shallower profiles have a radial critical curve (and a
# radial caustic inside the SIE's cut); the Einstein radius, and with it the area of the tangential
# critical curve, stays about the same.
epl = lenskit.get("mass_model", "epl")()
q = dict(theta_E=1.2, e1=0.12, e2=-0.06, x0=0.05, y0=0.0)
fig, (ax3, ax4) = plt.subplots(1, 2, figsize=(10, 5))
for slope, colour in ((1.8, "C2"), (2.0, "C0"), (2.2, "C3")):
    for j, cc in enumerate(critical_curves(epl, slope=slope, **q)):
        ax3.plot(cc[:, 0], cc[:, 1], color=colour, ls="-" if j == 0 else "--",
                 label=f"slope {slope}" if j == 0 else None)
    for j, cs in enumerate(caustics(epl, slope=slope, **q)):
        ax4.plot(cs[:, 0], cs[:, 1], color=colour, ls="-" if j == 0 else "--")
ax3.set(title="EPL critical curves (dashed: radial)", xlabel="x [arcsec]", ylabel="y [arcsec]", aspect="equal")
ax3.legend()
ax4.set(title="caustics and cuts", xlabel="x [arcsec]", aspect="equal")
plt.show()
