"""
Drawing the parameters of simulated systems: priors, lens mass, lens light and band fluxes.

`build_priors` merges the generic priors, the instrument's and the user's
(Quantities converted, unknown names refused); `SystemDrawer` draws from them
in a fixed order of random numbers, so the same generator gives the same
systems.
"""

import astropy.units as u
import numpy as np

from lenskit.core.priors import Fixed, Normal, Uniform, as_prior
from lenskit.core.validation import as_float
from lenskit.simulation.residuals import RESIDUAL_PRIORS

__all__ = ["SystemDrawer", "build_priors", "GENERIC_PRIORS", "KNOWN_PRIORS", "PRIOR_UNITS", "DISC_PRIORS",
           "plain_names"]

#: Priors that do not depend on the instrument.
GENERIC_PRIORS = {
    "gamma": Uniform(0.0, 0.1),              # external shear modulus
    "light_q_ratio": Normal(1.02, 0.12, 0.5, 2.0),  # q_mass / q_light (Pearson et al. 2019)
    "light_dphi": Normal(0.0, 10.0),         # degrees, light minus mass angle (Pearson et al. 2019)
    "colour_scatter": 0.1,                   # mag rms about the instrument's typical colours
    # a second, exponential lens-light component (a disc; none by default) and a light-mass offset
    "light_disc_fraction": 0.0,              # of the reference band's lens flux
    "light_disc_R_e_ratio": Uniform(1.0, 3.0),  # disc R_e / bulge R_e
    "light_disc_q": Uniform(0.3, 1.0),       # the disc's axis ratio
    "light_twist": Normal(0.0, 20.0),        # degrees, disc minus bulge angle (an isophote twist)
    "light_disc_blueness": Uniform(0.0, 1.0),  # disc colours from the lens's (0) to the source's (1): a gradient
    "light_offset": 0.0,                     # arcsec, light centre from the mass centre (random direction)
    # lens_light="residual": the imperfect model subtracted (lenskit.simulation.residuals)
    **RESIDUAL_PRIORS,
}
#: The priors of the lens light's second component (drawn only when ``light_disc_fraction`` is not zero).
DISC_PRIORS = ("light_disc_fraction", "light_disc_R_e_ratio", "light_disc_q", "light_twist", "light_disc_blueness")
KNOWN_PRIORS = {"theta_E", "ellipticity", "x0", "y0", "gamma", "lens_mag", "source_mag", "light_R_e",
                "light_n", "light_q_ratio", "light_dphi", "colour_scatter", *DISC_PRIORS, "light_offset",
                "residual_amplitude", "residual_shift", "residual_profile"}
#: The unit of each known prior (Quantities are converted to it; plain numbers are taken to be in it).
PRIOR_UNITS = {"theta_E": u.arcsec, "x0": u.arcsec, "y0": u.arcsec, "light_R_e": u.arcsec, "lens_mag": u.mag,
               "source_mag": u.mag, "light_dphi": u.deg, "colour_scatter": u.mag, "ellipticity": u.one,
               "gamma": u.one, "light_n": u.one, "light_q_ratio": u.one, "light_disc_fraction": u.one,
               "light_disc_R_e_ratio": u.one, "light_disc_q": u.one, "light_twist": u.deg,
               "light_disc_blueness": u.one, "light_offset": u.arcsec, "residual_amplitude": u.one,
               "residual_shift": u.pix, "residual_profile": u.one}
#: Mass parameters every simulator draws without a prior of their own.
GENERIC_MASS = ("theta_E", "e1", "e2", "x0", "y0", "gamma1", "gamma2")


def plain_names(mass_model):
    """Each mass parameter's name without a composite's component prefix (``"0_x0"`` -> ``"x0"``)."""
    return {n: n.split("_", 1)[1] if n[:1].isdigit() and "_" in n else n for n in mass_model.param_names}


