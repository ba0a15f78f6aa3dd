"""The estimators whose weights ship inside lenskit."""

import os
from pathlib import Path

import torch

from lenskit.core.exceptions import LenskitPluginError
from lenskit.core.interfaces import Estimator
from lenskit.core.validation import indefinite as _a
from lenskit.core.weights import ModelWeights
from lenskit.estimators.cnn import CNNEstimator
from lenskit.io.asdf import read
from lenskit.plugins import get

__all__ = ["WEIGHTS_DIR", "shipped", "load_estimator"]

WEIGHTS_DIR = Path(__file__).parent / "weights"
ALIASES = {"hst": "hst_wfc3", "lsst": "lsst_gri", "euclid": "euclid_vis", "default": "hst_wfc3",
           "deeplens": "deeplens_lsst_g", "finder": "deeplens_lsst_g"}


def shipped() -> list[str]:
    """Names of the estimators with shipped weights."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.asdf"))


def load_estimator(name: str | os.PathLike = "hst_wfc3", device: str | torch.device = "cpu") -> Estimator:
    """
    Load a pretrained estimator shipped with lenskit, or one saved to a file.

    Parameters
    ----------
    name : str or path
        ``"hst_wfc3"`` (HST WFC3 192 x 192, the setting of Hezaveh et al.),
        ``"lsst_gri"`` (LSST g, r, i 57 x 57, with lens light; trained
        among PSFs of every shape near the median seeing),
        ``"lsst_gri_robust"`` (the same, trained on the wide population of
        ``presets.robust``: 2.6 times more accurate on lenses from another
        simulator, 1.4 times less on lenskit's own, 1.2 times where the
        other simulator's sources lie),
        ``"lsst_gri_robust_psf"`` (``lsst_gri_robust`` fine-tuned reading
        each image's PSF FWHM, ``conditions=["psf_fwhm"]``: 7-8% more
        accurate on both simulators' lenses; give it the seeing of real
        images with ``predict(conditions={"psf_fwhm": ...})``),
        ``"lsst_gri_psf"`` (``lsst_gri`` fine-tuned reading each image's
        PSF FWHM among robust PSFs and lens light: as accurate on
        lenskit's own lenses, 8% more on another simulator's; give it the seeing with
        ``predict(conditions={"psf_fwhm": ...})``),
        ``"euclid_vis"`` (Euclid VIS 57 x 57, with lens light),
        ``"lsst_gri_no_lens_light"`` and ``"euclid_vis_no_lens_light"`` (the
        same without lens light: for arcs after lens-light subtraction),
        ``"lsst_gri_no_lens_light_psf"`` (``lsst_gri_no_lens_light``
        fine-tuned reading each image's PSF FWHM among a tenth of Moffat
        PSFs: 5% more accurate on another simulator's lenses, 2% less on
        lenskit's own; give it the seeing with
        ``predict(conditions={"psf_fwhm": ...})``),
        ``"lsst_gri_no_lens_light_robust"`` (the LSST one trained on
        ``presets.robust``: 1.9 times more accurate on lenses from another
        simulator, 1.3 times less on lenskit's own, 1.1 times where the
        other simulator's sources lie),
        ``"deeplens_lsst_g"`` (the lens finder, LSST g 45 x 45 single epochs;
        alias ``"finder"``), ``"deeplens_lsst_g_robust"`` (the same finder
        fine-tuned on ``presets.lanusse2018(robust=True)``: on cutouts from
        another simulator its completeness is 0.79 instead of 0.38, on
        lenskit's own 0.86 instead of 0.90, and it holds at single-visit
        seeing), or the path of an ``.asdf`` file
        written by ``Estimator.save``.  `shipped` lists the names.
    device : str

    Returns
    -------
    `~lenskit.estimators.regression.CNNEstimator`
        With its training recipe in ``.training`` and measured test metrics
        in ``.metrics``.
    """

    p = Path(str(name))
    if p.suffix == ".asdf" and p.exists():
        path = p
    else:
        key = ALIASES.get(str(name), str(name))
        path = WEIGHTS_DIR / f"{key}.asdf"
        if not path.exists():
            raise LenskitPluginError(
                f"no pretrained weights ship for {name!r} (shipped: {shipped()}); build an untrained network "
                f"with lenskit.get('estimator', {str(name)!r})() and train it with .fit(simulator, steps)")
    weights = read(path)
    if not isinstance(weights, ModelWeights):
        raise TypeError(f"name: {path} holds {_a(type(weights).__name__)}, not estimator weights (an .asdf written "
                        f"by Estimator.save)")
    kind = weights.config.get("estimator") or "cnn"
    if kind == "cnn":
        return CNNEstimator.from_weights(weights, device=device)
    try:
        klass = get("estimator", kind)  # any registered estimator, a plugin's included
    except LenskitPluginError as exc:
        raise LenskitPluginError(f"{path} holds weights of the estimator {kind!r}, which is not installed: "
                                 f"{exc}") from exc
    if not hasattr(klass, "from_weights"):
        raise TypeError(f"the estimator {kind!r} ({klass.__name__}) cannot be rebuilt from weights "
                        f"(it has no from_weights classmethod)")
    return klass.from_weights(weights, device=device)
