import pytest
import torch

from lenskit.estimators.networks import ARCHITECTURES, build
from lenskit.estimators.networks.layers import MinSubtraction


@pytest.mark.parametrize("name, shape", [("lenskit_net", (1, 192, 192)), ("lenskit_net", (3, 57, 57)),
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
