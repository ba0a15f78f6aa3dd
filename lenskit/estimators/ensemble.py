"""
The trainable combination of Hezaveh et al. (2017): a final layer over frozen networks.

"To average the results of the four networks, we combine their individual
predictions in a final trainable layer.  For this, we fix the four networks
and only train the parameters of this layer alone."  `EnsembleEstimator`
does this for any set of `~lenskit.estimators.regression.CNNEstimator`
members with the same input and targets: a linear layer maps the members'
standardised means and log standard deviations to the combined mean and log
standard deviation.  Its estimate also reports the members' spread.
"""

import astropy.units as u
import numpy as np
import torch
import torch.nn as nn
from astropy.table import QTable

from lenskit.core.estimate import Estimate
from lenskit.core.provenance import Provenance, array_checksum
from lenskit.core.validation import as_device
from lenskit.core.weights import ModelWeights
from lenskit.estimators.cnn import CNNEstimator
from lenskit.estimators.targets import UNITS, TargetSpec, log_sigma
from lenskit.estimators.training import train

__all__ = ["EnsembleEstimator", "Combination"]


class Combination(nn.Module):
    """Frozen members and the trainable combination layer."""

    def __init__(self, members, spec):
        super().__init__()
        conditional = [i for i, m in enumerate(members) if getattr(m, "conditions", ())]
        if conditional:
            raise ValueError(f"members {conditional} read per-image conditions, which the ensemble does not pass "
                             "on; combine estimators without conditions")
        self.members = nn.ModuleList([m.network for m in members])
        self._members = members
        self.spec = spec
        k, n = spec.k, len(members)
        self.combine = nn.Linear(2 * k * n, 2 * k)
        with torch.no_grad():  # start as the plain average of the members
            self.combine.weight.zero_()
            self.combine.bias.zero_()
            for j in range(n):
                for i in range(k):
                    self.combine.weight[i, j * 2 * k + i] = 1.0 / n
                    self.combine.weight[k + i, j * 2 * k + k + i] = 1.0 / n
        for p in self.members.parameters():
            p.requires_grad_(False)

    def train(self, mode=True):
        super().train(mode)
        self.members.eval()  # members stay frozen, batch-norm statistics included
        return self

    def member_outputs(self, x, mask=None):
        feats, means = [], []
        with torch.no_grad():
            for m in self._members:
                mu, sd = m.predict_tensors(x, mask)
                if sd is None:
                    sd = torch.ones_like(mu) * torch.as_tensor(m.spec.std, dtype=mu.dtype, device=mu.device)
                z = self.spec.to_network(mu)
                ls = torch.log(sd / torch.as_tensor(self.spec.std, dtype=sd.dtype, device=sd.device))
                feats.append(torch.cat([z, ls], 1))
                means.append(mu)
        return torch.cat(feats, 1), torch.stack(means, 0)

    def forward(self, x, mask=None):
        feats, _ = self.member_outputs(x, mask)
        return self.combine(feats)


class EnsembleEstimator(CNNEstimator):
    """
    A trainable combination of frozen estimators.

    Parameters
    ----------
    members : sequence of `~lenskit.estimators.regression.CNNEstimator`
        Trained estimators with the same input shape and targets.
    """

    supports_tta = False  # its members each see the images once

    name = "ensemble"

    def __init__(self, members=(), device="cpu", **kwargs):
        members = list(members)
        if not members:
            raise ValueError("members must hold at least one trained estimator")
        shapes = {tuple(m.in_shape) for m in members}
        targets = {tuple(m.targets) for m in members}
        if len(shapes) > 1 or len(targets) > 1:
            raise ValueError(f"members must share input shape and targets; got shapes {shapes}, targets {targets}")
        self.members = members
        self.architecture = "ensemble"
        self.in_shape = members[0].in_shape
        base = members[0].spec
        self.spec = TargetSpec(base.names, spin=2, mean=base.mean if base.spin == 2 else None,
                               std=base.std if base.spin == 2 else None)
        self.targets = self.spec.names
        self.uncertainty = True
        self.arch_kwargs = {}
        self.expects = dict(members[0].expects)
        self.device = as_device(device)
        self.network = Combination(members, self.spec).to(self.device)
        self.metrics, self.training = {}, {}

    def is_trained(self):
        """Whether every member has been trained (the combination starts as their average)."""
        return all(m.is_trained() for m in self.members)

    def fit(self, simulator, steps=500, **kwargs):
        """Train only the combination layer (the members stay fixed)."""

        kwargs.setdefault("channels_last", False)
        train(self, simulator, steps=steps, **kwargs)
        return self

    def predict(self, images, masks=None, batch_size=64, progress=False, strict=True):
        """As `CNNEstimator.predict`, plus ``<target>_spread``: the standard deviation of the members' means."""

        arr, m = self._inputs(images, masks, strict=strict)
        self._warn_untrained()
        k = self.spec.k
        mus, sds, spreads = [], [], []
        self.network.eval()
        with torch.no_grad():
            for i in range(0, len(arr), batch_size):
                x = torch.as_tensor(arr[i:i + batch_size], device=self.device)
                mk = None if m is None else torch.as_tensor(np.array(m[i:i + batch_size], bool), device=self.device)
                feats, means = self.network.member_outputs(x, mk)  # each member runs once
                out = self.network.combine(feats)
                mu, sd = self.spec.from_network(out[:, :k], torch.exp(log_sigma(out[:, k:2 * k])))
                mus.append(mu.cpu().numpy())
                sds.append(sd.cpu().numpy())
                spreads.append(means.std(0, unbiased=False).cpu().numpy())
        mu, sd, spread = (np.concatenate(a) for a in (mus, sds, spreads))
        t = QTable()
        for j, name in enumerate(self.targets):
            unit = UNITS.get(name, u.dimensionless_unscaled)
            t[name] = mu[:, j] * unit
            t[f"{name}_std"] = sd[:, j] * unit
            t[f"{name}_spread"] = spread[:, j] * unit
        prov = Provenance.current(config={"estimator": self.name, "members": [e.architecture for e in self.members]},
                                  checksums={"input": array_checksum(arr), "weights": self.weights().checksum})
        return Estimate(t, provenance=prov)

    def config(self):
        c = super().config()
        c["members"] = [m.config() for m in self.members]
        return c

    @classmethod
    def from_weights(cls, weights, device="cpu"):
        c = weights.config
        members = []
        for i, mc in enumerate(c["members"]):
            prefix = f"members.{i}."
            arrays = {k[len(prefix):]: v for k, v in weights.arrays.items() if k.startswith(prefix)}
            members.append(CNNEstimator.from_weights(ModelWeights(mc["architecture"], arrays, config=mc), device))
        ens = cls(members, device=device)
        ens.spec = TargetSpec.from_config(c["targets"])
        ens.network.spec = ens.spec
        state = {k: v for k, v in weights.to_state_dict().items() if k.startswith("combine.")}
        ens.network.combine.load_state_dict({k[len("combine."):]: v for k, v in state.items()})
        ens.metrics = dict(weights.metrics)
        return ens
