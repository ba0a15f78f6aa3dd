import numpy as np

from lenskit.core.statistics import robust_sigma


def test_robust_sigma_is_the_gaussian_sigma_and_ignores_outliers_and_nan():
    rng = np.random.default_rng(42)
    v = rng.normal(3.0, 2.0, 200_000)
    # the MAD estimate of sigma has a relative standard error of 1.17 / sqrt(2 N) = 0.19% here
    assert abs(robust_sigma(v) / 2.0 - 1) < 0.01
    dirty = np.concatenate([v, np.full(2000, 1e6), [np.nan, np.inf, -np.inf]])
    assert abs(robust_sigma(dirty) / 2.0 - 1) < 0.02  # 1% outliers move it by ~1%
    assert robust_sigma([np.nan, np.inf]) == 0.0
    rows = rng.normal(0, [[1.0], [5.0]], (2, 50_000))
    rows[0, :10] = np.nan
    np.testing.assert_allclose(robust_sigma(rows, axis=1), [robust_sigma(rows[0]), robust_sigma(rows[1])])
