"""
`DeepLensFinder`: the CMU DeepLens lens finder of Lanusse et al. (2018).

The estimator wraps `~lenskit.estimators.networks.deeplens.DeepLensNet` and
adds what the paper does around it: preprocessing statistics from the
training set, data augmentation (rotations of +-90 deg, flips, zoom 0.9-1
with wrapping), training by binary cross-entropy with Adam (learning rate
1e-3 divided by 10 at fixed epochs), the detection threshold chosen from a
target false-positive rate on a validation set, the class-prior correction of
eq. 5, and ASDF weights.
"""

import copy
import math
import warnings
from contextlib import nullcontext

import astropy.units as u
import numpy as np
import torch
import torch.nn.functional as F
from astropy.stats import sigma_clipped_stats
from astropy.table import QTable
from photutils.segmentation import detect_sources
from photutils.utils.exceptions import NoDetectionsWarning
from scipy.ndimage import binary_dilation
from tqdm.auto import tqdm

from lenskit.core.dataset import LensDataset
from lenskit.core.estimate import Estimate
from lenskit.core.files import check_output_path
from lenskit.core.provenance import Provenance, array_checksum
from lenskit.core.statistics import robust_sigma
from lenskit.core.validation import as_device, check_int, check_number
from lenskit.core.weights import ModelWeights
from lenskit.estimators.finder_metrics import auroc, prior_correction, threshold_at_fpr, tpr_at_fpr
from lenskit.estimators.inputs import network_inputs
from lenskit.estimators.network_estimator import NetworkEstimator
from lenskit.estimators.networks import build, check_weights
from lenskit.estimators.training import Checkpoint, FixedBatches, TrainingLoop, ddp_context, step_schedule
from lenskit.estimators.tta import DIHEDRAL, check_targets, transform_images
from lenskit.io.asdf import read

__all__ = ["DeepLensFinder", "augment", "background_sigma", "focal_loss"]


def augment(x, generator=None, max_angle=90.0, zoom=(0.9, 1.0), flips=True):
    """
    Random rotation, mirroring and zoom of a batch (N, bands, H, W), with wrapping.

    As Lanusse et al. (2018, Section 3.3): rotation by an angle uniform in
    +-``max_angle`` degrees, mirroring along each axis with probability 1/2,
    and compression by a factor uniform in ``zoom``; pixels sampled from
    outside the stamp wrap around.  Interpolation is bilinear.
    """
    n = x.shape[0]
    dev, dt = x.device, x.dtype
    g = generator
    ang = (torch.rand(n, generator=g) * 2 - 1) * math.radians(max_angle)
    z = zoom[0] + (zoom[1] - zoom[0]) * torch.rand(n, generator=g)
    sx = torch.ones(n)
    sy = torch.ones(n)
    if flips:
        sx = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
        sy = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    c, s = torch.cos(ang) / z, torch.sin(ang) / z
    theta = torch.stack([torch.stack([c * sx, -s * sy, torch.zeros(n)], 1),
                         torch.stack([s * sx, c * sy, torch.zeros(n)], 1)], 1).to(device=dev, dtype=dt)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    grid = torch.remainder(grid + 1, 2) - 1  # wrap
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def focal_loss(logits, target, gamma=0.0):
    """
    Mean focal loss (Lin et al. 2017) of binary ``logits`` against 0/1 ``target``; ``gamma=0`` is the cross-entropy.

    Each term is the binary cross-entropy weighted by ``(1 - p_t) ** gamma``, ``p_t = sigmoid(+-logit)`` the
    probability given to the true class (computed from log-sigmoids, finite for any logit).
    """
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if gamma == 0:
        return ce.mean()
    # 1 - p_t = sigmoid(-z) for a lens, sigmoid(z) for a non-lens
    log_one_minus_pt = F.logsigmoid(torch.where(target > 0.5, -logits, logits))
    return (torch.exp(gamma * log_one_minus_pt) * ce).mean()


