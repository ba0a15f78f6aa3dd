"""
What in a cutout is not the lens: artefacts sharper than the PSF (cosmic rays, hot pixels: L.A.Cosmic's
Laplacian edge detection) and sources beyond where a lens's images can lie (`neighbour_mask`).
"""

import numpy as np
from scipy import ndimage

__all__ = ["outlier_mask", "neighbour_mask"]


def outlier_mask(image, noise, threshold=5.0, objlim=3.0, iterations=3, grow=1):
    """
    Cosmic rays, hot pixels and other artefacts sharper than the PSF (True), in one exposure or band.

    The Laplacian edge detection of L.A.Cosmic (van Dokkum 2001): the image
    is block-replicated 2 x 2, convolved with a Laplacian kernel (negative
    values set to 0) and block-averaged back; in units of the noise and with
    its 5 x 5 median removed, pixels above ``threshold`` are candidates.  A
    candidate is kept when the Laplacian exceeds ``objlim`` times the image's
    fine structure (3 x 3 median minus the 7 x 7 median of that), which is
    large for PSF-limited stars and galaxy cores and small for artefacts,
    elongated cosmic-ray tracks included.  Repeated ``iterations`` times, each
    time on the image with the found pixels replaced by their 5 x 5 median;
    flagged pixels are grown by ``grow`` pixels.
    """
    img = np.asarray(image, float)
    sig = np.broadcast_to(np.asarray(noise, float), img.shape)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D; got shape {img.shape}")
    if not threshold > 0 or not objlim > 0:
        raise ValueError(f"threshold and objlim must be > 0; got {threshold}, {objlim}")
    good = np.isfinite(img) & np.isfinite(sig) & (sig > 0)
    s = np.where(good, sig, np.inf)
    x = np.where(good, img, 0.0)
    lap = np.array([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
    flag = np.zeros(img.shape, bool)
    for _ in range(int(iterations)):
        sub = np.kron(x, np.ones((2, 2)))
        L = np.clip(ndimage.convolve(sub, lap, mode="nearest"), 0, None)
        L = L.reshape(img.shape[0], 2, img.shape[1], 2).mean(axis=(1, 3))
        S = L / (2 * s)
        S = S - ndimage.median_filter(S, size=5)
        m3 = ndimage.median_filter(x, size=3)
        fine = np.maximum(m3 - ndimage.median_filter(m3, size=7), 0.01 * s.min() if np.isfinite(s.min()) else 1e-30)
        new = good & ~flag & (S > threshold) & (L / fine > objlim)
        if not new.any():
            break
        flag |= new
        x = np.where(flag, ndimage.median_filter(x, size=5), x)
    if grow and flag.any():
        flag = ndimage.binary_dilation(flag, iterations=int(grow))
    return flag


def neighbour_mask(image, noise, centre, radius, mask=None, nsigma=4.0, grow=3):
    """
    Pixels of sources farther than ``radius`` pixels from ``centre`` (True): neighbours, not the lens.

    A pixel belongs to a source when the 3 x 3 mean of the image in units of
    the noise exceeds ``nsigma`` times that mean's own robust scatter over the
    cutout (measured, so that correlated noise -- a drizzled image's -- raises
    the threshold with it); sources are grown by ``grow`` pixels.  Of those
    pixels, the ones beyond ``radius`` from ``centre`` are returned: whatever
    lies there cannot be an image of the lens's source when the radius is
    beyond its images (see `~lenskit.modelling.model_lens`).

    Parameters
    ----------
    image, noise : ndarray (H, W)
        The cutout (its lens light removed or not) and its 1-sigma noise map.
    centre : (float, float)
        Pixel (x, y) of the lens centre.
    radius : float
        Pixels.
    mask : ndarray of bool, optional
        Pixels to ignore (masked artefacts, pixels without data).
    nsigma : float
        Detection threshold.
    grow : int
        Pixels by which detections are grown.

    Returns
    -------
    ndarray of bool (H, W)
    """
    img = np.asarray(image, float)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D; got shape {img.shape}")
    sig = np.broadcast_to(np.asarray(noise, float), img.shape)
    if not nsigma > 0 or not radius >= 0:
        raise ValueError(f"nsigma must be > 0 and radius >= 0; got {nsigma}, {radius}")
    good = np.isfinite(img) & np.isfinite(sig) & (sig > 0)
    if mask is not None:
        good &= ~np.asarray(mask, bool)
    if good.sum() < 9:
        return np.zeros(img.shape, bool)
    z = np.where(good, img / np.where(good, sig, 1.0), 0.0)
    weight = ndimage.uniform_filter(good.astype(float), 3, mode="constant")
    mean = np.where(weight > 0, ndimage.uniform_filter(z, 3, mode="constant") / np.maximum(weight, 1e-12), 0.0)
    vals = mean[good]
    centre_val = np.median(vals)
    scatter = 1.4826 * np.median(np.abs(vals - centre_val))
    if not scatter > 0:
        return np.zeros(img.shape, bool)
    found = good & (mean - centre_val > nsigma * scatter)
    if grow and found.any():
        found = ndimage.binary_dilation(found, iterations=int(grow))
    yy, xx = np.indices(img.shape)
    return found & (np.hypot(xx - float(centre[0]), yy - float(centre[1])) > radius)
