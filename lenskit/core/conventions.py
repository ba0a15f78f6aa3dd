"""
Parameter conventions and converters.

lenskit describes an elliptical profile by the spin-2 ellipticity components

.. math::

    e_1 = \\frac{1-q}{1+q}\\cos 2\\phi, \\qquad e_2 = \\frac{1-q}{1+q}\\sin 2\\phi,

where :math:`q \\in (0, 1]` is the minor-to-major axis ratio and :math:`\\phi`
the major-axis angle, counter-clockwise from +x.  These are the conventions of
lenstronomy, caustics, herculens and COOLEST.  The Einstein radius
``theta_E`` is the intermediate-axis normalisation (geometric mean of the
critical ellipse's semi-axes).

Converters to the conventions of other codes and papers live here too.
"""

import numpy as np

__all__ = [
    "ellipticity_to_q_phi",
    "q_phi_to_ellipticity",
    "pearson_to_lenskit_ellipticity",
    "lenskit_to_pearson_ellipticity",
    "theta_E_to_pyautolens",
    "pyautolens_to_theta_E",
    "position_angle_to_phi",
    "phi_to_position_angle",
]


def ellipticity_to_q_phi(e1, e2):
    """
    Convert spin-2 ellipticity components to axis ratio and angle.

    Parameters
    ----------
    e1, e2 : float or array-like
        Ellipticity components, ``e = (1-q)/(1+q)``.

    Returns
    -------
    q : float or ndarray
        Axis ratio in (0, 1].
    phi : float or ndarray
        Major-axis angle in radians, counter-clockwise from +x, in (-pi/2, pi/2].
    """
    e1 = np.asarray(e1, dtype=float)
    e2 = np.asarray(e2, dtype=float)
    c = np.hypot(e1, e2)
    if np.any(c >= 1):
        raise ValueError(f"ellipticity modulus sqrt(e1**2 + e2**2) must be < 1; got max {c.max()}")
    q = (1 - c) / (1 + c)
    phi = 0.5 * np.arctan2(e2, e1)
    return q, phi


def q_phi_to_ellipticity(q, phi):
    """
    Convert axis ratio and angle to spin-2 ellipticity components.

    Parameters
    ----------
    q : float or array-like
        Axis ratio in (0, 1].
    phi : float or array-like
        Major-axis angle in radians, counter-clockwise from +x.

    Returns
    -------
    e1, e2 : float or ndarray
    """
    q = np.asarray(q, dtype=float)
    if np.any(~np.isfinite(q)) or np.any(q <= 0) or np.any(q > 1):
        raise ValueError(f"q must lie in (0, 1]; got {q}")
    c = (1 - q) / (1 + q)
    return c * np.cos(2 * phi), c * np.sin(2 * phi)


def pearson_to_lenskit_ellipticity(e1_p, e2_p):
    """
    Convert Pearson et al. (2019) ellipticity, ``(1-q^2)/(1+q^2)``, to lenskit's.

    Parameters
    ----------
    e1_p, e2_p : float or array-like
        Components with modulus ``(1-q**2)/(1+q**2)``.

    Returns
    -------
    e1, e2 : float or ndarray
        Components with modulus ``(1-q)/(1+q)``, same angle.
    """
    e1_p = np.asarray(e1_p, dtype=float)
    e2_p = np.asarray(e2_p, dtype=float)
    m = np.hypot(e1_p, e2_p)
    q = np.sqrt((1 - m) / (1 + m))
    c = (1 - q) / (1 + q)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(m > 0, c / np.where(m > 0, m, 1), 0.0)
    return e1_p * scale, e2_p * scale


def lenskit_to_pearson_ellipticity(e1, e2):
    """Inverse of :func:`pearson_to_lenskit_ellipticity`."""
    q, phi = ellipticity_to_q_phi(e1, e2)
    m = (1 - q**2) / (1 + q**2)
    return m * np.cos(2 * phi), m * np.sin(2 * phi)


def theta_E_to_pyautolens(theta_E, q):
    """PyAutoLens' ``einstein_radius`` = theta_E (1+q) / (2 sqrt q)."""
    return np.asarray(theta_E) * (1 + np.asarray(q)) / (2 * np.sqrt(q))


def pyautolens_to_theta_E(einstein_radius, q):
    """Inverse of :func:`theta_E_to_pyautolens`."""
    return np.asarray(einstein_radius) * 2 * np.sqrt(q) / (1 + np.asarray(q))


def position_angle_to_phi(pa_deg, wcs=None):
    """
    Convert a position angle east of north to lenskit's ``phi`` through a WCS.

    Parameters
    ----------
    pa_deg : float or array-like
        Position angle of the major axis in degrees, east of north.
    wcs : `astropy.wcs.WCS`, optional
        Celestial WCS of the image.  Without one, the image is assumed
        north-up with east to the left (x grows to the west), the usual
        orientation of HST drizzled products.

    Returns
    -------
    phi : ndarray
        Angle in radians, counter-clockwise from the image's +x axis.
    """
    pa = np.deg2rad(np.asarray(pa_deg, dtype=float))
    # unit vector of the major axis on the sky in (east, north) coordinates
    east, north = np.sin(pa), np.cos(pa)
    if wcs is None:
        # x grows to the west: dx = -east, dy = north
        dx, dy = -east, north
    else:
        cd = wcs.celestial.pixel_scale_matrix  # d(world)/d(pixel) in degrees; world = (ra, dec)
        inv = np.linalg.inv(cd)
        # east is +RA direction on the tangent plane
        dx = inv[0, 0] * east + inv[0, 1] * north
        dy = inv[1, 0] * east + inv[1, 1] * north
    phi = np.arctan2(dy, dx)
    # a major axis is a line: fold into (-pi/2, pi/2]
    phi = np.where(phi > np.pi / 2, phi - np.pi, phi)
    phi = np.where(phi <= -np.pi / 2, phi + np.pi, phi)
    return phi


def phi_to_position_angle(phi, wcs=None):
    """
    Convert lenskit's ``phi`` to a position angle east of north through a WCS: the inverse of `position_angle_to_phi`.

    Parameters
    ----------
    phi : float or array-like
        Major-axis angle in radians, counter-clockwise from the image's +x axis.
    wcs : `astropy.wcs.WCS`, optional
        Celestial WCS of the image (default: north-up, x growing to the west).

    Returns
    -------
    pa : ndarray
        Position angle in degrees east of north, in [0, 180).
    """
    phi = np.asarray(phi, dtype=float)
    dx, dy = np.cos(phi), np.sin(phi)
    if wcs is None:
        east, north = -dx, dy
    else:
        cd = wcs.celestial.pixel_scale_matrix
        east = cd[0, 0] * dx + cd[0, 1] * dy
        north = cd[1, 0] * dx + cd[1, 1] * dy
    pa = np.rad2deg(np.arctan2(east, north)) % 180.0
    return np.where(pa > 180.0 - 1e-9, 0.0, pa)  # rounding just below 180 is the same line as 0
