"""
`CNNEstimator`: a network that regresses lens parameters, with uncertainties.

The base of every regression estimator (the registered ones are in
`lenskit.estimators.regression`, the ensemble in
`lenskit.estimators.ensemble`).

Any architecture in `lenskit.estimators.networks` can be used; the estimator
adds target handling (spin-2 ellipticity by default), a heteroscedastic
Gaussian head (each target gets a predicted standard deviation), batched
prediction into an `~lenskit.Estimate`, training with on-the-fly simulation
(`fit`), and ASDF weights (`save` / `load`).
"""

import astropy.units as u
import numpy as np
import torch
from astropy.table import QTable
from tqdm.auto import tqdm

from lenskit.core.estimate import Estimate
from lenskit.core.provenance import Provenance, array_checksum
from lenskit.core.weights import ModelWeights
from lenskit.estimators.inputs import network_inputs
from lenskit.estimators.network_estimator import NetworkEstimator
from lenskit.estimators.networks import build, check_weights
from lenskit.estimators.targets import UNITS, TargetSpec, log_sigma
from lenskit.estimators.training import train
from lenskit.estimators.tta import DIHEDRAL, check_targets, transform_images, untransform
from lenskit.io.asdf import read
from lenskit.plugins import get

__all__ = ["CNNEstimator", "DEFAULT_TARGETS"]

DEFAULT_TARGETS = ("theta_E", "e1", "e2", "x0", "y0")


