"""Layers shared by lenskit's networks."""

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MinSubtraction", "ScaleNormalization", "CoordinateChannels", "InputStage"]


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

    def forward(self, x):
        n = x.shape[0]
        sm = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        scale = sm.reshape(n, -1).amax(1).clamp(min=1e-12)
        return x / scale.reshape(n, 1, 1, 1)


class CoordinateChannels(nn.Module):
    """Append x and y coordinate maps in [-1, 1] (CoordConv), so positions can be read off."""

    def forward(self, x):
        n, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).reshape(1, 1, h, 1).expand(n, 1, h, w)
        xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).reshape(1, 1, 1, w).expand(n, 1, h, w)
        return torch.cat([x, xs, ys], dim=1)


class InputStage(nn.Module):
    """Min subtraction (Hezaveh et al.) then scale normalisation; masked pixels become 0."""

    def __init__(self, min_filter=4):
        super().__init__()
        self.min = MinSubtraction(min_filter)
        self.scale = ScaleNormalization()

    def forward(self, x, mask=None):
        return self.scale(self.min(x, mask))
