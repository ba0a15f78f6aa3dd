"""
Test-time augmentation: average an estimator over the symmetries of the pixel grid.

A lens image rotated by 90 or 180 degrees, or mirrored, is another valid lens
image whose parameters are known functions of the original's: the Einstein
radius is unchanged, the centre moves with the pixels and the spin-2
ellipticity turns twice as fast as the image (and flips sign of ``e2`` in a
mirror).  A network trained with random orientations is not exactly
equivariant, so its estimates on the eight transformed copies differ;
mapping them back and averaging removes part of that scatter, at the cost of
one network pass per copy.

The coordinate origin is the centre of the stamp, ``x`` runs along columns
and ``y`` along rows (lenskit's conventions), so every transform is exact on
the pixel grid (a square stamp is needed for the four that swap the axes).
"""

import numpy as np

__all__ = ["DIHEDRAL", "transform_images", "untransform", "check_targets"]

#: The eight symmetries of a square grid as (transpose, mirror x, mirror y), ordered so
#: that the first 2 (identity, 180 degrees) and the first 4 (and the two mirrors) are groups
#: of their own that already treat x and y alike.
DIHEDRAL = ((False, False, False), (False, True, True), (False, True, False), (False, False, True),
            (True, False, False), (True, True, True), (True, True, False), (True, False, True))

#: Pairs that move with the pixels like a position, and pairs that are spin-2 quantities.
POSITION_PAIRS = (("x0", "y0"), ("source_x", "source_y"))
SPIN2_PAIRS = (("e1", "e2"), ("gamma1", "gamma2"), ("light_e1", "light_e2"))
#: Targets that a rotation or a mirror leaves unchanged.
INVARIANT = {"theta_E", "q", "gamma", "sigma_v", "z_lens", "z_source", "source_mag", "lens_mag", "magnification",
             "light_R_e", "light_n", "source_size", "arc_snr", "p_lens"}


def _matrix(t):
    """The 2 x 2 map r -> r' of a (transpose, mirror x, mirror y) transform on (x, y)."""
    transpose, fx, fy = t
    a = np.array([[0.0, 1.0], [1.0, 0.0]]) if transpose else np.eye(2)
    return np.diag([-1.0 if fx else 1.0, -1.0 if fy else 1.0]) @ a


def _spin2_matrix(t):
    """The 2 x 2 map taking a spin-2 pair measured on the transformed image back to the original's."""
    inv = _matrix(t).T  # orthogonal
    cols = []
    for phi in (0.0, np.pi / 4):  # (e1, e2) = (1, 0) and (0, 1)
        d = inv @ np.array([np.cos(phi), np.sin(phi)])
        back = np.arctan2(d[1], d[0])
        cols.append([np.cos(2 * back), np.sin(2 * back)])
    return np.round(np.array(cols).T, 12)


def check_targets(names, n, shape):
    """Raise ValueError unless ``n`` transforms can be averaged for these targets and stamp shape."""
    if n not in (1, 2, 4, 8):
        raise ValueError(f"tta must be 1, 2, 4 or 8 (symmetries of the pixel grid averaged); got {n!r}")
    if n == 8 and shape[-1] != shape[-2]:
        raise ValueError(f"tta=8 swaps the image axes and needs square stamps; got {tuple(shape[-2:])}")
    if n == 1:
        return
    paired = {name for pair in POSITION_PAIRS + SPIN2_PAIRS for name in pair}
    unknown = [t for t in names if t not in INVARIANT and t not in paired]
    if unknown:
        raise ValueError(f"tta does not know how the targets {unknown} change under rotations and mirrors; use tta=1")
    for pair in POSITION_PAIRS + SPIN2_PAIRS:
        if (pair[0] in names) != (pair[1] in names):
            raise ValueError(f"tta needs both of {pair} among the targets; use tta=1")


def transform_images(arr, t):
    """Apply the transform ``t`` of `DIHEDRAL` to (..., H, W) arrays (a view where possible)."""
    transpose, fx, fy = t
    out = np.swapaxes(arr, -1, -2) if transpose else arr
    if fx:
        out = out[..., :, ::-1]
    if fy:
        out = out[..., ::-1, :]
    return np.ascontiguousarray(out)


def untransform(mu, sd, names, t):
    """
    Map estimates made on an image transformed by ``t`` back to the original image.

    ``mu`` and ``sd`` (or None) are (N, k) arrays over ``names`` in lenskit's
    conventions; returns new arrays.
    """
    mu = np.array(mu, dtype=float, copy=True)
    sd = None if sd is None else np.array(sd, dtype=float, copy=True)
    for pairs, m in ((POSITION_PAIRS, _matrix(t).T), (SPIN2_PAIRS, _spin2_matrix(t))):
        for a, b in pairs:
            if a not in names:
                continue
            idx = [names.index(a), names.index(b)]
            mu[:, idx] = mu[:, idx] @ m.T
            if sd is not None:
                sd[:, idx] = sd[:, idx] @ np.abs(m).T  # signed permutations: the errors follow the components
    return mu, sd