def build_priors(user, instrument, mass_model):
    """The simulator's priors: generic, the mass model's (``default_priors``), the instrument's, then ``user``'s (names checked)."""
    if not isinstance(user, dict):
        raise TypeError(f"priors must be a dict; got {type(user).__name__}")
    priors = dict(GENERIC_PRIORS)
    for component in getattr(mass_model, "components", [mass_model]):  # e.g. the EPL's slope
        priors.update(getattr(component, "default_priors", {}) or {})
    priors.update(getattr(instrument, "default_priors", {}) or {})
    mass_params = set(mass_model.param_names)
    for key, value in user.items():
        if key not in KNOWN_PRIORS and key not in mass_params:
            raise ValueError(f"unknown prior {key!r}; expected one of {sorted(KNOWN_PRIORS | mass_params)}")
        priors[key] = value
    out = {}
    for key, value in priors.items():
        unit = PRIOR_UNITS.get(key) or mass_model.param_units.get(key)
        out[key] = (as_float(value, f"priors[{key!r}]", unit) if key == "colour_scatter"
                    else as_prior(value, f"priors[{key!r}]", unit))
    for key in ("theta_E", "x0", "y0", "ellipticity", "lens_mag", "source_mag", "light_R_e", "light_n"):
        if key not in out:
            raise ValueError(f"instrument {instrument.name!r} has no default prior for {key!r}; "
                             f"pass priors={{{key!r}: ...}}")
    for outer, plain in plain_names(mass_model).items():
        if plain not in GENERIC_MASS and outer not in out and plain not in out:
            raise ValueError(f"mass model parameter {outer!r} has no default prior; pass priors={{{outer!r}: ...}}")
    return out


