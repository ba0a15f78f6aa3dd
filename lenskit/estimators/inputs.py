"""
What a network is given: images checked against the estimator's ``expects``.

A network answers for the data it was trained on.  Given images from another
instrument, another pixel scale, bands in another order or with lens light it
never saw, it still returns numbers, confidently wrong ones (the Euclid
estimator on an LSST r-band stamp answers half the true Einstein radius).  So
before any work `check_expects` compares what a `~lenskit.LensDataset`
records (instrument, bands, pixel scale and, for simulated data, whether the
lens light is in the images) with what the estimator records, and refuses a
mismatch with a message that says what to do instead.  Plain arrays carry no
such record: only their shape is checked.
"""

import warnings

import numpy as np

from lenskit.core.dataset import UNKNOWN_BAND, LensDataset
from lenskit.core.validation import check_images

__all__ = ["check_expects", "network_inputs", "as_masks", "PIXEL_SCALE_RTOL"]

#: Relative pixel-scale difference tolerated between the data and ``expects``.
PIXEL_SCALE_RTOL = 0.01

_NO_LIGHT = (False, "subtracted", "residual", "deblended")


def _has_lens_light(dataset):
    """True / False / "subtracted" when the dataset says so (simulated data), else None."""
    cfg = dataset.provenance.config if dataset.provenance is not None else {}
    value = cfg.get("lens_light") if isinstance(cfg, dict) else None
    if value is None and "lens_light" in dataset.truth:
        return True
    return value


def check_expects(data, expects, what="estimator", strict=True):
    """
    Refuse a `~lenskit.LensDataset` whose recorded set-up differs from ``expects``.

    Compared, where both sides record them: the pixel scale (to
    `PIXEL_SCALE_RTOL`), the band names and their order (bands named
    `UNKNOWN_BAND` match any), the instrument name, and whether the images
    hold the lens galaxy's light.

    Parameters
    ----------
    data : `~lenskit.LensDataset` or array
        Arrays pass unchecked (they record nothing).
    expects : dict
        The estimator's ``expects``.
    what : str
        "estimator" or "finder", for the messages.
    strict : bool
        Raise `ValueError` (default); False warns instead.

    Returns
    -------
    list of str
        The mismatches found (empty when none).
    """
    if not isinstance(data, LensDataset) or not expects:
        return []
    problems = []
    want = expects.get("pixel_scale")
    if want is not None:
        have = float(data.pixel_scale.to_value("arcsec"))
        if abs(have - float(want)) > PIXEL_SCALE_RTOL * float(want):
            problems.append(f"pixel_scale: the images have {have:g}\"/px, this {what} was trained on {want:g}\"/px; "
                            f"resample them onto its grid first (lenskit.io.fits.Cutout.resample, or "
                            f"lenskit.pipeline.model_lens for a real cutout)")
    want = expects.get("bands")
    if want is not None:
        have = list(data.bands)
        want = [str(b) for b in want]
        known = all(b != UNKNOWN_BAND for b in have)
        if len(have) == len(want) and known and have != want:
            if sorted(have) == sorted(want):
                problems.append(f"bands: the images hold bands {have}, this {what} expects them in the order {want}; "
                                f"reorder the band axis (images[:, order])")
            else:
                hint = ""
                if len(want) == 1:  # one real cutout: its header's filter may name a like band otherwise
                    hint = (f"; for an image taken through a filter like {want[0]!r}, say so "
                            f"(model_lens(..., band={want[0]!r}) or Cutout.to_dataset(band={want[0]!r}), "
                            f"`--band {want[0]}` on the command line)")
                problems.append(f"bands: the images hold bands {have}, this {what} was trained on {want}{hint}")
    want = expects.get("instrument")
    if want is not None and data.instrument is not None and data.instrument != want:
        problems.append(f"instrument: the images come from {data.instrument!r}, this {what} was trained on "
                        f"{want!r}; use an estimator trained for {data.instrument!r} "
                        f"(lenskit.estimators.pretrained.shipped())")
    if "lens_light" in expects:
        want, have = expects["lens_light"], _has_lens_light(data)
        if have == "unknown":  # a real cutout: nothing says whether its lens light is there
            if want in _NO_LIGHT:
                problems.append(f"lens_light: a real cutout does not say whether it holds the lens galaxy's light, "
                                f"and this {what} expects it removed; run it through lenskit.modelling.model_lens "
                                f"(`lenskit model CUTOUT.fits`), which removes it first; for an image whose lens "
                                f"light is already removed, model_lens(cutout, deblend=False) (`lenskit estimate "
                                f"--no-lens-light`, `lenskit model --no-deblend`), which centres the stamp on the "
                                f"cutout's middle, or record that it has none (Cutout.to_dataset(lens_light=False))")
        elif have is not None and (want in _NO_LIGHT) != (have in _NO_LIGHT):
            if want in _NO_LIGHT:
                problems.append(f"lens_light: the images hold the lens galaxy's light, this {what} expects arcs with "
                                f"the lens light removed; deblend them first (lenskit.get('deblender', 'sersic') or "
                                f"'ica', or lenskit.pipeline.model_lens), or use an estimator trained with lens light")
            else:
                problems.append(f"lens_light: the images have no lens light ({have!r}), this {what} was trained on "
                                f"images with it; use its *_no_lens_light twin")
    if problems:
        text = (f"these images do not suit this {what} ({len(problems)} mismatch(es) between the dataset and the "
                f"{what}'s expects): " + "; ".join(problems) +
                ". Pass strict=False to estimate anyway (the answers will be biased).")
        if strict:
            raise ValueError(text)
        warnings.warn(text, UserWarning, stacklevel=3)
    return problems


