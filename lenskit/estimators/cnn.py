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

import warnings

import astropy.units as u
import numpy as np
import torch
from astropy.table import QTable
from tqdm.auto import tqdm

from lenskit.core.dataset import LensDataset
from lenskit.core.estimate import Estimate
from lenskit.core.provenance import Provenance, array_checksum
from lenskit.core.validation import as_device
from lenskit.core.validation import indefinite as _a
from lenskit.core.weights import ModelWeights
from lenskit.estimators.inputs import network_inputs
from lenskit.estimators.network_estimator import NetworkEstimator
from lenskit.estimators.networks import build, check_weights
from lenskit.estimators.targets import UNITS, TargetSpec, log_sigma
from lenskit.estimators.training import train
from lenskit.estimators.tta import DIHEDRAL, check_targets, transform_images, untransform
from lenskit.io.asdf import read
from lenskit.plugins import get
from lenskit.simulation.assembly import COLUMN_UNITS

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
    conditions : sequence of str, optional
        Per-image numbers the network reads beside the image: columns of a
        dataset's parameter table, such as ``"psf_fwhm"`` (arcsec), which a real
        analysis knows and a network would otherwise have to guess from the
        pixels.  Needs an architecture that reads them (``lenskit_net``).
        `fit` takes them from the simulator's systems (standardised with
        its prior); `predict` from a `~lenskit.LensDataset`'s table or its
        ``conditions`` argument.
    device : str
    """

    name = "cnn"
    default_architecture = "lenskit_net"
    conditions = ()  # (subclasses that build their own network read none)
    condition_mean = condition_std = condition_range = None

    def __init__(self, architecture=None, in_shape=(1, 192, 192), targets=DEFAULT_TARGETS, uncertainty=True, spin=2,
                 arch_kwargs=None, expects=None, device="cpu", conditions=None):
        self.architecture = architecture or self.default_architecture
        in_shape = tuple(int(s) for s in in_shape)
        if len(in_shape) != 3 or min(in_shape) < 1:
            raise ValueError(f"in_shape must be (bands, H, W); got {in_shape}")
        self.in_shape = in_shape
        self.spec = TargetSpec(targets, spin=spin)
        self.targets = self.spec.names
        self.uncertainty = bool(uncertainty)
        self.arch_kwargs = dict(arch_kwargs or {})
        if isinstance(conditions, str) or not all(isinstance(c, str) for c in (conditions or ())):
            raise TypeError(f"conditions must be a sequence of column names (str); got {conditions!r}")
        self.conditions = tuple(conditions or ())
        if len(set(self.conditions)) != len(self.conditions) or set(self.conditions) & set(self.spec.names):
            raise ValueError(f"conditions must be distinct and not targets; got {list(self.conditions)}")
        if self.conditions:
            self.arch_kwargs["n_conditions"] = len(self.conditions)
        elif self.arch_kwargs.get("n_conditions"):
            raise ValueError("arch_kwargs['n_conditions'] without conditions: name them with conditions=[...]")
        #: Mean and spread that standardise the conditions for the network (set by `fit`, kept in the weights).
        self.condition_mean = self.condition_std = None
        #: (k, 2) smallest and largest value of each condition in training: `predict` warns outside.
        self.condition_range = None
        self.expects = dict(expects or {})
        self.expects.setdefault("shape", list(in_shape))
        self.device = as_device(device)
        try:
            self.network = build(self.architecture, in_shape=in_shape, n_outputs=self.n_outputs, **self.arch_kwargs)
        except TypeError as exc:
            if self.conditions and "n_conditions" in str(exc):
                raise TypeError(f"the architecture {self.architecture!r} reads no conditions; use lenskit_net "
                                f"for conditions={list(self.conditions)}") from exc
            raise
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

    def condition_values(self, images, n, conditions=None):
        """
        The conditions of ``n`` images, (n, len(conditions)) in their table units, or None without conditions.

        Taken from ``conditions`` (name -> one value or one per image; a `~astropy.units.Quantity` is
        converted), else from the table of a `~lenskit.LensDataset` ``images``.
        """
        given = {} if conditions is None else dict(conditions)
        if not self.conditions:
            if given:
                raise ValueError(f"this estimator reads no conditions; got {sorted(given)}")
            return None
        unknown = sorted(set(given) - set(self.conditions))
        if unknown:
            raise ValueError(f"unknown condition(s) {unknown}; this estimator reads {list(self.conditions)}")
        table = images.params if isinstance(images, LensDataset) else None
        cols = []
        for name in self.conditions:
            unit = COLUMN_UNITS.get(name)
            if name in given:
                v = given[name]
            elif table is not None and name in table.colnames:
                v = table[name]
            else:
                raise ValueError(f"this estimator reads {name!r} per image (it was trained knowing it): pass "
                                 f"conditions={{{name!r}: ...}} (one value, or one per image"
                                 f"{f', in {unit}' if unit else ''}) or a LensDataset with a {name!r} column")
            if isinstance(v, u.Quantity):
                v = v.to_value(unit or u.dimensionless_unscaled)
            v = np.asarray(v, dtype=float)
            if v.ndim == 0:
                v = np.full(n, float(v))
            if v.shape != (n,):
                raise ValueError(f"conditions[{name!r}] must be one value or one per image ({n}); got shape {v.shape}")
            if not np.all(np.isfinite(v)):
                raise ValueError(f"conditions[{name!r}] must be finite; got {v[~np.isfinite(v)][:3]}")
            cols.append(v)
        values = np.stack(cols, axis=1)
        if self.condition_range is not None:
            for j, name in enumerate(self.conditions):
                lo, hi = self.condition_range[j]
                slack = 0.05 * (hi - lo)
                out = (values[:, j] < lo - slack) | (values[:, j] > hi + slack)
                if out.any():
                    warnings.warn(f"{int(out.sum())} of {n} images have {name} outside the range this estimator "
                                  f"was trained on ({lo:.3g}-{hi:.3g}): its estimates there are extrapolations",
                                  stacklevel=3)
        return values

    def standardize_conditions(self, values):
        """Condition values (N, k) in table units -> the network's standardised float32 tensor."""
        if self.condition_mean is None:
            raise RuntimeError("this estimator's conditions have not been standardised yet: fit it first")
        z = (torch.as_tensor(values, dtype=torch.float64) - torch.as_tensor(self.condition_mean)) / torch.as_tensor(
            self.condition_std)
        return z.to(device=self.device, dtype=torch.float32)

    @torch.no_grad()
    def predict_tensors(self, x, mask=None, conditions=None):
        """
        Raw prediction on a tensor batch: (means, stds or None) in lenskit conventions.

        ``conditions``: (N, len(self.conditions)) values in their table units, when the estimator has them.
        """
        self.network.eval()
        if self.conditions:
            if conditions is None:
                raise ValueError(f"this estimator reads {list(self.conditions)} per image; pass conditions")
            out = self.network(x, mask, self.standardize_conditions(conditions))
        else:
            out = self.network(x, mask)
        k = self.spec.k
        sigma = torch.exp(log_sigma(out[:, k:2 * k])) if self.uncertainty else None
        return self.spec.from_network(out[:, :k], sigma)

    def predict(self, images, masks=None, batch_size=64, progress=False, tta=1, strict=True, conditions=None):
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
        conditions : dict, optional
            For an estimator with `conditions`: name -> one value or one per
            image (e.g. ``{"psf_fwhm": 0.7 * u.arcsec}``); default: the
            columns of a `~lenskit.LensDataset`'s table.

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
        cond = self.condition_values(images, len(arr), conditions)
        self._warn_untrained()
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
                mu, sd = self.predict_tensors(x, mk, None if cond is None else cond[i:i + batch_size])
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
        c = {"estimator": self.name, "architecture": self.architecture, "in_shape": list(self.in_shape),
             "targets": self.spec.to_config(), "uncertainty": self.uncertainty, "arch_kwargs": self.arch_kwargs,
             "expects": self.expects, "training": self.training}
        if self.conditions:
            plain = lambda a: None if a is None else np.asarray(a, dtype=float).tolist()  # noqa: E731
            c["conditions"] = {"names": list(self.conditions), "mean": plain(self.condition_mean),
                               "std": plain(self.condition_std), "range": plain(self.condition_range)}
        return c

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
        cond = dict(c.get("conditions") or {})
        CNNEstimator.__init__(est, architecture=c["architecture"], in_shape=c["in_shape"], targets=spec.names,
                              uncertainty=c["uncertainty"], spin=spec.spin, arch_kwargs=c.get("arch_kwargs"),
                              expects=c.get("expects"), device=device, conditions=cond.get("names"))
        if cond.get("mean") is not None:
            est.condition_mean = np.asarray(cond["mean"], dtype=float)
            est.condition_std = np.asarray(cond["std"], dtype=float)
        if cond.get("range") is not None:
            est.condition_range = np.asarray(cond["range"], dtype=float).reshape(-1, 2)
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
            raise TypeError(f"{path} holds {_a(type(w).__name__)}, not model weights")
        return cls.from_weights(w, device=device)

    def __repr__(self):
        given = f" | {list(self.conditions)}" if self.conditions else ""
        return (f"<{type(self).__name__} {self.architecture} {self.in_shape}{given} -> {list(self.targets)}"
                f"{' +std' if self.uncertainty else ''}, {self.n_parameters:,} parameters>")
