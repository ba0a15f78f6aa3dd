"""
The five plugin interfaces of lenskit.

Every implementation declares ``name``, the key it is registered under, and
documents its parameters.  Third-party packages register their own
implementations through the ``lenskit.plugins`` entry point (see
:doc:`/plugins`).
"""

import abc

import astropy.units as u
import numpy as np

from lenskit.core.config import Configurable

__all__ = [
    "MassModel",
    "Source",
    "SourceBatch",
    "Instrument",
    "Estimator",
    "Deblender",
    "INTERFACES",
]


class MassModel(Configurable, abc.ABC):
    """
    A lens mass distribution: deflection, convergence, potential and Hessian.

    Subclasses set `name`, `param_names` and `param_units`, and implement the
    tensor kernels ``_deflection``, ``_convergence`` and ``_potential`` on
    `torch.Tensor` inputs in arcsec (parameters already broadcast against the
    coordinates).  ``_hessian`` defaults to automatic differentiation of
    ``_deflection``; override it where an analytic form exists.

    The public methods accept NumPy arrays, `torch.Tensor` or
    `~astropy.units.Quantity` coordinates and return the same kind.  Parameters
    broadcast against ``x`` and ``y`` with NumPy rules: for a batch of N
    systems on one (H, W) grid pass parameters shaped (N, 1, 1).
    """

    #: Registry key of the model.
    name = None
    #: Names of the parameters, in order.
    param_names = ()
    #: Unit of each parameter (`astropy.units.Unit`).
    param_units = {}
    #: The range a fit searches for each parameter, ``(low, high)`` in `param_units` (``None`` for an open
    #: end); parameters not named are unbounded.  `lenskit.fit` maps each onto an unbounded coordinate.
    param_ranges = {}
    #: A typical value of each parameter, where a fit starts when nothing better is known (0 if not named).
    param_defaults = {}

    # -- kernels (torch, arcsec) -------------------------------------------------
    @abc.abstractmethod
    def _deflection(self, x, y, **params):
        """Return (alpha_x, alpha_y) tensors in arcsec."""

    @abc.abstractmethod
    def _convergence(self, x, y, **params):
        """Return the convergence tensor."""

    @abc.abstractmethod
    def _potential(self, x, y, **params):
        """Return the lensing potential tensor in arcsec**2."""

    def _hessian(self, x, y, **params):
        """Return (psi_xx, psi_xy, psi_yy) by automatic differentiation."""
        import torch  # heavy (torch): `import lenskit` stays light

        with torch.enable_grad():
            xg = x.detach().clone().requires_grad_(True)
            yg = y.detach().clone().requires_grad_(True)
            ax, ay = self._deflection(xg, yg, **params)
            ones = torch.ones_like(ax)
            axx, axy = torch.autograd.grad(ax, (xg, yg), ones, retain_graph=True)
            ayx, ayy = torch.autograd.grad(ay, (xg, yg), ones)
        return axx, 0.5 * (axy + ayx), ayy

    # -- tensor kernels for the layers above (no conversion, no checks) ---------------------------------------
    def deflection_tensor(self, x, y, **params):
        """
        The deflection kernel on `torch.Tensor` inputs in arcsec (no conversion or checks).

        For ray tracing, rendering and fitting, where inputs are already
        tensors; `deflection` is the checked, unit-aware call.
        """
        return self._deflection(x, y, **params)

    def hessian_tensor(self, x, y, **params):
        """The Hessian kernel ``(psi_xx, psi_xy, psi_yy)`` on tensors in arcsec (no conversion or checks)."""
        return self._hessian(x, y, **params)

    def check_params(self, params):
        """
        Validate parameter values (NumPy arrays in their units).

        Raises `ValueError` naming the parameter.  Subclasses extend this.
        """
        missing = [p for p in self.param_names if p not in params]
        if missing:
            raise ValueError(f"{self.name}: missing parameter(s) {missing}; expected {list(self.param_names)}")
        unknown = [p for p in params if p not in self.param_names]
        if unknown:
            raise ValueError(
                f"{self.name}: unknown parameter(s) {unknown}; expected {list(self.param_names)}"
            )
        for p, v in params.items():
            if not np.all(np.isfinite(np.asarray(v, dtype=float))):
                raise ValueError(f"{self.name}: parameter {p} must be finite; got {v}")

    # -- public API ----------------------------------------------------------------
    def _call(self, kernel, x, y, params, out_unit):
        from lenskit.core.arrays import from_tensor, prepare_call  # torch: loaded on first use

        xt, yt, pt, kind, like = prepare_call(self, x, y, params)
        out = kernel(xt, yt, **pt)
        return from_tensor(out, kind, like, out_unit)

    def deflection(self, x, y, **params):
        """
        Deflection angle at image-plane positions.

        Parameters
        ----------
        x, y : array-like, `torch.Tensor` or `~astropy.units.Quantity`
            Image-plane coordinates (arcsec when plain numbers).
        **params
            Model parameters, in `param_units` when plain numbers.

        Returns
        -------
        alpha_x, alpha_y
            Same type as ``x``.
        """
        return self._call(self._deflection, x, y, params, u.arcsec)

    def convergence(self, x, y, **params):
        """Dimensionless surface density kappa at the given positions."""
        return self._call(self._convergence, x, y, params, u.dimensionless_unscaled)

    def potential(self, x, y, **params):
        """Lensing potential psi (arcsec**2) at the given positions."""
        return self._call(self._potential, x, y, params, u.arcsec**2)

    def hessian(self, x, y, **params):
        """Second derivatives (psi_xx, psi_xy, psi_yy) of the potential."""
        return self._call(self._hessian, x, y, params, u.dimensionless_unscaled)

    # -- capabilities: closed forms a model may offer (lenskit.lensing falls back to numerics) ------------------
    def analytic_critical_curves(self, n=256, **params):
        """
        The critical curves in closed form, or None.

        A model that has them returns a list of ``(x, y)`` float64 tensors
        (arcsec, ``n`` points each) for scalar parameters in their units;
        `lenskit.lensing.critical_curves` otherwise traces them numerically.
        """
        return None

    def hessian_exponent(self, **params):
        """
        How the Hessian scales along rays from the centre, or None.

        A self-similar profile (a power law: the SIE, the EPL) returns, per
        system, the ``t`` of ``H(centre + lam d) = lam**-t H(centre + d)``
        (an array shaped like the parameters); the critical curves of the
        profile with an external shear then follow in closed form along rays
        (`~lenskit.mass_models.composite.CompositeMassModel.multiple_image_regions`).
        """
        return None

    def multiple_image_regions(self, n=96, **params):
        """
        The tangential caustics and cuts of N systems at once, or None.

        A model that has them in closed form returns ``(caustic, cut)``, each
        an array shaped (N, n, 2) of source-plane (x, y) in arcsec, for
        parameter arrays shaped (N,); the `~lenskit.Simulator` otherwise
        traces each system's caustics (`lenskit.lensing.multiple_image_region`).
        """
        return None

    def __repr__(self):
        return f"<{type(self).__name__} '{self.name}' params={list(self.param_names)}>"


