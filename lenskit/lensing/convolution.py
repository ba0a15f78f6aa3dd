"""Convolution of image stacks (torch kernels)."""

import torch
from scipy.fft import next_fast_len

__all__ = ["fft_convolve"]


def fft_convolve(images, kernel, fast_size=False):
    """
    Convolve (..., H, W) images with an odd-sized kernel, zero padding, output the same size ('same').

    The one FFT convolution of lenskit (image PSFs in the simulator, the PSF
    of `lenskit.fit`).  ``kernel`` is (kh, kw) or broadcasts against the
    images' leading dimensions (one kernel per band: (bands, kh, kw) for
    (N, bands, H, W) images).  By FFT: exact to rounding, and in float64 tens
    of times faster than ``conv2d`` on the CPU (which has no fast float64
    path); differentiable; on the images' device and in their dtype.
    ``fast_size=True`` pads to the next 2, 3, 5-smooth sizes (same result to
    rounding, several times faster for awkward sizes such as 57 + 31 - 1 = 87);
    the default keeps the minimal padding, so that fits reproduce bit for bit.
    """
    if kernel.shape[-2] % 2 == 0 or kernel.shape[-1] % 2 == 0:
        raise ValueError(f"kernel must have odd sizes (centred); got shape {tuple(kernel.shape)}")
    h, w = images.shape[-2:]
    kh, kw = kernel.shape[-2:]
    ph, pw = h + kh - 1, w + kw - 1
    if fast_size:  # pad further, to 2, 3, 5-smooth sizes: the same result to rounding, faster FFTs
        ph, pw = next_fast_len(ph, real=True), next_fast_len(pw, real=True)
    fi = torch.fft.rfft2(images, s=(ph, pw))
    fk = torch.fft.rfft2(kernel.to(device=images.device, dtype=images.dtype), s=(ph, pw))
    full = torch.fft.irfft2(fi * fk, s=(ph, pw))
    return full[..., kh // 2:kh // 2 + h, kw // 2:kw // 2 + w]
