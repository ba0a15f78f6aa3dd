import pytest
import torch

from lenskit.estimators.networks import ARCHITECTURES, build
from lenskit.estimators.networks.layers import InputStage, MinSubtraction, NoiseStretch


@pytest.mark.parametrize("name, shape", [("lenskit_net", (1, 192, 192)), ("lenskit_net", (3, 57, 57)),
                                         ("lenskit_net", (1, 45, 45)),
                                         ("hezaveh", (1, 96, 96)), ("alexnet", (1, 192, 192)),
                                         ("overfeat", (1, 192, 192)), ("inception_v4", (1, 160, 160)),
                                         ("pearson", (1, 57, 57)), ("pearson", (3, 57, 57))])
def test_forward_shapes(name, shape):
    torch.manual_seed(0)
    net = build(name, in_shape=shape, n_outputs=7)
    with torch.no_grad():
        out = net(torch.rand(2, *shape))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_pearson_parameter_counts_match_the_paper():
    count = lambda shape: sum(p.numel() for p in build("pearson", in_shape=shape, n_outputs=3).parameters())  # noqa
    assert count((1, 57, 57)) == 2_395_267
    assert count((3, 57, 57)) == 2_398_403


def test_hezaveh_architecture():
    net = build("hezaveh", in_shape=(1, 192, 192), n_outputs=5)
    mods = list(net.features)
    assert [m.big.kernel_size[0] for m in mods] == [3, 5, 10, 10, 10, 10, 3, 3]
    assert [m.big.out_channels for m in mods] == [32, 32, 32, 32, 64, 64, 128, 256]
    assert [m.stride for m in mods] == [1, 1, 2, 1, 2, 1, 2, 1]
    assert all(m.point.kernel_size == (1, 1) and m.point.out_channels == m.big.out_channels for m in mods)
    fc = net.head[1]
    assert fc.in_features == 24 * 24 * 256 and fc.out_features == 512
    total = sum(p.numel() for p in net.parameters())
    assert 70e6 < fc.weight.numel() < total < 80e6  # the first FC layer holds most of the parameters


def test_min_subtraction_excludes_masked_pixels():
    x = torch.full((1, 1, 16, 16), 5.0)
    x[0, 0, 2:6, 2:6] = -100.0  # a masked, very negative region
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[0, 0, 2:6, 2:6] = True
    out = MinSubtraction(4)(x, mask)
    assert torch.all(out[mask] == 0)
    assert torch.allclose(out[~mask], torch.zeros(1))  # the min of the unmasked constant image is removed
    out2 = MinSubtraction(4)(x + 3.0)
    assert float(out2.min()) == pytest.approx(0.0)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        build("resnet")
    assert {"hezaveh", "alexnet", "overfeat", "inception_v4", "pearson", "lenskit_net"} <= set(ARCHITECTURES)


def test_noise_stretch_measures_the_noise():
    # white Gaussian noise of known sigma per band, plus a smooth bright "galaxy" and a constant sky
    g = torch.Generator().manual_seed(3)
    sig = torch.tensor([0.5, 2.0, 7.0]).reshape(1, 3, 1, 1)
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    galaxy = 500.0 * torch.exp(-((xx - 32) ** 2 + (yy - 32) ** 2) / (2 * 4.0**2))
    x = 10.0 + galaxy + sig * torch.randn(8, 3, 64, 64, generator=g)
    out = NoiseStretch(softening=3.0)(x - 10.0)
    # far from the galaxy the output is asinh(noise / 3 sigma): standard deviation ~ 1/3 (sampling error ~2%)
    far = out[..., :16, :]
    assert torch.allclose(far.std(dim=(0, 2, 3)), torch.full((3,), 1 / 3), rtol=0.08)
    # the galaxy's core is compressed: asinh(500 / (3 sigma)) per band, not 500 / max
    core = out[:, :, 32, 32].mean(0)
    expect = torch.asinh(500.0 / (3 * sig.reshape(3)))
    assert torch.allclose(core, expect, rtol=0.05)
    # flux units do not matter: scaling the image leaves the output unchanged
    assert torch.allclose(NoiseStretch()(x * 1000.0), NoiseStretch()(x), atol=1e-4)


def test_noise_stretch_masks_and_degenerate_input():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 1, 32, 32, generator=g)
    mask = torch.zeros_like(x, dtype=torch.bool)
    x[0, 0, :, :16] += 1e4 * torch.randn(32, 16, generator=g)  # wild masked half must not set the noise
    mask[0, 0, :, :16] = True
    out = NoiseStretch(1.0)(x, mask)
    assert torch.all(out[mask] == 0)
    assert 0.6 < float(out[~mask].std()) < 1.0  # asinh of unit-variance noise has std ~0.8
    flat = NoiseStretch()(torch.full((2, 1, 8, 8), 4.0))  # noiseless: finite, no division by zero
    assert torch.isfinite(flat).all()
    with pytest.raises(ValueError, match="softening"):
        NoiseStretch(0)
    with pytest.raises(ValueError, match="stretch must be"):
        InputStage(stretch="log")


def test_lenskit_net_options():
    full = build("lenskit_net", in_shape=(3, 57, 57), n_outputs=10, stretch="asinh", first_stride=1)
    assert full.features[0].stride == (1, 1) and full.inp.stretch == "asinh"
    with torch.no_grad():
        assert full(torch.rand(2, 3, 57, 57)).shape == (2, 10)
    with pytest.raises(ValueError, match="first_stride"):
        build("lenskit_net", in_shape=(1, 57, 57), first_stride=3)


def test_lenskit_net_pooled_head_reads_the_same_numbers_wherever_the_features_lie():
    torch.manual_seed(0)
    net = build("lenskit_net", in_shape=(1, 64, 64), n_outputs=4, head="pooled").eval()
    flat = build("lenskit_net", in_shape=(1, 64, 64), n_outputs=4).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        f = net.features(net.coords(net.inp(x)))
    c = f.shape[1]
    assert net.head[2].in_features == 2 * c and flat.head[2].in_features == c * f.shape[2] * f.shape[3]

    class Fixed(torch.nn.Module):  # stands in for the convolutions: the given features, whatever the input
        def __init__(self, feats):
            super().__init__()
            self.feats = feats

        def forward(self, _):
            return self.feats

    rolled = torch.roll(f, (1, 2), (2, 3))  # the same features at other positions
    outs = {}
    for name, model in (("pooled", net), ("flatten", flat)):
        for label, feats in (("f", f), ("rolled", rolled)):
            model.features = Fixed(feats)
            with torch.no_grad():
                outs[name, label] = model(x)
    torch.testing.assert_close(outs["pooled", "f"], outs["pooled", "rolled"])
    assert not torch.allclose(outs["flatten", "f"], outs["flatten", "rolled"])  # a weight per position
    with pytest.raises(ValueError, match="head must be"):
        build("lenskit_net", in_shape=(1, 64, 64), head="global")
