"""
Lens models to and from COOLEST, the strong-lensing community's exchange standard (Galan et al. 2023).

`to_coolest` writes an SIE (and an external shear, where the model has one)
as a COOLEST template in ``MAP`` mode -- best-fit values, with 68% intervals
from ``*_std`` columns where present; `from_coolest` reads the SIE and shear
of a COOLEST template back in lenskit's parameters.  It uses the ``coolest``
package (``pip install ".[coolest]"``, an optional dependency).

Conventions (checked in the tests against the ``coolest`` package's own
profiles, deflection for deflection):

* ``theta_E`` is the same in both (the intermediate-axis normalisation:
  kappa = theta_E / (2 sqrt(q x'^2 + y'^2 / q)));
* COOLEST's axis ratio ``q`` and angle ``phi`` (degrees, in [-90, 90]) are
  lenskit's ``q`` and ``phi + 90 deg`` (lenskit's ``phi`` is counter-clockwise
  from +x; COOLEST's from +y, east of north for a north-up image);
* ``center_x, center_y`` are lenskit's ``x0, y0``, and the shear
  ``(gamma_ext, phi_ext)`` is lenskit's ``(gamma1, gamma2)`` about the origin.

lenskit's ``(x, y)`` are taken to be COOLEST's: true for a cutout with north up
and east to the left (x growing to the west), COOLEST's orientation.
"""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from lenskit.core.conventions import ellipticity_to_q_phi, q_phi_to_ellipticity
from lenskit.core.files import check_output_path

__all__ = ["to_coolest", "from_coolest", "coolest_angle", "lenskit_angle"]


def _require():
    try:
        import coolest  # noqa: F401  optional dependency (the [coolest] extra)
    except ImportError as exc:
        raise ImportError("COOLEST files need the coolest package: pip install coolest "
                          "(or lenskit's [coolest] extra)") from exc


def coolest_angle(phi):
    """COOLEST's angle (degrees in [-90, 90)) of lenskit's ``phi`` (radians, counter-clockwise from +x)."""
    deg = np.degrees(np.asarray(phi, float)) + 90.0
    return (deg + 90.0) % 180.0 - 90.0


def lenskit_angle(phi_deg):
    """lenskit's ``phi`` (radians in [0, pi)) of COOLEST's angle in degrees."""
    return np.radians((np.asarray(phi_deg, float) - 90.0) % 180.0)


def _value(row, name):
    v = row[name] if name in _keys(row) else None
    return None if v is None else float(getattr(v, "value", v))


def _keys(row):
    return row.colnames if hasattr(row, "colnames") else list(row.keys())


def _set(param, value, std=None):
    from coolest.template.classes.probabilities import PosteriorStatistics  # optional dependency

    param.set_point_estimate(float(value))
    if std is not None and np.isfinite(std):
        param.set_posterior(PosteriorStatistics(mean=float(value), median=float(value),
                                                percentile_16th=float(value - std),
                                                percentile_84th=float(value + std)))


