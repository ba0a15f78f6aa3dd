"""The simulator's use of the cores: worker threads, per-round seeds, chunk sizes, malloc settings."""

import threading

import numpy as np
import pytest
import torch
from matplotlib.path import Path
from scipy.ndimage import convolve1d

import lenskit
from lenskit.core.provenance import array_checksum
from lenskit.instruments.effects import GaussianNoise, GaussianPSF, PoissonNoise, separable_convolve
from lenskit.instruments.hst import HSTWFC3
from lenskit.simulation import parallel
from lenskit.simulation.assembly import ImageSink
from lenskit.simulation.placement import SourcePlacer, _inside_any


def basic(**kw):
    inst = HSTWFC3(shape=(48, 48), effects=[GaussianPSF(sigma=(0.0, 0.1)), PoissonNoise(), GaussianNoise()])
    return lenskit.Simulator(source="sersic", instrument=inst, seed=7, **kw)


def test_systems_do_not_depend_on_the_number_of_workers():
    a = basic(workers=1).sample(40)
    b = basic(workers=2).sample(40)
    c = basic(workers=3).sample(40)
    for other in (b, c):
        np.testing.assert_array_equal(a.images, other.images)
        np.testing.assert_array_equal(a.noise, other.noise)
        np.testing.assert_array_equal(a.truth["arcs"], other.truth["arcs"])
        for col in a.params.colnames:
            np.testing.assert_array_equal(np.asarray(a.params[col]), np.asarray(other.params[col]))
        # the checksum made chunk by chunk as the images arrive (and the table in a worker): the same
        assert other.provenance.checksums == a.provenance.checksums
    assert a.provenance.checksums["images"] == array_checksum(a.images)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_image_sink_is_the_concatenation_and_its_checksum(dtype):
    g = torch.Generator().manual_seed(3)
    chunks = [torch.rand((k, 2, 5, 6), generator=g, dtype=dtype) for k in (3, 1, 4)]
    sink = ImageSink(8, (2, 5, 6))
    with pytest.raises(RuntimeError, match="3 of its 8"):
        sink(chunks[0])
        sink.checksum()
    for c in chunks[1:]:
        sink(c)
    whole = torch.cat(chunks).to(torch.float32).numpy()
    np.testing.assert_array_equal(sink.array, whole)
    assert sink.array.dtype == np.float32 and sink.checksum() == array_checksum(whole)
    with pytest.raises(ValueError, match="holds 8 images"):
        sink(chunks[1])


def test_a_sample_renders_only_the_chunks_it_takes_and_takes_the_same_systems(monkeypatch):
    sim = basic(workers=1, chunk_size=4)  # rounds of four chunks of four candidates
    full = sim._round(parallel.round_rng(11, 0), True)
    assert len(full) >= 2  # (the selection keeps some of the round's candidates in more than one chunk)
    part = sim._round(parallel.round_rng(11, 0), True, limit=len(full[0]["images"]))
    assert len(part) == 1
    for k in ("images", "variance", "arcs"):  # the whole round's first chunk, to the bit
        assert torch.equal(part[0][k], full[0][k])
    # sample(n) renders no chunk it cannot use, and its systems are the first n of a larger sample
    calls = []
    observe = type(sim.instrument).observe
    monkeypatch.setattr(type(sim.instrument), "observe", lambda self, *a, **k: calls.append(1) or observe(self, *a, **k))
    small = basic(workers=1, chunk_size=4, selection=None).sample(3)
    assert len(calls) == 1  # one chunk of four candidates, not the round's four
    calls.clear()
    big = basic(workers=1, chunk_size=4, selection=None).sample(30)
    assert len(calls) == 8  # a whole round of 16 candidates, then the 14 more of the next (four chunks)
    np.testing.assert_array_equal(small.images, big.images[:3])
    for workers in (2, 3):  # rounds in other threads (a second one started at once): the same systems
        np.testing.assert_array_equal(basic(workers=workers, chunk_size=4, selection=None).sample(3).images,
                                      small.images)
    # a stream keeps whole rounds: its later batches take what the earlier ones left
    np.testing.assert_array_equal(next(basic(workers=1, chunk_size=4, selection=None).stream(3))[0].numpy(),
                                  small.images)