class SourceBatch(abc.ABC):
    """
    N background sources drawn by a `Source`, centred on the origin.

    Attributes
    ----------
    params : `~astropy.table.QTable`
        One row per source with its drawn parameters.
    flux : ndarray
        Total (unlensed) flux of each source in the brightness unit.
    size : ndarray
        Half-light radius of each source in arcsec.
    galaxy_id : ndarray or None
        Identity of the real galaxy behind each source (None for analytic ones).
    """

    params = None
    flux = None
    size = None
    galaxy_id = None
    #: Optional fast path: a pure tensor function ``kernel(bx, by, *kernel_args(...))`` equal to
    #: `brightness`, which the Simulator may compile with `torch.compile`.
    kernel = None

    def kernel_args(self, shape, dtype, device):
        """Tensor arguments of `kernel`, each reshaped to ``shape`` for broadcasting."""
        raise NotImplementedError

    def __len__(self):
        return len(self.flux)

    @abc.abstractmethod
    def take(self, index):
        """Return the sub-batch selected by ``index`` (an integer array or boolean mask)."""

    def _take_arrays(self, index, names):
        """
        A batch of this class holding rows ``index`` of the per-source arrays ``names``, as they are.

        ``__init__`` does not run again, so what it derived from its arguments (a Sérsic ``b_n``, an
        inverse incomplete gamma function, and the normalisation) is sliced rather than computed anew:
        ``names`` must list every array attribute ``__init__`` sets.
        """
        out = object.__new__(type(self))
        for k in names:
            setattr(out, k, getattr(self, k)[index])
        return out

    @abc.abstractmethod
    def brightness(self, bx, by):
        """
        Surface brightness at source-plane positions relative to each centre.

        Parameters
        ----------
        bx, by : `torch.Tensor`
            Source-plane coordinates in arcsec, shaped (N, ...).

        Returns
        -------
        `torch.Tensor`
            Surface brightness (flux per arcsec**2), shaped like ``bx``.
        """


