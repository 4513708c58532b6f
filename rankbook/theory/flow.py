"""Gradient flow (adaptive ODE solvers), recorded at chosen times; activation times and jump windows.

GD, SGD and Adam live in :mod:`rankbook.theory.descent`, perturbations in
:mod:`rankbook.theory.perturbations`.

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

from rankbook.theory.diagonal import (
    DiagonalNetwork,
    canonical_signs,
    conserved,
    product_from_log_w,
    single_thread_blas,
    uv_from_w,
)

LossAndGrad = Callable[..., "tuple[float, np.ndarray]"]
#: losses below this are rounding noise of the log-coordinate state: at α = 1e-32 a learned negative product
#: has log w ≈ −150, so w carries a relative error ~150 ε and the toy loss bottoms out at ~1e-26..1e-25
ROUNDING_FLOOR = 1e-22


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
             rtol: float = 1e-6, atol: float = 1e-6, method: str = "Radau", max_step_tau: float = 0.01,
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
    needed 521, 716, 1099. (3) On the last, zero-loss plateau, log w of a learned negative
    product is ~ −150 at α = 1e-32, so rtol × |z| is a large absolute error: LSODA's loss
    rose 23× (rtol 1e-6) and still 66× at rtol 1e-12 once below 1e-10; Radau (implicit,
    L-stable) kept the loss monotone down to the ~1e-25 rounding floor at rtol 1e-4 to 1e-6
    for ~1.4× LSODA's evaluations, so it is the default.
    """
    u0, v0, signs = canonical_signs(np.asarray(u0, float), np.asarray(v0, float))
    w0 = u0 + v0
    if np.any(w0 <= 0):
        raise ValueError("log-coordinates need u_i(0) + v_i(0) ≠ 0 for every coordinate")
    return log_flow_from(net, np.log(w0), conserved(u0, v0), signs, alpha, t_eval, rtol=rtol, atol=atol,
                         method=method, max_step_tau=max_step_tau, record_loss=record_loss)


def log_flow_from(net: DiagonalNetwork, z0: np.ndarray, c: np.ndarray, signs: np.ndarray, alpha: float,
                  t_eval: np.ndarray, *, rtol: float = 1e-6, atol: float = 1e-6, method: str = "Radau",
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
            raise RuntimeError(f"log-coordinate gradient flow failed: {sol.message} (finite: "
                               f"{np.isfinite(sol.y).all()}); try a smaller max_step_tau or method='BDF'")
        n_evals = counter[0]
        u, v = uv_from_w(np.exp(sol.y.T), c)
        u, v = u * signs, v * signs
        loss = np.array([net.loss(b) for b in u * v]) if record_loss else np.full(len(sol.t), np.nan)
    wall = time.perf_counter() - start
    return Trajectory(alpha, sol.t, np.concatenate([u, v], axis=1), loss, n_evals, wall, f"log-flow {method}",
                      log_w=sol.y.T.copy(), c=c, signs=signs)


def continue_from(net: DiagonalNetwork, traj: Trajectory, k: int, duration: float, n_record: int,
                  **solver) -> Trajectory:
    """The flow from record ``k`` of a log-coordinate run, for ``duration`` more gradient-flow time.

    Starts from the exact stored state (log w, c, signs), so the continuation is the
    same flow; its clock continues ``traj``'s.
    """
    if traj.log_w is None:
        raise ValueError("continue_from needs a log-coordinate trajectory (from log_flow)")
    times = np.linspace(0.0, duration, n_record)
    out = log_flow_from(net, traj.log_w[k], traj.c, traj.signs, traj.alpha, times, **solver)
    return dataclasses.replace(out, t=out.t + traj.t[k])


def theta_flow(loss_and_grad: LossAndGrad, theta0: np.ndarray, alpha: float, t_eval: np.ndarray, *,
               rtol: float = 1e-7, atol: float = 1e-12, method: str = "RK45",
               max_step_tau: float = 0.01) -> Trajectory:
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
    return Trajectory(alpha, sol.t, sol.y.T.copy(), loss, evals, time.perf_counter() - start,
                      f"θ-flow {method}")


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


def transition_windows(traj: Trajectory, low: float = 1e-3,
                       high: float = 0.5) -> dict[int, tuple[float, float]]:
    """Per learned coordinate, the rescaled times at which |u_i v_i| reaches ``low`` and ``high`` × final.

    As α → 0 each window shrinks (the jump takes O(1) time, i.e. O(1/log(1/α)) in τ)
    while the gaps between windows stay: the stages separate (Assumption 4.2).
    """
    final = np.abs(traj.beta[-1])
    out = {}
    for i in np.flatnonzero(final > 1e-3 * final.max()):
        values = np.abs(traj.beta[:, i]) / final[i]
        start = activation_times(traj, low, values[:, None])[0]
        out[int(i)] = (float(start), float(activation_times(traj, high, values[:, None])[0]))
    return out
