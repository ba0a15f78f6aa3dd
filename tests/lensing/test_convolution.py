import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lenskit.lensing.convolution import fft_convolve


def test_one_kernel_per_band_equals_direct_convolution():
    rng = np.random.default_rng(3)
    img = torch.as_tensor(rng.normal(size=(3, 2, 21, 26)))
    kern = torch.as_tensor(rng.random((2, 7, 5)))
    out = fft_convolve(img, kern)
    for b in range(2):  # conv2d is a correlation: flip the kernel
        direct = F.conv2d(img[:, b:b + 1], kern[b].flip(0, 1)[None, None], padding=(3, 2))[:, 0]
        np.testing.assert_allclose(out[:, b].numpy(), direct.numpy(), atol=1e-12)
    assert out.dtype == img.dtype and out.shape == img.shape


def test_even_kernel_is_refused():
    with pytest.raises(ValueError, match="odd"):
        fft_convolve(torch.zeros(1, 8, 8), torch.ones(4, 3))