def as_masks(masks, shape, name="masks"):
    """
    ``masks`` (True = masked; 0/1 integers accepted) as a boolean array broadcast to the images' ``shape``
    (N, bands, H, W) from that shape or (N, H, W) (a read-only view), or an error naming ``name``.
    """
    m = np.asarray(masks)
    if m.dtype.kind in "iu" and np.isin(m, (0, 1)).all():
        m = m.astype(bool)
    if m.dtype != bool:
        raise TypeError(f"{name} must be boolean (True = masked); got dtype {m.dtype}")
    if m.ndim == 3:
        m = m[:, None]
    try:
        return np.broadcast_to(m, shape)
    except ValueError:
        raise ValueError(f"{name} must be shaped like images {tuple(shape)} or (N, H, W); got {np.shape(masks)}") \
            from None


def network_inputs(images, masks, in_shape, what="estimator", expects=None, strict=True):
    """
    Images (and masks) for a network expecting ``in_shape`` = (bands, H, W).

    Accepts arrays or a `~lenskit.LensDataset` (whose masks are used when
    ``masks`` is None, and whose instrument, bands, pixel scale and lens light
    are compared with ``expects`` by `check_expects`).  Masks may be (N, H, W)
    or (N, bands, H, W); NaNs are allowed only under them and masked pixels are
    set to 0.  An image whose every pixel is masked is refused, and so is one
    with a band whose unmasked pixels all hold one value (a blank or
    constant plane, such as a band filled with zeros): there is nothing to
    estimate from, and a network would answer it with its prior's middle.

    Returns
    -------
    images : ndarray (float32), masks : ndarray of bool or None
    """
    if isinstance(images, LensDataset):
        check_expects(images, expects, what, strict=strict)
        if masks is None:
            masks = images.masks
        images = images.images
    arr = check_images(images, "images", allow_nan=masks is not None)
    if tuple(arr.shape[1:]) != tuple(in_shape):
        raise ValueError(f"images must be shaped (N, {', '.join(map(str, in_shape))}) for this {what} "
                         f"(trained for {expects or {}}); got {arr.shape}. Resample real cutouts onto its grid "
                         f"first (lenskit.io.fits).")
    m = None
    if masks is not None:
        m = as_masks(masks, arr.shape)
        blind = np.flatnonzero(m.reshape(len(m), -1).all(axis=1))
        if len(blind):
            raise ValueError(f"masks cover every pixel of {len(blind)} image(s) (indices {blind[:10].tolist()}): "
                             f"there is no data to estimate from")
        bad = ~np.isfinite(arr) & ~m
        if bad.any():
            raise ValueError(f"images contain {int(bad.sum())} NaN or infinite pixel(s) outside the masks")
        _refuse_constant_planes(arr, m)
        arr = np.where(m, 0.0, arr).astype(np.float32)
    else:
        _refuse_constant_planes(arr, None)
    return arr, m


def _refuse_constant_planes(arr, masks):
    """A ValueError naming the images and bands whose unmasked pixels all hold one value."""
    n, nb = arr.shape[:2]
    flat = arr.reshape(n, nb, -1)
    if masks is None:
        hi, lo = flat.max(axis=2), flat.min(axis=2)
    else:
        mf = masks.reshape(n, nb, -1)
        hi, lo = np.where(mf, -np.inf, flat).max(axis=2), np.where(mf, np.inf, flat).min(axis=2)
    flat_planes = np.argwhere(hi == lo)  # a plane masked throughout has hi < lo: refused above, or a masked band
    if len(flat_planes):
        where = ", ".join(f"image {i} band {b}" for i, b in flat_planes[:10].tolist())
        raise ValueError(f"images: {len(flat_planes)} band(s) hold one value in every unmasked pixel ({where}"
                         f"{', ...' if len(flat_planes) > 10 else ''}, e.g. {float(hi[tuple(flat_planes[0])]):g}): "
                         f"a blank or constant plane has nothing to estimate from")