def to_coolest(model, path, *, pixel_scale, z_lens=0.5, z_source=2.0, prefix="", band="", instrument="",
               origin=("0h0m0.0s", "0d0m0.0s"), overwrite=False):
    """
    Write a lens model as a COOLEST template (a ``.json`` file, plain JSON).

    Parameters
    ----------
    model : table row or mapping
        lenskit parameters ``theta_E, e1, e2, x0, y0`` (and ``gamma1,
        gamma2`` for a shear; ``*_std`` columns give 68% intervals): a row of
        an `~lenskit.Estimate` table, of ``lenskit.fit(...).params`` or of a
        `~lenskit.modelling.pipeline.LensModel` table (``prefix="cnn_"`` for
        its CNN estimate).
    path : path
        The ``.json`` file to write (atomically).
    pixel_scale : float
        Arcsec per pixel of the image the model describes.
    z_lens, z_source : float
        Redshifts COOLEST records with each lensing entity.
    origin : (str, str)
        RA and Dec of the image centre (the coordinates' origin), as astropy parses them.
    overwrite : bool
    """
    _require()
    from coolest.template.classes.coordinates import CoordinatesOrigin  # optional dependency
    from coolest.template.classes.galaxy import Galaxy  # optional dependency
    from coolest.template.classes.instrument import Instrument  # optional dependency
    from coolest.template.classes.lensing_entity_list import LensingEntityList  # optional dependency
    from coolest.template.classes.mass_field import MassField  # optional dependency
    from coolest.template.classes.mass_light_model import LightModel, MassModel  # optional dependency
    from coolest.template.classes.observation import Observation  # optional dependency
    from coolest.template.json import JSONSerializer  # optional dependency
    from coolest.template.standard import COOLEST  # optional dependency

    path = Path(path)
    if path.suffix.lower() != ".json":
        raise ValueError(f"path: a COOLEST template is a .json file; got {path.name!r}")
    check_output_path(path, overwrite=overwrite, name="path")
    names = {k: prefix + k for k in ("theta_E", "e1", "e2", "x0", "y0", "gamma1", "gamma2")}
    missing = [names[k] for k in ("theta_E", "e1", "e2", "x0", "y0") if names[k] not in _keys(model)]
    if missing:
        raise ValueError(f"model: missing {missing}; expected lenskit SIE parameters theta_E, e1, e2, x0, y0")
    v = {k: _value(model, n) for k, n in names.items()}
    s = {k: _value(model, n + "_std") if n + "_std" in _keys(model) else None for k, n in names.items()}
    q, phi = (float(np.ravel(a)[0]) for a in ellipticity_to_q_phi(v["e1"], v["e2"]))

    lens = Galaxy("lens", z_lens, light_model=LightModel(), mass_model=MassModel("SIE"))
    sie = lens.mass_model[0].parameters
    _set(sie["theta_E"], v["theta_E"], s["theta_E"])
    _set(sie["q"], q)
    _set(sie["phi"], coolest_angle(phi))
    _set(sie["center_x"], v["x0"], s["x0"])
    _set(sie["center_y"], v["y0"], s["y0"])
    entities = [lens]
    if v["gamma1"] is not None and v["gamma2"] is not None:
        shear = MassField("external_shear", z_lens, mass_model=MassModel("ExternalShear"))
        g = float(np.hypot(v["gamma1"], v["gamma2"]))
        _set(shear.mass_model[0].parameters["gamma_ext"], g)
        _set(shear.mass_model[0].parameters["phi_ext"], coolest_angle(0.5 * np.arctan2(v["gamma2"], v["gamma1"])))
        entities.append(shear)
    entities.append(Galaxy("source", z_source, light_model=LightModel(), mass_model=MassModel()))
    obj = COOLEST("MAP", coordinates_origin=CoordinatesOrigin(*origin), lensing_entities=LensingEntityList(*entities),
                  observation=Observation(), instrument=Instrument(float(pixel_scale), name=instrument, band=band),
                  metadata={"generator": "lenskit"})
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        stem = os.path.join(os.path.abspath(tmp), path.stem)
        JSONSerializer(stem, obj=obj, check_external_files=False).dump_simple()
        os.replace(stem + ".json", path)
    return path


def from_coolest(path):
    """
    The SIE (and external shear) of a COOLEST template, in lenskit's parameters.

    Returns
    -------
    dict
        ``theta_E, e1, e2, x0, y0`` (arcsec where angular), ``gamma1, gamma2``
        when the template has an external shear, and ``z_lens``.
    """
    _require()
    from coolest.template.json import JSONSerializer  # optional dependency

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    with tempfile.TemporaryDirectory() as tmp:  # the reader wants a path without .json and no _pyAPI twin
        stem = os.path.join(tmp, "template")
        shutil.copyfile(path, stem + ".json")
        try:
            obj = JSONSerializer(stem, check_external_files=False).load(skip_jsonpickle=True, verbose=False)
        except Exception as exc:
            raise ValueError(f"{path} is not a readable COOLEST template: {type(exc).__name__}: {exc}") from exc
    out = {}
    for entity in obj.lensing_entities:
        for profile in getattr(entity, "mass_model", []) or []:
            p = profile.parameters
            if profile.type == "SIE" and "theta_E" not in out:
                val = {k: p[k].point_estimate.value for k in ("theta_E", "q", "phi", "center_x", "center_y")}
                e1, e2 = (float(np.ravel(a)[0]) for a in q_phi_to_ellipticity(val["q"], lenskit_angle(val["phi"])))
                out.update(theta_E=float(val["theta_E"]), e1=e1, e2=e2, x0=float(val["center_x"]),
                           y0=float(val["center_y"]), z_lens=float(entity.redshift))
            elif profile.type == "ExternalShear" and "gamma1" not in out:
                g, ang = p["gamma_ext"].point_estimate.value, lenskit_angle(p["phi_ext"].point_estimate.value)
                out.update(gamma1=float(g * np.cos(2 * ang)), gamma2=float(g * np.sin(2 * ang)))
    if "theta_E" not in out:
        raise ValueError(f"{path} holds no SIE mass profile")
    return out
