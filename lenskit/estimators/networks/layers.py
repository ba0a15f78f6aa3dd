"""Layers shared by lenskit's networks."""

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MinSubtraction", "ScaleNormalization", "NoiseStretch", "CoordinateChannels", "InputStage"]


class MinSubtraction(nn.Module):
    """
    The first layer of Hezaveh et al. (2017): remove the image's intensity bias.

    Each band is filtered with a flat ``size x size`` filter and the minimum of
    the filtered map, over pixels not masked, is subtracted from the image.
    Masked pixels (``mask`` True) are excluded from the minimum and set to 0.
    """

    def __init__(self, size=4):
        super().__init__()
        self.size = int(size)

    def forward(self, x, mask=None):
        n, b, h, w = x.shape
        k = self.size
        # 'same'-sized box filter (even kernels pad one more on the right/bottom)
        xp = F.pad(x, ((k - 1) // 2, k // 2, (k - 1) // 2, k // 2), mode="replicate")
        filt = F.avg_pool2d(xp, k, stride=1)
        if mask is not None:
            mask = mask.to(torch.bool)
            # a filtered pixel is excluded when any pixel under the filter is masked
            mp = F.pad(mask.to(x.dtype), ((k - 1) // 2, k // 2, (k - 1) // 2, k // 2))
            touched = F.max_pool2d(mp, k, stride=1) > 0
            filt = filt.masked_fill(touched, float("inf"))
        mins = filt.reshape(n, b, -1).amin(2)
        mins = torch.where(torch.isfinite(mins), mins, torch.zeros_like(mins))
        out = x - mins.reshape(n, b, 1, 1)
        if mask is not None:
            out = out.masked_fill(mask, 0.0)
        return out


class ScaleNormalization(nn.Module):
    """
    Divide each image (all bands together, keeping colours) by a robust maximum.

    The scale is the maximum of the 3 x 3-smoothed image, so single hot pixels
    do not set it; flux units then do not matter to the network.
    """

    def forward(self, x, mask=None):  # masked pixels are already 0 (MinSubtraction): nothing to exclude
        n = x.shape[0]
        sm = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        scale = sm.reshape(n, -1).amax(1).clamp(min=1e-12)
        return x / scale.reshape(n, 1, 1, 1)


class NoiseStretch(nn.Module):
    """
    Divide each band by its noise and compress with an arcsinh stretch.

    The noise ``sigma`` of a band is estimated from the image itself, robustly:
    the median absolute difference of horizontally adjacent pixels in the
    outer frame of the stamp (beyond a quarter of its size from the centre,
    away from a centred lens galaxy's steep core), divided by
    ``0.6745 * sqrt(2)``: insensitive to the sky level and to smooth or sparse
    sources where the noise is white.  The output is ``asinh(x / (softening * sigma))``: a
    faint arc keeps its signal-to-noise scale (about linear below
    ``softening`` sigma) while the bright core of a lens galaxy is compressed
    logarithmically, so arcs are not crushed under the lens light as they are
    by a division by the maximum.  Masked pixels (``mask`` True) are left out
    of the noise estimate and set to 0.
    """

    def __init__(self, softening=3.0):
        super().__init__()
        if not softening > 0:
            raise ValueError(f"softening must be > 0; got {softening}")
        self.softening = float(softening)

    def forward(self, x, mask=None):
        n, b, h, w = x.shape
        d = (x[..., :, 1:] - x[..., :, :-1]).abs()
        # only the outer frame of the stamp (beyond a quarter of its size from the centre): a centred,
        # bright lens galaxy's gradients would otherwise inflate the estimate
        yy = torch.arange(h, device=x.device).reshape(h, 1) - (h - 1) / 2
        xx = torch.arange(w - 1, device=x.device).reshape(1, w - 1) - (w - 2) / 2
        bad = (yy.abs() < h / 4) & (xx.abs() < (w - 1) / 4)
        if mask is not None:
            mask = mask.to(torch.bool)
            bad = bad | mask[..., :, 1:] | mask[..., :, :-1]
        d = d.masked_fill(bad, float("nan"))
        mad = torch.nanmedian(d.reshape(n, b, -1), dim=2).values
        sigma = mad / (0.6745 * 2**0.5)
        # a noiseless or constant band: fall back to a fraction of its peak
        peak = x.reshape(n, b, -1).abs().amax(2)
        sigma = torch.where(torch.isfinite(sigma) & (sigma > 1e-6 * peak), sigma, 1e-3 * peak)
        sigma = sigma.clamp(min=1e-30).reshape(n, b, 1, 1)
        out = torch.asinh(x / (self.softening * sigma))
        if mask is not None:
            out = out.masked_fill(mask, 0.0)
        return out


class CoordinateChannels(nn.Module):
    """Append x and y coordinate maps in [-1, 1] (CoordConv), so positions can be read off."""

    def forward(self, x):
        n, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).reshape(1, 1, h, 1).expand(n, 1, h, w)
        xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).reshape(1, 1, 1, w).expand(n, 1, h, w)
        return torch.cat([x, xs, ys], dim=1)


class InputStage(nn.Module):
    """
    Min subtraction (Hezaveh et al.) then a normalisation; masked pixels become 0.

    ``stretch="linear"`` divides by the smoothed maximum (`ScaleNormalization`);
    ``stretch="asinh"`` divides each band by its noise and compresses bright
    cores (`NoiseStretch`), which suits stamps with lens light.
    """

    def __init__(self, min_filter=4, stretch="linear"):
        super().__init__()
        if stretch not in ("linear", "asinh"):
            raise ValueError(f"stretch must be 'linear' or 'asinh'; got {stretch!r}")
        self.stretch = stretch
        self.min = MinSubtraction(min_filter)
        self.scale = ScaleNormalization() if stretch == "linear" else NoiseStretch()

    def forward(self, x, mask=None):
        return self.scale(self.min(x, mask), mask)