def test_a_sample_renders_less_beside_rounds_in_flight_and_keeps_its_systems(monkeypatch):
    """Rounds started beside others stop early; one that falls short is rendered again: the same systems."""
    from lenskit.simulation import simulator as simmod

    ref = basic(workers=1, chunk_size=4).sample(60)
    rendered = []
    orig = lenskit.Simulator._round

    def count(self, rng, keep, limit=None):
        out = orig(self, rng, keep, limit)
        rendered.append(out.rendered)
        return out

    monkeypatch.setattr(lenskit.Simulator, "_round", count)
    got = basic(workers=3, chunk_size=4).sample(60)
    np.testing.assert_array_equal(got.images, ref.images)
    plain = sum(rendered)
    # every round after the first beside others asks for almost nothing: most fall short and are rendered again
    monkeypatch.setattr(simmod, "EXPECTED_SHARE", 50.0)
    rendered.clear()
    again = basic(workers=3, chunk_size=4).sample(60)
    np.testing.assert_array_equal(again.images, ref.images)
    np.testing.assert_array_equal(again.truth["arcs"], ref.truth["arcs"])
    assert sum(rendered) > plain  # the rounds rendered twice
    assert 0 < sum(r < 16 for r in rendered)  # ... after stopping early


def test_a_stream_keeps_every_worker_busy_then_idle_between_batches(monkeypatch):
    """Batches smaller than a round: the workers start rounds together, finish them before a batch is yielded."""
    ref = [b[0].numpy() for b in basic(workers=1, chunk_size=4, selection=None).stream(5, steps=6)]
    started = []
    orig = lenskit.Simulator._round
    monkeypatch.setattr(lenskit.Simulator, "_round", lambda self, rng, *a: started.append(1) or orig(self, rng, *a))
    sim = basic(workers=3, chunk_size=4, selection=None)
    flow = sim._flow(np.random.default_rng(0), False)
    try:
        flow.take(5)
        assert len(started) == 3  # one round (16 systems) holds the batch; the other two workers start one too
        assert flow.state["inflight"] == 0  # ... and finish it before take returns
        assert sum(len(c["images"]) for c in flow.left) == 3 * 16 - 5
        flow.take(40)  # 43 left: nothing new
        assert len(started) == 3
        flow.take(20)  # 3 left, 17 wanted: two rounds would do, the third worker starts one as well
        assert len(started) == 6 and flow.state["inflight"] == 0
    finally:
        flow.close()
    # the systems follow the rounds in order, whatever the number of workers
    for got, want in zip(basic(workers=3, chunk_size=4, selection=None).stream(5, steps=6), ref):
        np.testing.assert_array_equal(got[0].numpy(), want)


def test_simulate_takes_one_number_from_the_generator_per_call():
    sim = basic(workers=2)
    rng = np.random.default_rng(3)
    sim.simulate(10, rng)
    ref = np.random.default_rng(3)
    ref.integers(0, 2**63 - 1)
    assert rng.integers(0, 2**63 - 1) == ref.integers(0, 2**63 - 1)
    assert len(sim.simulate(0, rng)) == 0


def test_workers_leave_the_callers_torch_threads_alone():
    before = torch.get_num_threads()
    basic(workers=2).sample(12)
    assert torch.get_num_threads() == before
    seen = parallel.pool(2).submit(torch.get_num_threads).result()
    assert seen == 1
    assert any(t.name.startswith("lenskit-sim") for t in threading.enumerate())


def test_default_workers_follow_torch():
    n = parallel.default_workers()
    assert 1 <= n <= torch.get_num_threads()
    assert basic().workers is None  # resolved at each call


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_bad_workers_are_refused(bad):
    with pytest.raises((TypeError, ValueError), match="workers"):
        basic(workers=bad)
    with pytest.raises((TypeError, ValueError), match="workers"):
        basic().simulate(4, workers=bad)


def test_round_rng_is_a_pure_function_of_base_and_index():
    a = parallel.round_rng(5, 2).random(4)
    np.testing.assert_array_equal(a, parallel.round_rng(5, 2).random(4))
    assert not np.array_equal(a, parallel.round_rng(5, 3).random(4))


def test_chunk_size_follows_the_stamp_size_and_is_recorded():
    assert lenskit.Simulator(instrument="hst_wfc3").chunk_size == 32
    assert lenskit.Simulator(instrument="lsst").chunk_size == 128
    assert lenskit.Simulator(instrument="hst_wfc3", supersample=2).chunk_size == 8
    sim = lenskit.Simulator(instrument="lsst")
    assert lenskit.Simulator.from_config(sim.config).chunk_size == 128
    assert lenskit.Simulator(instrument="lsst", chunk_size=4).chunk_size == 4


def test_tune_malloc_respects_an_opt_out(monkeypatch):
    monkeypatch.setattr(parallel, "_TUNED", None)
    monkeypatch.setenv("LENSKIT_TUNE_MALLOC", "0")
    assert parallel.tune_malloc() is False
    monkeypatch.setattr(parallel, "_TUNED", None)
    monkeypatch.delenv("LENSKIT_TUNE_MALLOC")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")  # the user's own choice wins
    assert parallel.tune_malloc() is False


