"""The one training loop: fixed-set batches that replay on resume, and a resumed run equal to an uninterrupted one."""

import math

import numpy as np
import pytest
import torch

from lenskit.core.exceptions import LenskitFileError
from lenskit.estimators.training import Checkpoint, FixedBatches, TrainingLoop, cosine_schedule, step_schedule


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(16, 1)

    def forward(self, x, mask=None):
        return self.lin(x.reshape(len(x), -1)).reshape(-1)


def _data(n=40):
    g = np.random.default_rng(3)
    x = torch.as_tensor(g.normal(size=(n, 1, 4, 4)), dtype=torch.float32)
    y = (x.sum((1, 2, 3)) > 0).float()
    return x, y


def _flip(batch, generator):
    keep = torch.rand(len(batch), generator=generator) < 0.5
    return torch.where(keep[:, None, None, None], batch, batch.flip(-1))


def test_fixed_batches_resume_mid_epoch_replays_the_same_batches():
    x, y = _data()
    data = FixedBatches(x, y, None, 8, seed=5, augment=_flip)
    assert data.per_epoch == 5
    full = [b for _, b in zip(range(12), data.batches(0))]
    resumed = [b for _, b in zip(range(5), data.batches(7))]
    for a, b in zip(full[7:], resumed):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # a new order every epoch, every item once per epoch
    ep0 = torch.cat([b[1] for b in full[:5]])
    assert sorted(ep0.tolist()) == sorted(y.tolist())
    assert not torch.equal(full[0][0], full[5][0])
    # ranks split an epoch's batches, the same number each (data-parallel ranks step together), none shared
    r0, r1 = (FixedBatches(x, y, None, 8, seed=5, rank=r, world=2) for r in (0, 1))
    assert r0.per_epoch == r1.per_epoch == 2
    rows = [{row.numpy().tobytes() for _, b in zip(range(2), r.batches(0)) for row in b[0]} for r in (r0, r1)]
    assert len(rows[0]) == len(rows[1]) == 16 and not rows[0] & rows[1]


def _loop(ck, steps):
    net = Tiny()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    loop = TrainingLoop(net, opt, torch.nn.functional.binary_cross_entropy_with_logits, steps=steps,
                        schedule=step_schedule(1e-2, [2], 3), record_every=5, device="cpu",
                        checkpoint=Checkpoint(ck), channels_last=False, progress=False, ddp=False,
                        extra=lambda step, history: {"note": "x"})
    return net, loop


def test_resumed_run_equals_the_uninterrupted_one(tmp_path):
    x, y = _data()
    data = FixedBatches(x, y, None, 8, seed=1, augment=_flip)
    net_a, a = _loop(tmp_path / "a.asdf", 15)
    a.run(data.batches(0))
    # interrupted during step 13 (after the checkpoint of step 10), then resumed

    def interrupted(batches, n):
        for _ in range(n):
            yield next(batches)
        raise KeyboardInterrupt

    net_b, b = _loop(tmp_path / "b.asdf", 15)
    with pytest.raises(KeyboardInterrupt):
        b.run(interrupted(data.batches(0), 12))
    net_c, c = _loop(tmp_path / "b.asdf", 15)
    assert c.resume() and c.step == 10 and c.resumed_extra == {"note": "x"}
    c.run(data.batches(c.step))
    for p, q in zip(net_a.parameters(), net_c.parameters()):
        assert torch.equal(p, q)
    assert [h["step"] for h in c.history] == [5, 10, 15] == [h["step"] for h in a.history]


def test_schedules():
    cos = cosine_schedule(1.0, 0.1, warmup=10)
    assert cos(0, 0.0) == pytest.approx(0.1) and cos(50, 0.0) == pytest.approx(1.0)
    assert cos(50, 1.0) == pytest.approx(0.1) and cos(50, 0.5) == pytest.approx(0.55)
    drop = step_schedule(1.0, [10, 20], 30)
    assert [drop(0, f) for f in (0.0, 0.34, 0.7)] == pytest.approx([1.0, 0.1, 0.01])


def test_a_damaged_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "ck.asdf"
    bad.write_bytes(b"#ASDF 1.0.0\nnot really")
    net, loop = _loop(bad, 5)
    with pytest.raises(LenskitFileError, match="could not be read"):
        loop.resume()


def _blob(x0, y0, shape=(24, 32), scale=0.1):
    from lenskit.lensing.render import pixel_grid

    x, y = pixel_grid(shape, scale)
    return torch.exp(-((x[None, :] - x0) ** 2 + (y[:, None] - y0) ** 2) / (2 * 0.15**2))


