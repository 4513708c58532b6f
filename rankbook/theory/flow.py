"""Gradient flow (adaptive ODE solver) and plain GD / SGD / Adam, recorded at chosen times.

Time is reported as rescaled time τ = t / log(1/α), the paper's x axis.

Why log-coordinates: on a plateau a small coordinate grows like e^{g t}, so a
solver in θ coordinates must take steps of O(1/|g|) all along a plateau of length
O(log 1/α). With c = u² − v² conserved (Lemma 4.1) and w = u + v > 0 (after the
sign flip of :func:`rankbook.theory.diagonal.canonical_signs`), (u, v) follow from w, and
z = log w obeys dz/dt = g(θ(z)), which is nearly constant on a plateau: the
Runge-Kutta steps become as long as the plateau and the cost per stage no longer
grows with log(1/α).
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import numpy as np
from scipy.integrate import solve_ivp

from rankbook.theory.diagonal import (DiagonalNetwork, canonical_signs, conserved, product_from_log_w, single_thread_blas,
                       uv_from_w)

LossAndGrad = Callable[..., "tuple[float, np.ndarray]"]


def log_inverse(alpha: float) -> float:
    """log(1/α): the factor between gradient-flow time t and rescaled time τ."""
    return math.log(1.0 / alpha)


@dataclasses.dataclass
class Trajectory:
    """A training run recorded at chosen times: parameters θ = [first half, second half], loss."""

    alpha: float
    t: np.ndarray  # gradient-flow time (or lr × steps), shape (T,)
    theta: np.ndarray  # shape (T, size)
    loss: np.ndarray  # shape (T,)
    n_evals: int  # vector-field / gradient evaluations spent
    wall_s: float
    method: str
    #: log-coordinate runs only: z = log w per record (T, p), c = u² − v², sign flips (see log_flow).
    #: Kept because u + v underflows to 0 in θ once a coordinate is learned with u ≈ −v.
    log_w: np.ndarray | None = None
    c: np.ndarray | None = None
    signs: np.ndarray | None = None

    @property
    def tau(self) -> np.ndarray:
        """Rescaled time t / log(1/α)."""
        return self.t / log_inverse(self.alpha)

    @property
    def u(self) -> np.ndarray:
        return self.theta[:, : self.theta.shape[1] // 2]

    @property
    def v(self) -> np.ndarray:
        return self.theta[:, self.theta.shape[1] // 2:]

    @property
    def beta(self) -> np.ndarray:
        """u⊙v along the run (diagonal networks): the diagonals of W_K W_Q^T and W_V W_O^T for the head."""
        return self.u * self.v


def record_times(alpha: float, tau_max: float, n_record: int) -> np.ndarray:
    """Evenly spaced gradient-flow times covering rescaled times [0, tau_max]."""
    return np.linspace(0.0, tau_max * log_inverse(alpha), n_record)


#: clip of z = log w inside the vector field: keeps a solver's trial points finite (never reached by the flow)
_Z_RANGE = (-600.0, 50.0)


def _log_vector_field(net: DiagonalNetwork, c: np.ndarray, counter: list[int]):
    """(dz/dt, its Jacobian) for z = log w. The Jacobian is finite-differenced on the active columns only.

    ∂(dz/dt)/∂z_j = (∂g/∂β_j)(dβ_j/dz_j) with dβ_j/dz_j = (w_j² + c_j²/w_j²)/2, negligible
    for a coordinate still at scale α. Only the few active columns make the flow
    stiff, so a Jacobian costs (#active + 1) evaluations instead of p + 1.
    """

    # Trial points of a solver can land far outside the flow's range; clip so that |u|, |v| ≤ e^100 there
    # (a huge but finite derivative makes the solver reject the step; an overflow to NaN would not:
    # LSODA was seen to "succeed" with NaNs).
    low = np.maximum(np.log(np.abs(c) + 1e-300) - 100.0, _Z_RANGE[0])

    def clip(z):
        return np.clip(z, low, _Z_RANGE[1])

    def rhs(_t, z):
        counter[0] += 1
        with np.errstate(over="ignore", invalid="ignore"):
            g = net.loss_and_g(product_from_log_w(clip(z), c))[1]
        return np.where(np.isfinite(g), g, 1e10)

    def jac(t, z):
        w = np.exp(clip(z))
        slope = 0.5 * (w * w + (c / w) ** 2)
        base = rhs(t, z)
        out = np.zeros((z.size, z.size))
        for j in np.flatnonzero(slope > 1e-6 * slope.max()):
            step = 1e-7 * max(1.0, abs(z[j]))
            shifted = z.copy()
            shifted[j] += step
            out[:, j] = (rhs(t, shifted) - base) / step
        return out

    return rhs, jac


def log_flow(net: DiagonalNetwork, u0: np.ndarray, v0: np.ndarray, alpha: float, t_eval: np.ndarray, *,
             rtol: float = 1e-6, atol: float = 1e-6, method: str = "LSODA", max_step_tau: float = 0.01,
             record_loss: bool = True) -> Trajectory:
    """Gradient flow of a diagonal network, integrated in z = log(u + v) with scipy's adaptive solver.

    ``alpha`` sets the time unit log(1/α); the initial point is (u0, v0), with
    u0_i + v0_i ≠ 0 for every i (true almost surely for a Gaussian θ_0).

    Two measured facts shape the defaults. (1) On a plateau dz/dt is constant to
    rounding, so an error estimate sees nothing and a solver would happily step over
    the next jump: steps are capped at ``max_step_tau`` in rescaled time, which caps
    the cost at ~1/max_step_tau steps per unit of τ whatever α is. (2) The active
    coordinates sit in a stiff well (Hessian eigenvalues ~10-50), which limits an
    explicit solver to steps ~0.1 in t: RK45 needed 518, 866, 2384 evaluations at
    α = 1e-4, 1e-8, 1e-32, while LSODA (switching to an implicit method when stiff)
    needed 521, 716, 1099.
    """
    u0, v0, signs = canonical_signs(np.asarray(u0, float), np.asarray(v0, float))
    w0 = u0 + v0
    if np.any(w0 <= 0):
        raise ValueError("log-coordinates need u_i(0) + v_i(0) ≠ 0 for every coordinate")
    return log_flow_from(net, np.log(w0), conserved(u0, v0), signs, alpha, t_eval, rtol=rtol, atol=atol,
                         method=method, max_step_tau=max_step_tau, record_loss=record_loss)


def log_flow_from(net: DiagonalNetwork, z0: np.ndarray, c: np.ndarray, signs: np.ndarray, alpha: float,
                  t_eval: np.ndarray, *, rtol: float = 1e-6, atol: float = 1e-6, method: str = "LSODA",
                  max_step_tau: float = 0.01, record_loss: bool = True) -> Trajectory:
    """:func:`log_flow` from a state given as z = log w, c = u² − v² and sign flips (u, v) = signs ⊙ (u', v').

    ``record_loss=False`` skips the loss at the recorded points (NaN instead), for timing the solver alone.
    """
    counter = [0]
    rhs, jac = _log_vector_field(net, c, counter)
    options = {} if method in ("RK45", "RK23", "DOP853") else {"jac": jac}
    start = time.perf_counter()
    with single_thread_blas():
        sol = solve_ivp(rhs, (0.0, float(t_eval[-1])), z0, method=method, t_eval=t_eval, rtol=rtol,
                        atol=atol, max_step=max_step_tau * log_inverse(alpha), **options)
        if not sol.success or not np.isfinite(sol.y).all():
            raise RuntimeError(f"log-coordinate gradient flow failed: {sol.message} "
                               f"(finite: {np.isfinite(sol.y).all()}); try a smaller max_step_tau or method='BDF'")
        n_evals = counter[0]
        u, v = uv_from_w(np.exp(sol.y.T), c)
        u, v = u * signs, v * signs
        loss = np.array([net.loss(b) for b in u * v]) if record_loss else np.full(len(sol.t), np.nan)
    return Trajectory(alpha, sol.t, np.concatenate([u, v], axis=1), loss, n_evals, time.perf_counter() - start,
                      f"log-flow {method}", log_w=sol.y.T.copy(), c=c, signs=signs)


def theta_flow(loss_and_grad: LossAndGrad, theta0: np.ndarray, alpha: float, t_eval: np.ndarray, *,
               rtol: float = 1e-7, atol: float = 1e-12, method: str = "RK45", max_step_tau: float = 0.01) -> Trajectory:
    """Gradient flow dθ/dt = −∇L(θ) in plain θ coordinates (any model; e.g. the full-weight head).

    The baseline that :func:`log_flow` improves on; steps capped as there.
    """
    evals = 0

    def rhs(_t, theta):
        nonlocal evals
        evals += 1
        return -loss_and_grad(theta)[1]

    start = time.perf_counter()
    with single_thread_blas():
        sol = solve_ivp(rhs, (0.0, float(t_eval[-1])), np.asarray(theta0, float), method=method,
                        t_eval=t_eval, rtol=rtol, atol=atol, max_step=max_step_tau * log_inverse(alpha))
        if not sol.success:
            raise RuntimeError(f"gradient flow failed: {sol.message}")
        loss = np.array([loss_and_grad(th)[0] for th in sol.y.T])
    return Trajectory(alpha, sol.t, sol.y.T.copy(), loss, evals, time.perf_counter() - start, f"θ-flow {method}")


def gradient_descent(loss_and_grad: LossAndGrad, theta0: np.ndarray, alpha: float, lr: float, t_eval: np.ndarray,
                     *, optimizer: str = "gd", batch_size: int | None = None, n_samples: int | None = None,
                     seed: int = 0, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> Trajectory:
    """GD, SGD (``batch_size``) or Adam with a fixed learning rate, recorded at the steps nearest ``t_eval``.

    Time is t = lr × steps, the gradient-flow time GD approximates (for Adam only a nominal clock).
    """
    if optimizer not in ("gd", "adam"):
        raise ValueError(f"optimizer must be 'gd' or 'adam', got {optimizer!r}")
    if batch_size is not None and n_samples is None:
        raise ValueError("SGD (batch_size) needs n_samples")
    record_steps = np.unique(np.rint(np.asarray(t_eval) / lr).astype(int))
    rng = np.random.default_rng(seed)
    theta = np.array(theta0, dtype=float)
    m, s = np.zeros_like(theta), np.zeros_like(theta)
    thetas, losses = [], []
    start = time.perf_counter()
    with single_thread_blas():
        for step in range(record_steps[-1] + 1):
            index = None if batch_size is None else rng.choice(n_samples, size=batch_size, replace=False)
            loss, grad = loss_and_grad(theta, index) if index is not None else loss_and_grad(theta)
            if step == record_steps[len(thetas)]:
                thetas.append(theta.copy())
                losses.append(loss if index is None else loss_and_grad(theta)[0])
            if optimizer == "gd":
                theta -= lr * grad
            else:
                m = betas[0] * m + (1 - betas[0]) * grad
                s = betas[1] * s + (1 - betas[1]) * grad * grad
                m_hat, s_hat = m / (1 - betas[0] ** (step + 1)), s / (1 - betas[1] ** (step + 1))
                theta -= lr * m_hat / (np.sqrt(s_hat) + eps)
    name = optimizer if batch_size is None else f"sgd(batch {batch_size})"
    return Trajectory(alpha, record_steps * lr, np.array(thetas), np.array(losses), int(record_steps[-1] + 1),
                      time.perf_counter() - start, f"{name} lr={lr:g}")


def activation_times(traj: Trajectory, threshold: float, values: np.ndarray | None = None) -> np.ndarray:
    """Per coordinate, the first rescaled time at which |value| reaches ``threshold`` (NaN if never).

    ``values`` defaults to u⊙v. The crossing is interpolated linearly in log|value|
    between recorded points, so it is accurate even on a coarse record.
    """
    vals = np.abs(traj.beta if values is None else values)
    tau = traj.tau
    out = np.full(vals.shape[1], np.nan)
    logv = np.log(np.maximum(vals, 1e-300))
    level = math.log(threshold)
    for i in range(vals.shape[1]):
        above = np.flatnonzero(vals[:, i] >= threshold)
        if above.size == 0:
            continue
        k = above[0]
        if k == 0:
            out[i] = tau[0]
            continue
        a, b = logv[k - 1, i], logv[k, i]
        frac = (level - a) / (b - a) if b != a else 1.0
        out[i] = tau[k - 1] + frac * (tau[k] - tau[k - 1])
    return out


def shifted(traj: Trajectory, t0: float) -> Trajectory:
    """The same run with its clock started at gradient-flow time ``t0`` (for continuations)."""
    return dataclasses.replace(traj, t=traj.t + t0)


@dataclasses.dataclass
class Perturbation:
    """One perturb-and-train-on experiment (appendix A): reference and perturbed continuations."""

    tau: float  # rescaled time of the perturbation
    reference: Trajectory
    perturbed: Trajectory
    perturbed_coords: np.ndarray  # indices into θ = [u, v]
    distance_start: float  # ‖β_perturbed − β_reference‖ (β = u⊙v) right after the perturbation
    distance_end: float  # the same at the end of the window

    # Distances are between products u⊙v, the quantities the figures show: (u, v) → (λu, v/λ) keeps
    # u⊙v and moves along a valley of minima, so θ itself need not return after a perturbation.


def perturb_and_follow(net: DiagonalNetwork, traj: Trajectory, tau: float, *, std: float, threshold: float,
                       window_tau: float, rng: np.random.Generator, n_record: int = 100, **solver) -> Perturbation:
    """At the recorded point nearest ``tau``, add N(0, std²) to every weight with |weight| > ``threshold``,
    then follow the flow from the perturbed and the unperturbed states for ``window_tau``."""
    if traj.log_w is None:
        raise ValueError("perturb_and_follow needs a log-coordinate trajectory (log_flow)")
    k = int(np.argmin(np.abs(traj.tau - tau)))
    theta = traj.theta[k].copy()
    coords = np.flatnonzero(np.abs(theta) > threshold)
    noisy = theta.copy()
    noisy[coords] += std * rng.standard_normal(coords.size)
    # untouched coordinates keep their exact (log w, c); touched ones are re-expressed from (u, v)
    z, c, signs = traj.log_w[k].copy(), traj.c.copy(), traj.signs.copy()
    touched = np.unique(coords % net.p)
    u, v = np.split(noisy, 2)
    tu, tv, tsigns = canonical_signs(u[touched], v[touched])
    z[touched], c[touched], signs[touched] = np.log(np.maximum(tu + tv, 1e-300)), conserved(tu, tv), tsigns
    t_eval = np.linspace(0.0, window_tau * log_inverse(traj.alpha), n_record)
    ref = log_flow_from(net, traj.log_w[k], traj.c, traj.signs, traj.alpha, t_eval, **solver)
    pert = log_flow_from(net, z, c, signs, traj.alpha, t_eval, **solver)
    ref, pert = shifted(ref, traj.t[k]), shifted(pert, traj.t[k])
    return Perturbation(float(traj.tau[k]), ref, pert, coords, float(np.linalg.norm(pert.beta[0] - ref.beta[0])),
                        float(np.linalg.norm(pert.beta[-1] - ref.beta[-1])))


def transition_windows(traj: Trajectory, low: float = 1e-3, high: float = 0.5) -> dict[int, tuple[float, float]]:
    """Per learned coordinate, the rescaled times at which |u_i v_i| reaches ``low`` and ``high`` × its final value.

    As α → 0 each window shrinks (the jump takes O(1) time, i.e. O(1/log(1/α)) in τ)
    while the gaps between windows stay: the stages separate (Assumption 4.2).
    """
    final = np.abs(traj.beta[-1])
    out = {}
    for i in np.flatnonzero(final > 1e-3 * final.max()):
        values = np.abs(traj.beta[:, i]) / final[i]
        start, end = activation_times(traj, low, values[:, None])[0], activation_times(traj, high, values[:, None])[0]
        out[int(i)] = (float(start), float(end))
    return out
