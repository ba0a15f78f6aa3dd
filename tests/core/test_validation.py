import warnings

import numpy as np
import pytest

from lenskit.core.validation import check_finite


@pytest.mark.parametrize("value", [np.ones((3, 4), np.float32), np.float32(3.0), np.array([], np.float32),
                                   np.full(4, 3.4e38, np.float32),  # sums far beyond float32's range
                                   np.full(2, 1e308),  # a float64 sum that overflows: checked element by element
                                   np.ones(3, np.float16), np.array([1 + 2j]), np.arange(4)])
def test_check_finite_accepts_finite(value):
    assert check_finite("x", value) is value


@pytest.mark.parametrize("value, n_bad", [(np.array([1, np.nan], np.float32), 1),
                                          (np.array([np.inf, -np.inf, 2], np.float32), 2),  # the sum is NaN
                                          (np.array([1e308, np.inf]), 1),
                                          (np.array([np.nan], np.float16), 1),
                                          (np.array([np.nan + 0j, 1]), 1)])
def test_check_finite_counts_what_is_not(value, n_bad):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # inf - inf in the sum warns nothing
        with pytest.raises(ValueError, match=rf"x contains {n_bad} NaN or infinite value\(s\)"):
            check_finite("x", value)