def test_shift_pairs_move_the_centre_targets_with_the_pixels():
    from lenskit.estimators.training import ShiftPairs

    scale = 0.1
    centres = [(0.0, 0.0), (0.3, -0.2), (-0.1, 0.4)]
    images = torch.stack([_blob(x, y)[None] for x, y in centres])
    y = torch.tensor([[1.2, x, yy] for x, yy in centres])
    masks = torch.zeros(3, 1, 24, 32, dtype=torch.bool)
    masks[:, :, 0, 0] = True
    pairs = ShiftPairs(("theta_E", "x0", "y0"), scale, max_shift=3, seed=1)
    im2, y2, m2 = pairs.pair(images, y, masks)
    assert im2.shape == (6, 1, 24, 32) and y2.shape == (6, 3) and m2.shape == (6, 1, 24, 32)
    assert torch.equal(im2[:3], images) and torch.equal(y2[:3], y)
    assert torch.equal(y2[3:, 0], y[:, 0])  # the Einstein radius does not move
    moved = 0
    for i in range(3):
        x0, y0 = float(y2[3 + i, 1]), float(y2[3 + i, 2])
        # lenskit's pixel grid drawn at the moved centre is the rolled image (x along columns, y along rows)
        np.testing.assert_allclose(im2[3 + i, 0].numpy(), _blob(x0, y0).numpy(), atol=1e-5)
        assert int(m2[3 + i].sum()) == 1
        moved += abs(x0 - centres[i][0]) + abs(y0 - centres[i][1]) > 0
        assert max(abs(x0 - centres[i][0]), abs(y0 - centres[i][1])) <= 3 * scale + 1e-6
    assert moved  # the seed moves some


def _elliptical_blob(x0, y0, e1, e2, n=40, scale=0.1):
    """An elliptical Gaussian at (x0, y0) with lenskit's spin-2 ellipticity (e = (1 - q) / (1 + q), angle from x)."""
    from lenskit.lensing.render import pixel_grid

    x, y = pixel_grid((n, n), scale)
    dx, dy = x[None, :] - x0, y[:, None] - y0
    e = math.hypot(e1, e2)
    q, phi = (1 - e) / (1 + e), 0.5 * math.atan2(e2, e1)
    u = dx * math.cos(phi) + dy * math.sin(phi)  # along the major axis
    v = -dx * math.sin(phi) + dy * math.cos(phi)
    return torch.exp(-(q * u**2 + v**2 / q) / (2 * 0.2**2))


def test_symmetry_pairs_transform_centres_and_ellipticities_with_the_pixels():
    from lenskit.estimators.training import ShiftPairs
    from lenskit.estimators.tta import DIHEDRAL, transform_images

    scale = 0.1
    truths = [(0.2, -0.1, 0.3, 0.1), (-0.3, 0.25, -0.1, 0.35), (0.05, 0.3, 0.25, -0.2), (0.0, -0.2, -0.3, -0.1)] * 4
    images = torch.stack([_elliptical_blob(x, y, a, b)[None] for x, y, a, b in truths])
    y = torch.tensor([[1.1, a, b, x, yy] for x, yy, a, b in truths], dtype=torch.float32)
    pairs = ShiftPairs(("theta_E", "e1", "e2", "x0", "y0"), scale, max_shift=2, seed=3, symmetries=True)
    assert pairs.invariant == [0]  # only the Einstein radius survives a rotation unchanged
    im2, y2, m2 = pairs.pair(images, y, torch.zeros(0))
    assert torch.equal(im2[:16], images) and torch.equal(y2[:16], y) and m2.numel() == 0
    assert torch.equal(y2[16:, 0], y[:, 0])
    for i in range(16):
        _, a, b, x0, y0 = (float(v) for v in y2[16 + i])
        # the copy is the blob drawn at its transformed truths: centre and spin-2 ellipticity both right
        np.testing.assert_allclose(im2[16 + i, 0].numpy(), _elliptical_blob(x0, y0, a, b).numpy(), atol=2e-5)
    # every one of the eight symmetries was drawn, and the image transform is tta's
    which = np.random.default_rng([3, 0])
    which.integers(-2, 3, size=(16, 2))
    drawn = which.integers(0, 8, size=16)
    assert len(set(drawn.tolist())) >= 6
    i = int(np.flatnonzero(drawn == 5)[0]) if (drawn == 5).any() else 0
    unrolled = pairs._transform_image(images[i], DIHEDRAL[drawn[i]])
    np.testing.assert_array_equal(unrolled.numpy(), transform_images(images[i].numpy(), DIHEDRAL[drawn[i]]))


def test_symmetry_pairs_refuse_targets_of_unknown_transform_and_non_square_stamps():
    from lenskit.estimators.training import ShiftPairs

    with pytest.raises(ValueError, match="x0"):
        ShiftPairs(("theta_E", "x0"), 0.04, symmetries=True)  # half a position pair
    with pytest.raises(ValueError, match="unchanged"):
        ShiftPairs(("e1", "e2"), 0.04, symmetries=True)
    with pytest.raises(TypeError, match="symmetries"):
        ShiftPairs(("theta_E",), 0.04, symmetries="yes")
    pairs = ShiftPairs(("theta_E",), 0.04, max_shift=0, symmetries=True)  # rotations alone
    with pytest.raises(ValueError, match="square"):
        pairs.pair(torch.zeros(2, 1, 8, 10), torch.zeros(2, 1), torch.zeros(0))