def test_banded_convolution_matches_scipy_for_asymmetric_kernels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 70, 45))
    k = rng.uniform(size=(3, 9))
    out = separable_convolve(torch.as_tensor(x), torch.as_tensor(k)).numpy()
    for m in range(3):
        # separable_convolve is a convolution (kernel flipped), zero outside the image
        ref = convolve1d(convolve1d(x[m], k[m], axis=0, mode="constant"), k[m], axis=1, mode="constant")
        np.testing.assert_allclose(out[m], ref, atol=1e-12)
    with pytest.raises(ValueError, match="odd"):
        separable_convolve(torch.zeros(1, 8, 8), torch.ones(1, 4))


@pytest.mark.parametrize("shape", [(70, 45), (150, 131)])  # whole Toeplitz matrices; blocks (over DENSE_MAX)
def test_shared_kernels_match_scipy(shape):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, *shape))
    k = rng.uniform(size=(3, 11))
    index = np.array([2, 0, 1, 2, 2, 0, 1])
    out = separable_convolve(torch.as_tensor(x), torch.as_tensor(k), torch.as_tensor(index)).numpy()
    for m, j in enumerate(index):
        ref = convolve1d(convolve1d(x[m], k[j], axis=0, mode="constant"), k[j], axis=1, mode="constant")
        np.testing.assert_allclose(out[m], ref, atol=1e-12)
    one = separable_convolve(torch.as_tensor(x), torch.as_tensor(k[:1]), torch.zeros(7, dtype=torch.long)).numpy()
    for m in range(7):
        ref = convolve1d(convolve1d(x[m], k[0], axis=0, mode="constant"), k[0], axis=1, mode="constant")
        np.testing.assert_allclose(one[m], ref, atol=1e-12)
    with pytest.raises(ValueError, match="index must have one entry per plane"):
        separable_convolve(torch.as_tensor(x), torch.as_tensor(k), torch.zeros(3, dtype=torch.long))


def test_point_in_polygon_agrees_with_matplotlib():
    sie = lenskit.get("mass_model", "sie")()
    rng = np.random.default_rng(2)
    n = 40
    p = {"theta_E": rng.uniform(0.3, 2, n), "e1": rng.uniform(-0.45, 0.45, n), "e2": rng.uniform(-0.45, 0.45, n),
         "x0": rng.uniform(-0.2, 0.2, n), "y0": rng.uniform(-0.2, 0.2, n)}
    caustic, cut = sie.multiple_image_regions(n=96, **p)
    pts = rng.uniform(-2.5, 2.5, (n, 300, 2))
    mine = _inside_any(np.stack([caustic, cut], 1), pts)
    ref = np.array([[Path(caustic[i]).contains_point(q) or Path(cut[i]).contains_point(q) for q in pts[i]]
                    for i in range(n)])
    assert np.mean(mine != ref) < 1e-3  # points on an edge may go either way
    # placed sources lie in the region grown by at most the margin
    extra = {"theta_E": p["theta_E"], "x0": p["x0"], "y0": p["y0"]}
    beta, inside = SourcePlacer(sie, caustic_margin=0.0).place(p, extra, rng)
    assert inside.all()


def test_clumpy_source_evaluates_the_clumps_each_galaxy_has():
    """Galaxies with fewer clumps than the batch's widest take the path over present clumps only; the brightness
    is each galaxy's clumps summed, evaluated one by one with the shared profile."""
    from lenskit.lensing.light import elliptical_sersic

    batch = lenskit.get("source", "sersic_clump")().sample(8, np.random.default_rng(0))
    counts = (batch.weight > 0).sum(1)
    assert counts.min() < batch.weight.shape[1]  # the path under test is taken
    c = (torch.arange(40, dtype=torch.float64) - 19.5) * 0.02
    x = c.reshape(1, 1, -1).expand(8, 40, 40).contiguous()
    y = c.reshape(1, -1, 1).expand(8, 40, 40).contiguous()
    got = batch.brightness(x, y)
    for g in range(8):
        ref = torch.zeros(40, 40, dtype=torch.float64)
        for k in np.nonzero(batch.weight[g])[0]:
            t = {a: torch.tensor(float(getattr(batch, a)[g, k]), dtype=torch.float64)
                 for a in ("cx", "cy", "e1", "e2", "R_e", "n", "b", "I_e")}
            ref += elliptical_sersic(x[g], y[g], t["e1"], t["e2"], t["cx"], t["cy"], t["R_e"], t["n"], t["b"],
                                     t["I_e"])
        torch.testing.assert_close(got[g], ref, rtol=1e-10, atol=0)