class SystemDrawer:
    """
    Draws lens mass, lens light and band fluxes of N systems from the priors.

    Parameters
    ----------
    mass_model : `~lenskit.core.MassModel`
    instrument : `~lenskit.core.Instrument`
    priors : dict
        From `build_priors`.
    misalignment : bool
        Scatter the light's axis ratio and angle about the mass's.
    """

    def __init__(self, mass_model, instrument, priors, misalignment=True):
        self.mass_model = mass_model
        self.instrument = instrument
        self.priors = priors
        self.misalignment = bool(misalignment)
        self.plain = plain_names(mass_model)

    def lens(self, n, rng):
        """Mass parameters (dict of arrays (n,)) and the drawn q, phi, theta_E, centre and auxiliary draws."""
        p = {}
        pr = self.priors
        aux = {}
        if hasattr(pr["theta_E"], "sample_aux"):  # e.g. EinsteinRadius: also sigma_v and redshifts
            theta_E, aux = pr["theta_E"].sample_aux(rng, n)
        else:
            theta_E = pr["theta_E"].sample(rng, n)
        eps = np.clip(pr["ellipticity"].sample(rng, n), 0.0, 0.98)
        q = 1 - eps
        phi = rng.uniform(0, np.pi, n)
        c = (1 - q) / (1 + q)
        gam = pr["gamma"].sample(rng, n)
        gphi = rng.uniform(0, np.pi, n)
        x0, y0 = pr["x0"].sample(rng, n), pr["y0"].sample(rng, n)
        generic = {"theta_E": theta_E, "e1": c * np.cos(2 * phi), "e2": c * np.sin(2 * phi), "x0": x0, "y0": y0,
                   "gamma1": gam * np.cos(2 * gphi), "gamma2": gam * np.sin(2 * gphi)}
        for outer, plain in self.plain.items():
            if outer in pr:
                p[outer] = pr[outer].sample(rng, n)
            elif plain in pr and plain not in generic:
                p[outer] = pr[plain].sample(rng, n)
            else:
                p[outer] = generic[plain]
        self.mass_model.check_params(p)
        extra = {"q": q, "phi": phi, "theta_E": theta_E, "x0": x0, "y0": y0, "aux": aux}
        return p, extra

    @staticmethod
    def _is_zero(prior):
        return isinstance(prior, Fixed) and prior.value == 0

    @property
    def has_disc(self):
        """Whether the lens light has a second, exponential component (``light_disc_fraction`` not zero)."""
        return not self._is_zero(self.priors["light_disc_fraction"])

    def light(self, n, rng, q_mass, phi_mass):
        """
        Lens-light shape and magnitude (dict of arrays (n,)), misaligned from the mass when asked.

        With a disc (`has_disc`) also ``light_disc_fraction``, ``light_disc_R_e``, ``light_disc_e1``,
        ``light_disc_e2`` and ``light_disc_blueness``; with a ``light_offset`` prior, ``light_dx`` and
        ``light_dy`` (arcsec, light centre minus mass centre).  Nothing more is drawn without them, so the
        default population's random numbers are unchanged.
        """
        pr = self.priors
        if self.misalignment:
            q_l = np.clip(q_mass / pr["light_q_ratio"].sample(rng, n), 0.05, 1.0)
            phi_l = phi_mass + np.deg2rad(pr["light_dphi"].sample(rng, n))
        else:
            q_l, phi_l = q_mass, phi_mass
        c = (1 - q_l) / (1 + q_l)
        out = {"light_e1": c * np.cos(2 * phi_l), "light_e2": c * np.sin(2 * phi_l),
               "light_R_e": pr["light_R_e"].sample(rng, n), "light_n": pr["light_n"].sample(rng, n),
               "lens_mag": pr["lens_mag"].sample(rng, n)}
        if self.has_disc:
            frac = np.clip(pr["light_disc_fraction"].sample(rng, n), 0.0, 1.0)
            q_d = np.clip(pr["light_disc_q"].sample(rng, n), 0.05, 1.0)
            phi_d = phi_l + np.deg2rad(pr["light_twist"].sample(rng, n))
            c_d = (1 - q_d) / (1 + q_d)
            out.update(light_disc_fraction=frac,
                       light_disc_R_e=out["light_R_e"] * np.clip(pr["light_disc_R_e_ratio"].sample(rng, n), 0.05, None),
                       light_disc_e1=c_d * np.cos(2 * phi_d), light_disc_e2=c_d * np.sin(2 * phi_d),
                       light_disc_blueness=pr["light_disc_blueness"].sample(rng, n))
        if not self._is_zero(pr["light_offset"]):
            r = np.abs(pr["light_offset"].sample(rng, n))
            a = rng.uniform(0, 2 * np.pi, n)
            out.update(light_dx=r * np.cos(a), light_dy=r * np.sin(a))
        return out

    def lens_fluxes(self, light, rng):
        """
        The lens light's band fluxes: (n, bands) for one component, (n, 2, bands) for bulge and disc.

        The disc takes ``light_disc_fraction`` of the reference band's flux; its colours lie between the
        lens's and the source's typical colours by ``light_disc_blueness`` (a colour gradient: bluer outside).
        """
        flux, _ = self.band_fluxes(light["lens_mag"], "lens", rng)
        if "light_disc_fraction" not in light:
            return flux
        inst = self.instrument
        shift = inst.colour_offsets("source") - inst.colour_offsets("lens")
        f = light["light_disc_fraction"][:, None]
        disc = f * flux * 10 ** (-0.4 * light["light_disc_blueness"][:, None] * shift[None, :])
        return np.stack([(1 - f) * flux, disc], axis=1)

    def band_fluxes(self, mag, kind, rng):
        """Fluxes (n, bands) and magnitudes of reference-band magnitudes ``mag`` with ``kind``'s colours."""
        inst = self.instrument
        n = len(mag)
        offs = inst.colour_offsets(kind)[None, :] + rng.normal(0, self.priors["colour_scatter"], (n, len(inst.bands)))
        if inst.reference_band in inst.bands:  # the drawn magnitude is the reference band's own
            offs[:, inst.bands.index(inst.reference_band)] = 0.0
        mags = mag[:, None] + offs
        return np.stack([inst.flux(mags[:, i], b) for i, b in enumerate(inst.bands)], axis=1), mags