def test_shift_pairs_loss_adds_the_disagreement_of_invariant_targets_only():
    from lenskit.estimators.training import ShiftPairs

    pairs = ShiftPairs(("theta_E", "e1", "x0"), 0.04, weight=2.0)

    def base(out, y):
        return torch.zeros(())

    loss = pairs.loss(base)
    out = torch.zeros(4, 6)  # 2 originals, 2 copies; means then log sigmas
    assert float(loss(out, None)) == 0.0
    out[2, 2] = 5.0  # the copies' centre may differ
    out[2:, 3:] = 1.0  # and so may their uncertainties
    assert float(loss(out, None)) == 0.0
    out[3, 0] = 0.5  # theta_E disagrees on one pair of two
    assert float(loss(out, None)) == pytest.approx(2.0 * 0.25 / 2)
    with pytest.raises(ValueError, match="unchanged"):
        ShiftPairs(("x0", "y0"), 0.04)
    with pytest.raises(ValueError, match="max_shift"):
        ShiftPairs(("theta_E",), 0.04, max_shift=0)


def test_bank_mix_replaces_the_last_systems_with_transformed_bank_systems():
    from lenskit.estimators.training import BankMix
    from lenskit.estimators.tta import DIHEDRAL, transform_images

    truths = [(0.2, -0.1, 0.3, 0.1), (-0.3, 0.25, -0.1, 0.35), (0.05, 0.3, 0.25, -0.2)]
    bank_x = torch.stack([_elliptical_blob(x, y, a, b)[None] for x, y, a, b in truths])
    bank_y = np.array([[0.9 + i, a, b, x, yy] for i, (x, yy, a, b) in enumerate(truths)])
    bank_m = np.zeros((3, 40, 40), bool)
    bank_m[:, 0, :5] = True  # a strip along the top row: where it goes shows the transform
    mix = BankMix(bank_x.numpy(), bank_y, ("theta_E", "e1", "e2", "x0", "y0"), masks=bank_m, fraction=0.5, seed=4)
    sim_x = torch.full((16, 1, 40, 40), 7.0)
    sim_y = torch.full((16, 5), 3.0)
    mixed = list(mix.batches(iter([(sim_x, sim_y, torch.zeros(0))] * 3)))
    seen = set()
    for x, y, m in mixed:
        assert x.shape == (16, 1, 40, 40) and y.shape == (16, 5) and m.shape == (16, 1, 40, 40)
        assert torch.equal(x[:8], sim_x[:8]) and torch.equal(y[:8], sim_y[:8]) and not m[:8].any()
        for i in range(8, 16):
            theta_E, a, b, x0, y0 = (float(v) for v in y[i])
            j = int(round(theta_E - 0.9))  # which bank system: the Einstein radius is unchanged
            seen.add(j)
            assert abs(theta_E - bank_y[j, 0]) < 1e-6  # (float32 batches)
            # the image is the bank's blob drawn at its transformed truths; its mask went with it
            np.testing.assert_allclose(x[i, 0].numpy(), _elliptical_blob(x0, y0, a, b).numpy(), atol=2e-5)
            t = [t for t in DIHEDRAL if np.allclose(transform_images(bank_x[j].numpy(), t), x[i].numpy())]
            assert len(t) == 1 and np.array_equal(m[i, 0].numpy(), transform_images(bank_m[j], t[0]))
    assert seen == {0, 1, 2}
    # a resumed run draws what the uninterrupted one drew at the same step
    again = list(mix.batches(iter([(sim_x, sim_y, torch.zeros(0))]), start_step=0))
    assert torch.equal(again[0][0], mixed[0][0])


def test_bank_mix_refuses_bad_banks_naming_them():
    from lenskit.estimators.training import BankMix

    x = np.zeros((4, 1, 16, 16), np.float32)
    y = np.zeros((4, 3))
    names = ("theta_E", "e1", "e2")
    with pytest.raises(ValueError, match="square"):
        BankMix(np.zeros((4, 1, 16, 12), np.float32), y, names)
    with pytest.raises(ValueError, match="finite"):
        BankMix(np.full((4, 1, 16, 16), np.nan, np.float32), y, names)
    with pytest.raises(ValueError, match=r"targets must be finite and shaped \(4, 3\)"):
        BankMix(x, np.zeros((4, 2)), names)
    with pytest.raises(ValueError, match="x0"):
        BankMix(x, np.zeros((4, 2)), ("theta_E", "x0"))  # half a position pair: its rotation is not known
    with pytest.raises(TypeError, match="boolean"):
        BankMix(x, y, names, masks=np.zeros((4, 16, 16)))
    with pytest.raises(ValueError, match="fraction"):
        BankMix(x, y, names, fraction=1.0)
    mix = BankMix(x, y, names)
    with pytest.raises(ValueError, match="stamps"):
        mix.mix(torch.zeros(8, 1, 20, 20), torch.zeros(8, 3), torch.zeros(0))