class Source(Configurable, abc.ABC):
    """A population of background galaxies that can be sampled."""

    name = None

    def with_split(self, split):
        """
        This source restricted to the galaxies of ``split`` ('train', 'validation', 'test').

        Sources of real galaxies split by galaxy identity, so a test set never
        holds a galaxy seen in training; analytic sources draw new galaxies
        every time and return themselves.
        """
        return self

    @abc.abstractmethod
    def sample(self, n, rng):
        """
        Draw ``n`` sources.

        Parameters
        ----------
        n : int
            Number of sources.
        rng : `numpy.random.Generator`
            Random generator; the same state gives the same sources.

        Returns
        -------
        `SourceBatch`
        """


class Instrument(Configurable, abc.ABC):
    """
    A telescope and camera: bands, pixels, PSF, noise and artefacts.

    Attributes
    ----------
    bands : tuple of str
    pixel_scale : `~astropy.units.Quantity`
        Angular size of one pixel.
    shape : tuple of int
        Stamp shape (H, W).
    zero_points : dict
        AB magnitude giving 1 electron per second, per band.
    exposure_time : `~astropy.units.Quantity`
    effects : list
        Ordered observational effects applied by `observe`.
    """

    name = None
    bands = ()
    pixel_scale = None
    shape = None
    zero_points = {}

    @abc.abstractmethod
    def observe(self, ideal, rng, **truth):
        """
        Turn noise-free images into observed ones.

        Parameters
        ----------
        ideal : `torch.Tensor`
            Noise-free, unconvolved images (N, bands, H, W).
        rng : `numpy.random.Generator`
        **truth
            Extra noise-free components (for example ``arcs``) that effects
            such as masks need.

        Returns
        -------
        `lenskit.instruments.effects.Observation`
        """


class Estimator(abc.ABC):
    """
    Infers quantities (lens parameters, or ``p_lens`` for a finder) from images.

    Attributes
    ----------
    targets : tuple of str
        Names of the predicted quantities.
    expects : dict
        Instrument, bands and stamp shape the estimator was trained for.
    """

    name = None
    targets = ()
    expects = {}
    #: Whether ``predict(images, tta=n)`` averages over n symmetries of the pixel grid (test-time augmentation).
    supports_tta = False

    @abc.abstractmethod
    def predict(self, images, **kwargs):
        """Return an `~lenskit.Estimate` for images shaped (N, bands, H, W)."""

    @abc.abstractmethod
    def fit(self, *args, **kwargs):
        """Train the estimator."""

    @abc.abstractmethod
    def save(self, path):
        """Write the estimator (weights and metadata) to an ASDF file."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path):
        """Read an estimator written by `save`."""


class Deblender(abc.ABC):
    """Separates the lensed arcs from the lens galaxy's light."""

    name = None

    @abc.abstractmethod
    def separate(self, images, **kwargs):
        """Return a `~lenskit.core.Deblended` (arcs, lens light, diagnostics)."""


#: Interface each plugin kind must implement.
INTERFACES = {
    "mass_model": MassModel,
    "source": Source,
    "instrument": Instrument,
    "estimator": Estimator,
    "deblender": Deblender,
}
