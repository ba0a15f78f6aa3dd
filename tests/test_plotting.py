"""Every figure of lenskit.plotting draws on realistic input (Agg backend)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from astropy.table import QTable  # noqa: E402

import lenskit  # noqa: E402
from lenskit import plotting  # noqa: E402


def test_gallery_and_predicted_vs_true():
    ds = lenskit.Simulator(instrument="lsst", seed=2).sample(6)
    fig = plotting.plot_gallery(ds, n=4, ncols=2, title="x")
    assert len([a for a in fig.axes if a.get_visible()]) >= 4
    est = lenskit.load_estimator("lsst_gri").predict(ds)
    fig = plotting.plot_predicted_vs_true(est, ds.params, targets=["theta_E", "e1"])
    assert len(fig.axes) == 2
    assert fig.axes[0].get_xlabel() == "true theta_E [arcsec]"
    assert fig.axes[0].get_ylabel() == "predicted theta_E [arcsec]"
    assert "68% of predictions" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.get_text() == "N = 6" for t in fig.axes[0].texts)
    # estimates on a gallery, with a legend of the curves; one band gets a colour bar for the one stretch
    fig = plotting.plot_gallery(ds, n=4, ncols=2, estimate=est)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["true critical curve", "true caustic",
                                                                 "estimated critical curve"]
    assert "est." in fig.axes[0].get_title()
    hst = lenskit.Simulator(seed=3).sample(2)
    fig = plotting.plot_gallery(hst, n=2, ncols=2)
    assert any("one stretch" in a.get_ylabel() for a in fig.axes)


def test_roc_and_finder_gallery():
    rng = np.random.default_rng(0)
    n = 200
    is_lens = np.arange(n) < n // 2
    scores = np.clip(rng.normal(np.where(is_lens, 0.7, 0.3), 0.2), 0, 1)
    params = QTable({"is_lens": is_lens, "theta_E": rng.uniform(0.5, 3, n), "arc_snr": rng.uniform(5, 200, n)})
    ax = plotting.plot_roc(scores, params)
    assert len(ax.get_lines()) == 4  # three cuts and the FPR marker
    assert "AUROC" in ax.get_legend().get_texts()[0].get_text()
    fig = plotting.plot_finder_gallery(rng.normal(size=(n, 1, 45, 45)), scores, is_lens, n=3, pixel_scale=0.2)
    assert len(fig.axes) == 13 and "one for all cutouts" in fig.axes[-1].get_ylabel()  # 12 cutouts, a colour bar
    assert fig.axes[0].get_xlim()[1] == 4.5  # arcsec
