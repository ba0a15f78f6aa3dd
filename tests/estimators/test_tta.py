"""Test-time augmentation: the parameter maps are checked against re-rendered lens models."""

import numpy as np
import pytest
import torch

import lenskit
from lenskit.estimators.regression import CNNEstimator
from lenskit.estimators.tta import DIHEDRAL, check_targets, transform_images, untransform
from lenskit.instruments.hst import HSTWFC3

NAMES = ("theta_E", "e1", "e2", "x0", "y0", "gamma1", "gamma2")


def _render(inst, p):
    """Convergence of an SIE plus the shear's potential curvature, on the instrument's pixel grid (rows = y)."""
    sie = lenskit.get("mass_model", "sie")()
    x, y = inst.pixel_grid(dtype=torch.float64)
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    kappa = sie.convergence(xx, yy, theta_E=p[0], e1=p[1], e2=p[2], x0=p[3], y0=p[4])
    kappa = np.asarray(getattr(kappa, "value", kappa), float)
    # a spin-2 field that traces (gamma1, gamma2): gamma1 (x^2 - y^2) + 2 gamma2 x y about the centre
    dx, dy = xx.numpy() - p[3], yy.numpy() - p[4]
    return kappa + p[5] * (dx**2 - dy**2) + 2 * p[6] * dx * dy


@pytest.mark.parametrize("t", DIHEDRAL)
def test_untransform_matches_rerendered_models(t):
    """Rendering the mapped-back parameters and applying the transform gives the transformed image's model."""
    inst = HSTWFC3(shape=(64, 64))
    rng = np.random.default_rng(3)
    for _ in range(3):
        p_t = np.array([rng.uniform(0.5, 1.5), *rng.uniform(-0.3, 0.3, 2), *rng.uniform(-0.4, 0.4, 2),
                        *rng.uniform(-0.05, 0.05, 2)])
        p, _ = untransform(p_t[None], None, NAMES, t)
        np.testing.assert_allclose(transform_images(_render(inst, p[0]), t), _render(inst, p_t), atol=1e-9)
        # theta_E is invariant; |e| and |gamma| are kept
        assert p[0, 0] == p_t[0] and np.hypot(*p[0, 1:3]) == pytest.approx(np.hypot(*p_t[1:3]))


def test_untransform_errors_follow_components():
    sd = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]])
    _, back = untransform(np.zeros((1, 7)), sd, NAMES, (True, False, False))  # x and y swap
    np.testing.assert_allclose(back[0], [0.1, 0.2, 0.3, 0.5, 0.4, 0.6, 0.7])


def test_check_targets_refuses_what_it_cannot_map():
    check_targets(("theta_E", "e1", "e2", "x0", "y0"), 8, (1, 32, 32))
    with pytest.raises(ValueError, match="1, 2, 4 or 8"):
        check_targets(("theta_E",), 3, (1, 32, 32))
    with pytest.raises(ValueError, match="square"):
        check_targets(("theta_E",), 8, (1, 32, 40))
    with pytest.raises(ValueError, match="phi"):
        check_targets(("theta_E", "phi"), 2, (1, 32, 32))
    with pytest.raises(ValueError, match="both"):
        check_targets(("theta_E", "x0"), 2, (1, 32, 32))
    check_targets(("phi",), 1, (1, 32, 40))  # no augmentation: anything goes


def test_predict_with_tta_is_invariant_to_the_symmetries():
    """Averaged over all eight symmetries, a (random, untrained) network's estimate is exactly equivariant."""
    torch.manual_seed(0)
    est = CNNEstimator("lenskit_net", in_shape=(1, 48, 48))
    x = np.random.default_rng(1).normal(0, 1, (4, 1, 48, 48)).astype(np.float32)
    ref = est.predict(x, tta=8).table
    rot = (True, True, False)  # a 90-degree rotation
    turned = est.predict(transform_images(x, rot), tta=8).table
    mu = np.stack([np.asarray(getattr(turned[k], "value", turned[k])) for k in est.targets], 1)
    back, _ = untransform(mu, None, est.targets, rot)
    for j, k in enumerate(est.targets):
        np.testing.assert_allclose(back[:, j], np.asarray(getattr(ref[k], "value", ref[k])), atol=2e-5)
    plain = est.predict(x).table
    assert not np.allclose(plain["e1"], ref["e1"])  # the augmentation did something
    assert ref.meta is not None and "theta_E_std" in ref.colnames
    with pytest.raises(ValueError, match="tta"):
        est.predict(x, tta=3)
