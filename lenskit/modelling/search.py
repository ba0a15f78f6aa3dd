"""
The search of a fit: every start optimised cheaply, the best few refined (Adam, then L-BFGS), and the
Laplace approximation of the uncertainties at the optimum.
"""

import numpy as np
import torch

__all__ = ["adam", "refine", "multistart", "laplace_covariance"]


def adam(nll, z, steps, lr=0.05):
    """Adam on ``nll(z)`` from ``z``; returns the last point with a finite value (an overflowing step is not kept)."""
    z = z.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    good = z.detach().clone()
    for _ in range(int(steps)):
        opt.zero_grad()
        loss = nll(z)
        if not torch.isfinite(loss):
            return good
        good = z.detach().clone()
        loss.backward()
        if not torch.isfinite(z.grad).all():
            return good
        opt.step()
    return z.detach()


def refine(nll, z, adam_steps, lbfgs_steps):
    """Adam (lr 0.02), then L-BFGS with a strong-Wolfe line search; a failed or overflowing L-BFGS keeps Adam's."""
    z = adam(nll, z, adam_steps, lr=0.02).requires_grad_(True)
    if lbfgs_steps:
        lb = torch.optim.LBFGS([z], lr=1.0, max_iter=int(lbfgs_steps), line_search_fn="strong_wolfe")

        def closure():
            lb.zero_grad()
            loss = nll(z)
            loss.backward()
            return loss

        before = z.detach().clone()
        try:
            lb.step(closure)
        except RuntimeError:  # a failed line search keeps the Adam result
            pass
        with torch.no_grad():
            if not torch.isfinite(nll(z)):
                z.copy_(before)
    return z.detach()


def multistart(cheap_nll, full_nll, starts, search_steps, n_refine, adam_steps, lbfgs_steps):
    """
    Optimise every start of ``starts`` (coordinate vectors) on ``cheap_nll``, refine the best on ``full_nll``.

    Returns
    -------
    best : (float, `torch.Tensor`)
        The lowest ``full_nll`` and its point.
    finals : list of float
        Each start's final chi-square (2 nll; NaN where not refined).
    """
    scored = []
    for z in starts:
        if search_steps:
            z = adam(cheap_nll, z, search_steps)
        with torch.no_grad():
            val = float(cheap_nll(z))
        scored.append((val if np.isfinite(val) else np.inf, z))
    order = sorted(range(len(scored)), key=lambda i: scored[i][0])
    finals = [float("nan")] * len(scored)
    best = None
    for i in order[: int(n_refine)]:
        if not np.isfinite(scored[i][0]):
            continue
        z = refine(full_nll, scored[i][1], adam_steps, lbfgs_steps)
        with torch.no_grad():
            val = float(full_nll(z))
        finals[i] = 2 * val
        if np.isfinite(val) and (best is None or val < best[0]):
            best = (val, z.clone())
    if best is None:
        raise RuntimeError("every start of the fit diverged (non-finite likelihood)")
    return best, finals


#: `laplace_covariance`: Hessian eigenvalues at or below this fraction of the largest one's size are not curvature.
FLAT_RTOL = 1e-10
#: `laplace_covariance`: a parameter whose squared weight in the non-positive directions exceeds this has no error.
FLAT_WEIGHT = 0.1


def laplace_covariance(nll, z, transform):
    """
    Covariance of the physical parameters: the inverse Hessian of ``nll`` at ``z`` mapped by the transform's Jacobian.

    Where the Hessian is not positive definite -- the likelihood is flat or
    falls along some directions, so that ``z`` is no minimum there (a search
    stopped short, a saddle, degenerate parameters) -- its inverse is no
    covariance: the parameters that carry those directions (squared weight
    above ``FLAT_WEIGHT``, 0.1) get NaN rows and columns, and the others the inverse
    over the directions of positive curvature.  Returns None when the
    Hessian is not finite.
    """
    H = torch.autograd.functional.hessian(nll, z)
    H = 0.5 * (H + H.T)
    if not bool(torch.isfinite(H).all()):
        return None
    J = transform.jacobian(z)
    lam, vec = torch.linalg.eigh(H)
    good = lam > FLAT_RTOL * float(lam.abs().max().clamp(min=torch.finfo(lam.dtype).tiny))
    if bool(good.all()):
        return (J @ torch.linalg.inv(H) @ J.T).numpy()
    v = vec[:, good]
    cov = J @ ((v / lam[good]) @ v.T) @ J.T
    flat = (vec[:, ~good] ** 2).sum(1) > FLAT_WEIGHT  # free parameters along the flat or falling directions
    unmeasured = (J[:, flat] != 0).any(1)  # the physical parameters that depend on them
    cov[unmeasured, :] = float("nan")
    cov[:, unmeasured] = float("nan")
    return cov.numpy()