class CNNEstimator(NetworkEstimator):
    """
    A CNN that estimates lens parameters from images.

    Parameters
    ----------
    architecture : str
        Network name (see `lenskit.estimators.networks.ARCHITECTURES`).
    in_shape : tuple of int
        (bands, H, W) of the input stamps.
    targets : sequence of str
        Predicted quantities; default ``theta_E, e1, e2, x0, y0``.
    uncertainty : bool
        Predict a standard deviation per target (heteroscedastic Gaussian
        head, trained by negative log-likelihood).  Default True.
    spin : {2, 1}
        Ellipticity representation (1 reproduces Hezaveh et al.'s
        parity-minimum loss).
    arch_kwargs : dict, optional
        Extra arguments of the architecture.
    expects : dict, optional
        What the estimator was trained for (instrument, bands, pixel scale).
    device : str
    """

    name = "cnn"
    default_architecture = "lenskit_net"

    def __init__(self, architecture=None, in_shape=(1, 192, 192), targets=DEFAULT_TARGETS, uncertainty=True, spin=2,
                 arch_kwargs=None, expects=None, device="cpu"):
        self.architecture = architecture or self.default_architecture
        in_shape = tuple(int(s) for s in in_shape)
        if len(in_shape) != 3 or min(in_shape) < 1:
            raise ValueError(f"in_shape must be (bands, H, W); got {in_shape}")
        self.in_shape = in_shape
        self.spec = TargetSpec(targets, spin=spin)
        self.targets = self.spec.names
        self.uncertainty = bool(uncertainty)
        self.arch_kwargs = dict(arch_kwargs or {})
        self.expects = dict(expects or {})
        self.expects.setdefault("shape", list(in_shape))
        self.device = torch.device(device)
        self.network = build(self.architecture, in_shape=in_shape, n_outputs=self.n_outputs, **self.arch_kwargs)
        self.network.to(self.device)
        self.metrics = {}
        self.training = {}

    @property
    def n_outputs(self):
        return self.spec.k * (2 if self.uncertainty else 1)

    @property
    def n_parameters(self):
        return sum(p.numel() for p in self.network.parameters())

    # -- inference ---------------------------------------------------------------------
    def _inputs(self, images, masks, strict=True):
        return network_inputs(images, masks, self.in_shape, "estimator", self.expects, strict=strict)

    @torch.no_grad()
    def predict_tensors(self, x, mask=None):
        """Raw prediction on a tensor batch: (means, stds or None) in lenskit conventions."""
        self.network.eval()
        out = self.network(x, mask)
        k = self.spec.k
        sigma = torch.exp(log_sigma(out[:, k:2 * k])) if self.uncertainty else None
        return self.spec.from_network(out[:, :k], sigma)

    def predict(self, images, masks=None, batch_size=64, progress=False, tta=1, strict=True):
        """
        Estimate the targets for images shaped (N, bands, H, W).

        Parameters
        ----------
        images : array-like, `torch.Tensor` or `~lenskit.LensDataset`
        masks : array-like of bool, optional
            True where a pixel is masked (excluded; NaNs are allowed there).
        batch_size : int
        progress : bool
        tta : {1, 2, 4, 8}
            Test-time augmentation (`lenskit.estimators.tta`): average the
            estimates over this many symmetries of the pixel grid (2: the
            180-degree rotation; 4: and the two mirrors; 8: and the four that
            swap the axes), each mapped back to the original image.  Costs
            ``tta`` network passes; the errors shrink where the network is not
            exactly equivariant (see the Benchmarks page).  The reported
            standard deviation is the root mean square of the copies'.
        strict : bool
            Refuse a `~lenskit.LensDataset` whose instrument, bands, pixel
            scale or lens light differ from ``expects``
            (`lenskit.estimators.inputs.check_expects`); False warns and
            estimates anyway.

        Returns
        -------
        `~lenskit.Estimate`
            Columns per target, with ``<target>_std`` when the estimator has
            uncertainties.
        """

        arr, m = self._inputs(images, masks, strict=strict)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        check_targets(self.targets, tta, arr.shape)
        means, stds = [], []
        it = range(0, len(arr), batch_size)
        if progress:
            it = tqdm(it, desc="estimating", unit="batch")
        for i in it:
            mus, sds = [], []
            for t in DIHEDRAL[:tta]:
                x = torch.as_tensor(transform_images(arr[i:i + batch_size], t), device=self.device)
                mk = None if m is None else torch.as_tensor(  # a writable copy
                    np.array(transform_images(np.asarray(m[i:i + batch_size], dtype=bool), t)), device=self.device)
                mu, sd = self.predict_tensors(x, mk)
                mu, sd = untransform(mu.cpu().numpy(), None if sd is None else sd.cpu().numpy(), self.targets, t)
                mus.append(mu)
                sds.append(sd)
            means.append(np.mean(mus, axis=0))
            if sds[0] is not None:
                stds.append(np.sqrt(np.mean(np.square(sds), axis=0)))
        mu = np.concatenate(means)
        table = QTable()
        for j, t in enumerate(self.targets):
            unit = UNITS.get(t, u.dimensionless_unscaled)
            table[t] = mu[:, j] * unit
            if stds:
                table[f"{t}_std"] = np.concatenate(stds)[:, j] * unit
        prov = Provenance.current(config={"estimator": self.name, "architecture": self.architecture, "tta": int(tta)},
                                  checksums={"input": array_checksum(arr), "weights": self.weights().checksum})
        return Estimate(table, provenance=prov)

    # -- training ----------------------------------------------------------------------
    def fit(self, simulator, steps=1000, **kwargs):
        """
        Train on batches simulated on the fly (see `lenskit.estimators.training.train`).

        Parameters
        ----------
        simulator : `~lenskit.Simulator`
            Draws a fresh realisation every step; its instrument must match ``in_shape``.
        steps : int
            Optimisation steps.
        **kwargs
            ``batch_size``, ``lr``, ``validation`` (a `~lenskit.LensDataset` of
            held-out galaxies), ``checkpoint`` (path), ``checkpoint_every``,
            ``progress``, ``workers``...

        Returns
        -------
        self
        """

        train(self, simulator, steps=steps, **kwargs)
        return self

    # -- persistence ---------------------------------------------------------------------
    def config(self):
        return {"estimator": self.name, "architecture": self.architecture, "in_shape": list(self.in_shape),
                "targets": self.spec.to_config(), "uncertainty": self.uncertainty, "arch_kwargs": self.arch_kwargs,
                "expects": self.expects, "training": self.training}

    @classmethod
    def from_weights(cls, weights, device="cpu"):
        """Rebuild an estimator from `~lenskit.core.ModelWeights`."""
        c = weights.config
        spec = TargetSpec.from_config(c["targets"])

        klass = cls
        if cls is CNNEstimator and c.get("estimator") not in (None, "cnn"):
            try:
                klass = get("estimator", c["estimator"])
            except Exception:
                klass = cls
        # the architecture its configuration describes, built without memory, must match the arrays
        check_weights(weights, c["architecture"], in_shape=tuple(c["in_shape"]),
                      n_outputs=spec.k * (2 if c["uncertainty"] else 1), **dict(c.get("arch_kwargs") or {}))
        est = klass.__new__(klass)
        CNNEstimator.__init__(est, architecture=c["architecture"], in_shape=c["in_shape"], targets=spec.names,
                              uncertainty=c["uncertainty"], spin=spec.spin, arch_kwargs=c.get("arch_kwargs"),
                              expects=c.get("expects"), device=device)
        est.spec = spec
        est.network.load_state_dict(weights.to_state_dict())
        est.metrics = dict(weights.metrics)
        est.training = dict(c.get("training", {}))
        return est

    @classmethod
    def load(cls, path, device="cpu"):
        """Read an estimator written by `save`."""

        w = read(path)
        if not isinstance(w, ModelWeights):
            raise TypeError(f"{path} holds a {type(w).__name__}, not model weights")
        return cls.from_weights(w, device=device)

    def __repr__(self):
        return (f"<{type(self).__name__} {self.architecture} {self.in_shape} -> {list(self.targets)}"
                f"{' +std' if self.uncertainty else ''}, {self.n_parameters:,} parameters>")