def background_sigma(image, mask=None):
    """
    The background noise of one image: the sigma-clipped MAD of its pixels outside its sources.

    A first sigma-clipped estimate over the unmasked finite pixels; then,
    twice, the sources above 2 sigma (`photutils.segmentation.detect_sources`,
    at least 5 connected pixels, grown by 2 pixels) are left out and the
    estimate made again from the rest (the previous one kept where fewer than
    100 pixels would remain).  NaN for an image with fewer than two finite
    unmasked pixels.  On pure Gaussian noise of 45 x 45 pixels it reads 1.6%
    low (chance clusters above 2 sigma are taken for sources) with a scatter
    of 1.6%; beside a bright galaxy and neighbours, within 8%
    (``tests/estimators/test_finder.py``).
    """
    img = np.asarray(image, dtype=np.float64)
    good = np.isfinite(img) if mask is None else np.isfinite(img) & ~np.asarray(mask, bool)
    if good.sum() < 2:
        return np.nan
    _, med, s = sigma_clipped_stats(img[good], sigma=3.0, maxiters=5, stdfunc="mad_std")
    for _ in range(2):
        if not s > 0:
            break
        with warnings.catch_warnings():  # a blank sky has no sources: nothing to leave out, no warning
            warnings.simplefilter("ignore", NoDetectionsWarning)
            seg = detect_sources(np.where(good, img - med, 0.0), 2.0 * s, n_pixels=5)
        keep = good if seg is None else good & ~binary_dilation(seg.data > 0, iterations=2)
        if keep.sum() < 100:
            break
        _, med, s = sigma_clipped_stats(img[keep], sigma=3.0, maxiters=5, stdfunc="mad_std")
    return float(s)


class DeepLensFinder(NetworkEstimator):
    """
    CMU DeepLens lens finder: ``p_lens`` for each cutout.

    Parameters
    ----------
    in_shape : tuple of int
        (bands, H, W); default (1, 45, 45), LSST g band as in the paper.
    arch_kwargs : dict, optional
        Arguments of `~lenskit.estimators.networks.deeplens.DeepLensNet`
        (``units_per_stage``, ``clip``).
    expects : dict, optional
        Instrument, bands and pixel scale the finder was trained for.
    device : str
    """

    name = "deeplens"
    targets = ("p_lens",)
    architecture = "deeplens"

    def __init__(self, in_shape=(1, 45, 45), arch_kwargs=None, expects=None, device="cpu"):
        in_shape = tuple(int(s) for s in in_shape)
        if len(in_shape) != 3 or min(in_shape) < 1:
            raise ValueError(f"in_shape must be (bands, H, W); got {in_shape}")
        self.in_shape = in_shape
        self.arch_kwargs = dict(arch_kwargs or {})
        self.expects = dict(expects or {})
        self.expects.setdefault("shape", list(in_shape))
        self.device = as_device(device)
        self.network = build("deeplens", in_shape=in_shape, n_outputs=1, **self.arch_kwargs).to(self.device)
        #: Lens fraction of the training set (for the prior correction).
        self.train_fraction = 0.5
        #: Detection threshold on p_lens (chosen on a validation set at ``threshold_fpr``).
        self.threshold = 0.5
        self.threshold_fpr = None
        #: Thresholds for test-time augmentation (``tta`` -> threshold; 1 is ``threshold``), set by
        #: `set_threshold`, since averaging over symmetries narrows the score distributions.
        self.tta_thresholds = {}
        self.metrics = {}
        self.training = {}

    @property
    def n_parameters(self):
        return sum(p.numel() for p in self.network.parameters())

    # -- inference ---------------------------------------------------------------------
    def _inputs(self, images, masks, strict=True):
        return network_inputs(images, masks, self.in_shape, "finder", self.expects, strict=strict)

    def _weights_key(self):
        """Identity and in-place version of every weight and buffer: changes whenever any of them does."""
        return tuple((id(t), t._version) for t in (*self.network.parameters(), *self.network.buffers()))

    def clear_compiled(self):
        """Forget the compiled inference graph, so the next ``predict(compile=True)`` compiles afresh."""
        self._compiled = None

    def _compiled_network(self):
        """The network compiled for inference (weights frozen in), cached until any weight changes."""
        key = self._weights_key()
        if getattr(self, "_compiled", None) is None or self._compiled[0] != key:
            # a private copy in the default layout: freezing folds the weights into the graph (oneDNN
            # pre-packed convolutions that choose their own layout; channels-last inputs break them),
            # and the eager path's layout changes to self.network then cannot trigger recompilation.
            # Freezing is read when the graph is first compiled, so calls run inside the patch.
            # Training, set_statistics or load_state_dict change the key, so a stale graph is never used.
            net = copy.deepcopy(self.network).eval().to(memory_format=torch.contiguous_format)
            self._compiled = (key, torch.compile(net))
        return self._compiled[1]

    @torch.no_grad()
    def logits(self, images, masks=None, batch_size=128, progress=False, bfloat16=False, compile=False, tta=1,
               strict=True):
        """
        Raw network outputs (log-odds of a lens at the training set's lens fraction).

        With ``tta`` = 2, 4 or 8 the log-odds are averaged over that many
        symmetries of the pixel grid (`lenskit.estimators.tta.DIHEDRAL`).
        """

        arr, m = self._inputs(images, masks, strict=strict)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        check_targets(self.targets, tta, arr.shape)
        if tta != 1:
            return self.transform_logits(arr, m, n=tta, batch_size=batch_size, progress=progress,
                                         bfloat16=bfloat16, compile=compile).mean(axis=0)
        net = self.network.eval()
        if self.device.type == "cpu" and not compile:  # channels-last: about 1.5x faster on CPUs
            net = net.to(memory_format=torch.channels_last)
        patch = nullcontext()
        if compile:
            import torch._inductor.config as inductor_config  # torch.compile's settings: only when compiling

            net = self._compiled_network()
            patch = inductor_config.patch(freezing=True)
        out = []
        it = range(0, len(arr), int(batch_size))
        if progress:
            it = tqdm(it, desc="finding", unit="batch")
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bool(bfloat16)), patch:
            for i in it:
                x = torch.as_tensor(arr[i:i + batch_size], device=self.device)
                if self.device.type == "cpu" and not compile:
                    x = x.contiguous(memory_format=torch.channels_last)
                mk = None if m is None else torch.as_tensor(np.array(m[i:i + batch_size]), device=self.device)
                out.append(net(x, mk).float().reshape(-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def transform_logits(self, images, masks=None, n=8, batch_size=128, progress=False, bfloat16=False,
                         compile=False, strict=True):
        """
        Log-odds of each cutout under each of the first ``n`` symmetries of the pixel grid, shape (n, N).

        The mean of the first k rows is ``logits(tta=k)``: scoring once for
        the largest ``tta`` serves every smaller one
        (`lenskit.estimators.tta.DIHEDRAL`).
        """

        arr, m = self._inputs(images, masks, strict=strict)
        check_targets(self.targets, n, arr.shape)
        m = None if m is None else np.asarray(m, bool)
        return np.stack([self.logits(transform_images(arr, t), None if m is None else transform_images(m, t),
                                     batch_size=batch_size, progress=progress, bfloat16=bfloat16, compile=compile)
                         for t in DIHEDRAL[:n]])

    def predict(self, images, masks=None, batch_size=128, lens_fraction=None, progress=False, bfloat16=False,
                compile=False, tta=1, strict=True):
        """
        Probability that each cutout holds a strong lens.

        Parameters
        ----------
        images : array-like or `~lenskit.LensDataset`
            (N, bands, H, W) cutouts in the training units (electrons per second).
        masks : array-like of bool, optional
            True where a pixel is masked (set to 0 after preprocessing).
        lens_fraction : float, optional
            The lens fraction of the data; probabilities are mapped from the
            training fraction with Lanusse et al. eq. 5 (and so is the
            threshold), which leaves the ranking unchanged.
        bfloat16 : bool
            Run the network in bfloat16 (about twice as fast on CPUs with
            AVX-512 BF16; check the metrics before relying on it).
        compile : bool
            Run a ``torch.compile`` graph with the weights frozen in (compiled
            on the first call, which takes tens of seconds, then reused until
            any weight or preprocessing statistic changes):
            worth it for large surveys; with ``bfloat16`` the fastest mode
            (``benchmarks/find.py``).
        tta : {1, 2, 4, 8}
            Test-time augmentation: average the log-odds over this many
            rotations and mirrors of each cutout (``tta`` network passes).
            The candidates then use the threshold that `set_threshold` chose
            for the same ``tta`` on the validation set; the shipped finder
            has them for 1, 2, 4 and 8.
        strict : bool
            Refuse a `~lenskit.LensDataset` whose instrument, bands or pixel
            scale differ from ``expects``
            (`lenskit.estimators.inputs.check_expects`); False warns.

        Returns
        -------
        `~lenskit.Estimate`
            Columns ``p_lens`` and ``candidate`` (``p_lens >= threshold``);
            ``meta`` holds the threshold and the false-positive rate it was chosen at.
        """

        lens_fraction = check_number("lens_fraction", lens_fraction, low=0, high=1, low_open=True, high_open=True,
                                     allow_none=True)
        thr = self._threshold_for(tta)
        z = self.logits(images, masks, batch_size=batch_size, progress=progress, bfloat16=bfloat16, compile=compile,
                        tta=tta, strict=strict)
        self._warn_untrained()
        p = 1 / (1 + np.exp(-z))
        candidate = p >= thr  # decided before the (monotonic) prior map, so it cannot change
        if lens_fraction is not None:
            p = prior_correction(p, self.train_fraction, lens_fraction)
            thr = float(prior_correction(thr, self.train_fraction, lens_fraction))
        table = QTable({"p_lens": p * u.dimensionless_unscaled, "candidate": candidate})
        table.meta.update(threshold=float(thr), threshold_fpr=self.threshold_fpr, tta=int(tta),
                          lens_fraction=self.train_fraction if lens_fraction is None else float(lens_fraction))
        arr = images.images if hasattr(images, "images") else np.asarray(images)
        prov = Provenance.current(config={"estimator": self.name, "architecture": self.architecture, "tta": int(tta)},
                                  checksums={"input": array_checksum(np.asarray(arr, np.float32)),
                                             "weights": self.weights().checksum})
        return Estimate(table, provenance=prov)

    def _threshold_for(self, tta):
        """The detection threshold for ``tta`` (ValueError, before any work, where none was chosen)."""

        check_targets(self.targets, tta, self.in_shape)
        if tta == 1:
            return self.threshold
        if tta not in self.tta_thresholds:
            raise ValueError(f"tta={tta}: no detection threshold was chosen for it; call "
                             f"set_threshold(validation, tta={tta}) first (chosen so far for tta "
                             f"{sorted({1, *self.tta_thresholds})})")
        return self.tta_thresholds[tta]

    def match_noise(self, data):
        """
        Cutouts scaled so that their background noise is the finder's training noise, band by band.

        The network reads each band in units of its training set's noise
        (``(x - mean_image) / sigma``, Lanusse et al.'s preprocessing), so a
        cutout in other units, or of another depth, reaches it at another
        signal-to-noise than the same sky would have had in training: on
        lenskit's own LSST g test cutouts multiplied by 10 (the same images in
        other units) the shipped finder flags three quarters of them, lenses
        or not (AUROC 0.42); divided by 10, it finds half the lenses.  Here each
        image's background noise is measured (`background_sigma`: the
        sigma-clipped MAD of the pixels outside its sources) and the image
        (with its noise map and truth) scaled by ``sigma / measured``,
        ``sigma`` the training's median noise (``network.pre.sigma``).  On
        lenskit's own test cutouts, which are in the training's units already
        (their noise is the same in every cutout), the per-cutout estimate
        costs a little (``benchmarks/finder_units.py``, 1,000 cutouts of seed
        7: completeness at 1% false positives for theta_E > 1.4", S/N > 20
        0.894 -> 0.876, AUROC 0.981 either way; ``deeplens_lsst_g_robust``
        0.881 -> 0.845, AUROC 0.974 -> 0.971); in any other units it gives
        those figures, where the unscaled ones are meaningless (times 10: 75%
        of the non-lenses candidates; divided by 10: completeness 0.49).
        ``lenskit find`` does it for a single real cutout
        (``--no-noise-match`` leaves it as it is).

        Parameters
        ----------
        data : `~lenskit.LensDataset` or array-like
            (N, bands, H, W) cutouts on the finder's grid.

        Returns
        -------
        `~lenskit.LensDataset` or ndarray
            The same kind as ``data``, scaled; a dataset's ``params`` gain
            ``noise_scale`` (the factor of each image, of its first band for
            several).

        Raises
        ------
        ValueError
            An image whose background has no measurable noise (blank, constant
            or non-finite), named by its index.
        """
        is_ds = isinstance(data, LensDataset)
        imgs = np.asarray(data.images if is_ds else data, dtype=np.float64)
        if imgs.ndim != 4 or imgs.shape[1:] != self.in_shape:
            raise ValueError(f"data must be (N, {', '.join(map(str, self.in_shape))}) cutouts on the finder's grid; "
                             f"got shape {imgs.shape}")
        masks = data.masks if is_ds and data.masks is not None else np.zeros(imgs.shape, bool)
        n, nb = imgs.shape[:2]
        sigma = self.network.pre.sigma.detach().cpu().numpy().astype(np.float64)
        factor = np.ones((n, nb))
        for i in range(n):
            for b in range(nb):
                measured = background_sigma(imgs[i, b], masks[i, b])
                if not (np.isfinite(measured) and measured > 0):
                    raise ValueError(f"data: image {i} (band {b}) has no measurable background noise (blank, "
                                     f"constant or non-finite); the finder cannot match it to its training noise")
                factor[i, b] = sigma[b] / measured
        scale = factor[:, :, None, None]
        scaled = (imgs * scale).astype(np.float32)
        if not is_ds:
            return scaled
        params = data.params.copy()
        params["noise_scale"] = factor[:, 0]
        return LensDataset(scaled, params, bands=data.bands, pixel_scale=data.pixel_scale,
                           instrument=data.instrument,
                           noise=None if data.noise is None else np.asarray(data.noise) * scale,
                           masks=data.masks, truth={k: np.asarray(v) * scale for k, v in data.truth.items()},
                           provenance=data.provenance.with_checksums(images=array_checksum(scaled)))

    def set_threshold(self, validation, fpr=0.01, tta=1, batch_size=128):
        """
        Choose the detection threshold at false-positive rate ``fpr`` on a labelled validation set.

        ``tta`` (1, 2, 4 or 8, or a sequence of them) chooses the threshold
        used by ``predict(tta=...)``; all share the rate of the ``tta=1``
        threshold (chosen too when there is none yet), and changing ``fpr``
        with ``tta=1`` drops those chosen at another rate.  Returns the
        threshold(s) on ``p_lens``.
        """

        yv = self._labels(validation, "validation")
        many = np.ndim(tta) > 0
        ttas = [int(t) for t in np.atleast_1d(tta)]
        asked = list(ttas)
        if self.threshold_fpr is None and 1 not in ttas:
            ttas = [1] + ttas  # the tta=1 threshold comes first, so that all of them share one rate
        for t in ttas:
            check_targets(self.targets, t, self.in_shape)
        if not 0 < float(fpr) < 1:
            raise ValueError(f"fpr must be between 0 and 1; got {fpr!r}")
        if self.threshold_fpr is not None and float(fpr) != float(self.threshold_fpr) and 1 not in ttas:
            raise ValueError(f"fpr={fpr} differs from the rate of the tta=1 threshold ({self.threshold_fpr}); "
                             f"include tta=1 to choose them all at the new rate")
        z = self.transform_logits(validation, n=max(ttas), batch_size=batch_size)  # each symmetry scored once
        out = {t: float(1 / (1 + np.exp(-threshold_at_fpr(z[:t].mean(axis=0), yv, fpr)))) for t in ttas}
        if 1 in out:
            if self.threshold_fpr is not None and float(fpr) != float(self.threshold_fpr):
                self.tta_thresholds = {}
            self.threshold, self.threshold_fpr = out[1], float(fpr)
        self.tta_thresholds.update({t: v for t, v in out.items() if t != 1})
        return {t: out[t] for t in asked} if many else out[asked[0]]

    # -- training ----------------------------------------------------------------------
    def set_statistics(self, dataset):
        """Preprocessing statistics from a training set: its mean image and per-band noise sigma."""
        imgs = np.asarray(dataset.images, np.float64)
        mean = imgs.mean(0)
        if dataset.noise is not None:
            sigma = np.median(np.asarray(dataset.noise, np.float64).reshape(len(imgs), imgs.shape[1], -1), axis=(0, 2))
        else:  # robust sigma of the image minus its mean, per band
            d = (imgs - mean).transpose(1, 0, 2, 3).reshape(imgs.shape[1], -1)
            sigma = robust_sigma(d, axis=1)
        self.network.pre.set_statistics(mean.astype(np.float32), sigma.astype(np.float32))

    def fit(self, train, validation=None, epochs=30, batch_size=128, lr=1e-3, lr_drops=None, fpr=0.01,
            checkpoint=None, time_limit=None, seed=0, progress=True, log=None, augmentation=True, bfloat16=False,
            statistics=True, ddp=None, focal_gamma=0.0):
        """
        Train on a labelled `~lenskit.LensDataset` (from `~lenskit.simulation.finder.LensFinderSimulator`).

        Parameters
        ----------
        train, validation : `~lenskit.LensDataset`
            With a boolean ``is_lens`` column.  The detection threshold is set
            on ``validation`` at false-positive rate ``fpr``.
        epochs : int
            Passes over ``train`` (120 in the paper, for 16,000 images).
        lr : float
            Adam's starting learning rate, divided by 10 at each epoch in
            ``lr_drops`` (default: at 1/3 and 2/3 of ``epochs``, as 40 and 80 of 120).
        checkpoint : path, optional
            Written atomically after every epoch; an existing one is resumed.
        time_limit : float, optional
            Stop after the epoch in progress once this many seconds have
            passed; the learning-rate drops then happen at the same
            fractions of the time.
        augmentation : bool
            Rotations, flips and zoom (default True).
        bfloat16 : bool
            Mixed precision (bfloat16 autocast; weights, batch normalisation
            and the loss stay float32): about 2.5x faster on CPUs with
            AVX-512 BF16.
        statistics : bool
            Set the preprocessing statistics (mean image, noise sigma) from
            ``train`` (default).  False keeps the current ones: for
            fine-tuning loaded weights, whose first layer expects them.
        ddp : bool, optional
            Data-parallel training over the initialised process group (launch
            with ``torchrun``): each rank takes every world-th batch of an epoch.
            Default: whenever a process group is initialised.
        focal_gamma : float
            0 (default): the paper's binary cross-entropy.  Above 0, the focal
            loss of Lin et al. (2017), each cutout's cross-entropy weighted by
            ``(1 - p_t) ** focal_gamma`` (``p_t`` the probability given to its
            true class), so that the cutouts the network already gets right
            weigh less than the hard ones -- at a 1% false-positive threshold,
            the few non-lenses that look like lenses.

        The loop is `lenskit.estimators.training.TrainingLoop`, as for the
        regression estimators; a record (with the validation AUROC and
        completeness) and a checkpoint are made after every epoch.

        Returns
        -------
        self
        """
        epochs = check_int("epochs", epochs, minimum=1)
        batch_size = check_int("batch_size", batch_size, minimum=1)
        lr = check_number("lr", lr, low=0, low_open=True)
        fpr = check_number("fpr", fpr, low=0, high=1, low_open=True, high_open=True)
        time_limit = check_number("time_limit", time_limit, low=0, low_open=True, allow_none=True)
        seed = check_int("seed", seed, minimum=0)
        focal_gamma = check_number("focal_gamma", focal_gamma, low=0, high=10)
        if checkpoint is not None:
            check_output_path(checkpoint, overwrite=True, name="checkpoint")
        y_all = self._labels(train, "train")
        if validation is not None:
            self._labels(validation, "validation")
        x_all, m_all = self._inputs(train, None)
        drops = sorted(lr_drops) if lr_drops is not None else [epochs / 3, 2 * epochs / 3]
        opt = torch.optim.Adam(self.network.parameters(), lr=lr)
        ddp, rank, world = ddp_context(ddp)
        data = FixedBatches(torch.as_tensor(x_all), torch.as_tensor(y_all, dtype=torch.float32),
                            None if m_all is None else torch.as_tensor(np.ascontiguousarray(m_all)), batch_size,
                            seed=seed, augment=augment if augmentation else None, rank=rank, world=world)
        spe = data.per_epoch
        config = {"epochs": epochs, "batch_size": int(batch_size), "lr": lr, "lr_drops": drops, "seed": int(seed),
                  "n_train": len(y_all), "augmentation": bool(augmentation), "bfloat16": bool(bfloat16),
                  "statistics_from_train": bool(statistics)}
        if focal_gamma > 0:
            config["focal_gamma"] = float(focal_gamma)

        def loss(out, y):
            return focal_loss(out.reshape(-1), y, focal_gamma)

        def on_record(step):
            epoch = math.ceil(step / spe)
            rec = {"epoch": epoch}
            if validation is not None:
                z = self.logits(validation)
                yv = self._labels(validation, "validation")
                rec.update(val_auroc=auroc(z, yv), val_tpr_at_fpr=tpr_at_fpr(z, yv, fpr))
            self.training = {**config, "completed_epochs": epoch, "completed_steps": step}
            return rec

        loop = TrainingLoop(self.network, opt, loss, steps=epochs * spe, schedule=step_schedule(lr, drops, epochs),
                            record_every=spe, device=self.device,
                            checkpoint=None if checkpoint is None else Checkpoint(checkpoint), time_limit=time_limit,
                            autocast=torch.bfloat16 if bfloat16 else None, evaluate=on_record, ddp=ddp,
                            extra=lambda step, history: {"train_fraction": self.train_fraction},
                            progress=progress, log=log)
        if loop.resume(steps_per_epoch=spe):
            self.train_fraction = float(loop.resumed_extra["train_fraction"])
        elif statistics:
            self.set_statistics(train)
        self.train_fraction = float(np.mean(y_all))
        history = loop.run(data.batches(loop.step))
        self.training = {**config, "completed_epochs": math.ceil(loop.step / spe), "completed_steps": loop.step,
                         "history": history}
        self.tta_thresholds = {}  # chosen for the old weights
        if validation is not None:
            self.set_threshold(validation, fpr=fpr)
        return self

    @staticmethod
    def _labels(dataset, name):
        params = getattr(dataset, "params", None)
        if params is None or "is_lens" not in params.colnames:
            raise ValueError(f"{name} must be a LensDataset with a boolean 'is_lens' column "
                             f"(simulate it with LensFinderSimulator)")
        y = np.asarray(params["is_lens"], bool)
        if y.all() or not y.any():
            raise ValueError(f"{name} must hold both lenses and non-lenses; got {int(y.sum())} of {len(y)} lenses")
        return y

    # -- persistence ---------------------------------------------------------------------
    def config(self):
        return {"estimator": self.name, "architecture": self.architecture, "in_shape": list(self.in_shape),
                "arch_kwargs": self.arch_kwargs, "expects": self.expects, "training": self.training,
                "train_fraction": self.train_fraction, "threshold": self.threshold,
                "threshold_fpr": self.threshold_fpr,
                "tta_thresholds": {str(k): float(v) for k, v in sorted(self.tta_thresholds.items())}}

    @classmethod
    def from_weights(cls, weights, device="cpu"):
        c = weights.config
        check_weights(weights, "deeplens", in_shape=tuple(c["in_shape"]), n_outputs=1,
                      **dict(c.get("arch_kwargs") or {}))
        est = cls(in_shape=c["in_shape"], arch_kwargs=c.get("arch_kwargs"), expects=c.get("expects"), device=device)
        est.network.load_state_dict(weights.to_state_dict())
        est.train_fraction = float(c.get("train_fraction", 0.5))
        est.threshold = float(c.get("threshold", 0.5))
        est.threshold_fpr = c.get("threshold_fpr")
        est.tta_thresholds = {int(k): float(v) for k, v in dict(c.get("tta_thresholds", {})).items()}
        est.training = dict(c.get("training", {}))
        est.metrics = dict(weights.metrics)
        return est

    @classmethod
    def load(cls, path, device="cpu"):
        w = read(path)
        if not isinstance(w, ModelWeights) or w.architecture != "deeplens":
            raise TypeError(f"{path} does not hold DeepLens finder weights")
        return cls.from_weights(w, device=device)

    def __repr__(self):
        return f"<DeepLensFinder {self.in_shape} -> p_lens, {self.n_parameters:,} parameters>"
