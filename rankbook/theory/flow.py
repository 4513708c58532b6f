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
from scipy.integrate import BDF, Radau, solve_ivp

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
    #: event method only: the plateaus it skipped (gradient-flow times), see :func:`plateau_escape`
    skips: list | None = None

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


#: solvers of :func:`log_flow`: scipy's, and "events" (Radau through the jumps, plateaus skipped analytically)
METHODS = ("events", "events-ROS2", "events-BDF", "Radau", "BDF", "LSODA", "RK45", "RK23", "DOP853")

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
        beta = product_from_log_w(clip(z), c)
        with np.errstate(over="ignore", invalid="ignore"):
            g = net.loss_and_g(beta)[1]
        g = np.where(np.isfinite(g), g, 1e10)
        rhs.last = (beta, g)  # a Jacobian taken at this point reuses it (see _rescaled_jacobian)
        return g

    rhs.last = (None, None)

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


def _rescaled_jacobian(net: DiagonalNetwork, c: np.ndarray, counter: list[int], refresh: float = 0.1,
                       significant: float = 1e-3, rhs=None):
    """A Jacobian of dz/dt that reuses ∂g/∂β: J = (∂g/∂β) diag(dβ/dz), the first factor finite-differenced.

    In z = log w a jump is exponential: dβ_j/dz_j = (w_j² + c_j²/w_j²)/2 grows e-fold per unit of z, so a
    Jacobian in z is stale after a few steps (Radau asked for one every step or two: ~1/4 of its cost at
    α = 1e-32), while ∂g/∂β changes only as fast as β does. The columns of ∂g/∂β are recomputed
    ((#active + 1) evaluations) only when an active β_j moved by more than ``refresh`` × max(1, |β|) since
    they were taken, or a new coordinate became active; otherwise J is rescaled at no cost. Columns with
    dβ_j/dz_j below ``significant`` × the largest are left out (they add no stiffness): at α = 0.1 every
    coordinate is above 1e-6 × the largest, and refreshing all 100 columns each step cost 11,000 evaluations.
    The base point's g is the vector field's last value when the Jacobian is taken where it was just
    evaluated (``rhs.last``: every ROS2 step and Newton start): #active evaluations then, not #active + 1.
    """
    cache: dict = {"beta": None, "cols": np.array([], dtype=int), "h": None}

    def g_of(beta):
        counter[0] += 1
        with np.errstate(over="ignore", invalid="ignore"):
            g = net.loss_and_g(beta)[1]
        return np.where(np.isfinite(g), g, 1e10)

    def jac(_t, z, fresh: bool = False, cached: bool = False):
        """``fresh``: recompute ∂g/∂β here; ``cached``: never (an estimate; None if no columns are cached)."""
        z = np.clip(z, _Z_RANGE[0], _Z_RANGE[1])
        w = np.exp(z)
        slope = 0.5 * (w * w + (c / w) ** 2)
        beta = product_from_log_w(z, c)
        cols = np.flatnonzero(slope > significant * slope.max())
        old = cache["beta"]
        if cached and (old is None or not np.isin(cols, cache["cols"]).all()):
            return None
        stale = not cached and (
            fresh or old is None or not np.isin(cols, cache["cols"]).all()
            or np.max(np.abs(beta[cols] - old[cols])) > refresh * max(1.0, np.max(np.abs(old[cols]))))
        if stale:
            known_beta, known_g = getattr(rhs, "last", (None, None))
            base = known_g if known_beta is not None and np.array_equal(known_beta, beta) else g_of(beta)
            h = np.zeros((z.size, cols.size))
            for n, j in enumerate(cols):
                step = 1e-7 * max(1.0, abs(beta[j]))
                shifted = beta.copy()
                shifted[j] += step
                h[:, n] = (g_of(shifted) - base) / step
            cache.update(beta=beta, cols=cols, h=h)
        out = np.zeros((z.size, z.size))
        keep = np.isin(cache["cols"], cols)
        out[:, cache["cols"][keep]] = cache["h"][:, keep] * slope[cache["cols"][keep]]
        return out

    return jac


#: |u_i v_i| below which a coordinate counts as inactive on a plateau (the event method): its feedback on g is
#: ~ H δ (H the Hessian's scale), so holding g fixed while it grows to δ moves z by ~ H δ / (2 |g_i|)
ESCAPE_LEVEL = 1e-5
#: the escape level at loose tolerances: level = atol, between ESCAPE_LEVEL and this (the feedback error ~ the
#: level, so within the tolerance; 1e-3 instead of 1e-5 at rtol 1e-2: 220 → 202 evaluations at α = 1e-32)
ESCAPE_LEVEL_LOOSE = 1e-3


def escape_level(atol: float) -> float:
    """|u_i v_i| at which the event method ends a plateau skip, for a solver tolerance ``atol`` (on z)."""
    return min(ESCAPE_LEVEL_LOOSE, max(ESCAPE_LEVEL, atol))

#: max |g_i| of the active coordinates (|u_i v_i| ≥ ESCAPE_LEVEL) to try a plateau skip: Newton steps on the
#: active set then bring it to PLATEAU_G_TOL (its saddle) before the skip
PLATEAU_G_LOOSE = 1e-2
#: a coordinate this small beside the largest |u_i v_i| moves linearly too (its feedback: checked at landing)
SMALL_BESIDE_LARGEST = 1e-4
PLATEAU_G_TOL = 1e-11  # 1e-9 left the last plateau at L ~ 7e-19 (the flow goes on below 1e-20)
#: the event method's largest ODE step, in gradient-flow time t (not τ: a jump takes O(1) time whatever α is)
EVENT_MAX_STEP = 2.0


@dataclasses.dataclass
class PlateauSkip:
    """A plateau skipped by the event method: [start, end] in flow time t and the escaping coordinate."""

    start: float
    end: float
    escaping: int  # -1: the skip ran to the end of the horizon (or was shortened by a correction)
    corrections: int  # times the skip was halved because g at the landing point had moved
    newton: int  # Newton steps that brought the active set to its saddle first


def _escape_log_w(c: np.ndarray, sign: np.ndarray, level: float) -> np.ndarray:
    """z = log w at which u⊙v = sign × level (β is increasing in z: β = (w² − c²/w²)/4)."""
    root = np.hypot(2.0 * level, c)
    with np.errstate(divide="ignore"):  # c = 0 exactly: w → 0 never makes β negative (z* = −∞)
        low = np.log(np.abs(c)) - 0.5 * np.log(root + 2.0 * level)  # c² underflows at α = 1e-128: logs
    return np.where(sign > 0, 0.5 * np.log(2.0 * level + root), low)


def plateau_escape(z: np.ndarray, c: np.ndarray, g: np.ndarray, *, level: float = ESCAPE_LEVEL,
                   g_tol: float = PLATEAU_G_TOL) -> tuple[float, int, np.ndarray] | None:
    """On a plateau: (time until the first inactive coordinate escapes, its index, inactive mask); else None.

    A plateau: every coordinate with |u_i v_i| ≥ ``level`` (the active set) has |g_i| ≤ ``g_tol`` (it sits at
    its saddle). The others then feed back on g only at O(level), so g is constant and each inactive
    z_i = log w_i moves linearly, z_i(t) = z_i + g_i t — what Algorithm 1's eq. (10) integrates (b^{k+1} =
    b^k − g Δ). The escape of coordinate i is when |u_i v_i| reaches ``level`` in the direction of g_i.
    """
    size = np.abs(product_from_log_w(z, c))
    # inactive: below the level, or negligible beside the largest (a stray coordinate decaying from a jump)
    inactive = (size < level) | (size < SMALL_BESIDE_LARGEST * size.max())
    if np.any(np.abs(g[~inactive]) > g_tol):
        return None
    moving = inactive & (np.abs(g) > 0)
    times = np.full(z.size, np.inf)
    target = _escape_log_w(c[moving], np.sign(g[moving]), level)
    times[moving] = np.maximum((target - z[moving]) / g[moving], 0.0)
    first = int(np.argmin(times))
    return float(times[first]), (first if math.isfinite(times[first]) else -1), inactive


def _relaxation_left(jac_matrix: np.ndarray, g: np.ndarray, active: np.ndarray) -> float:
    """How far the flow still has to relax before it sits at its saddle, linearized: max over coordinates.

    Near the saddle g_A ≈ J_AA δ, δ = z_A − z_A* decays as e^{J_AA t}, and meanwhile the inactive coordinates
    pick up ∫ J_IA δ dt = −J_IA J_AA⁻¹ δ. Newton steps put z_A at z_A* at once, so a skip that starts now
    leaves out both: the records of z_A are off by up to |δ| and every inactive z_i (hence the next escape
    time) by |J_IA J_AA⁻¹ δ|. The event method skips only once both are below its tolerance. inf when J_AA
    is singular.
    """
    idx = np.flatnonzero(active)
    if idx.size == 0:
        return 0.0
    block = jac_matrix[np.ix_(idx, idx)]
    try:
        with np.errstate(all="ignore"):
            delta = np.linalg.solve(block, g[idx])
            shift = jac_matrix[np.ix_(np.flatnonzero(~active), idx)] @ np.linalg.solve(block, delta)
    except np.linalg.LinAlgError:
        return math.inf
    out = max(np.max(np.abs(delta)), np.max(np.abs(shift), initial=0.0))
    return float(out) if math.isfinite(out) else math.inf


class _Relaxation:
    """The rest of the relaxation to a saddle, linearized: the offset from (saddle + linear move) at time s.

    Started at z with z_A − z_A* = δ (the Newton steps' total, with the sign flipped), the linearized flow
    gives z_A(s) − z_A* = e^{J_AA s} δ and, for the inactive coordinates, an extra ∫₀ˢ J_IA e^{J_AA r} δ dr
    = J_IA V diag((e^{λ s} − 1)/λ) V⁻¹ δ (J_AA = V diag(λ) V⁻¹). Its error is second order in δ, where
    holding z_A at z_A* (the skip before) was off by δ itself: the records of a kick's decay fell to 1e-12
    at once instead of following e^{J_AA s}, and the next jump came early (issue 23).
    """

    def __init__(self, full: np.ndarray, active: np.ndarray, delta: np.ndarray):
        self.active, self.inactive = np.flatnonzero(active), np.flatnonzero(~active)
        block = full[np.ix_(self.active, self.active)]
        self.lam, self.vec = np.linalg.eig(block)
        self.coef = np.linalg.solve(self.vec, delta.astype(complex))
        self.cross = full[np.ix_(self.inactive, self.active)] @ self.vec
        self.size = full.shape[0]

    @property
    def stable(self) -> bool:
        return bool(np.all(self.lam.real < 0) and np.all(np.isfinite(self.coef)))

    def at(self, s: float) -> np.ndarray:
        decay = np.exp(self.lam * s) if math.isfinite(s) else np.zeros_like(self.lam)
        out = np.zeros(self.size)
        out[self.active] = (self.vec @ (decay * self.coef)).real
        out[self.inactive] = (self.cross @ ((decay - 1.0) / self.lam * self.coef)).real
        return out


def _to_saddle(rhs, jac, t: float, z: np.ndarray, g: np.ndarray, active: np.ndarray, g_tol: float,
               max_newton: int = 4):
    """Newton steps on the active coordinates (inactive ones held): (z, g, steps, J) at |g_A| ≤ g_tol or None.

    The saddle the flow relaxes to solves g_A(z_A) = 0; ``jac`` is ∂(dz/dt)/∂z. None when the steps do not
    shrink |g_A| (not yet in the saddle's basin: the flow relaxes further first). J: the Jacobian at the
    start (None with no active coordinate).
    """
    idx = np.flatnonzero(active)
    if idx.size == 0:
        return z, g, 0, None
    full = jac(t, z, fresh=True)  # Newton needs the Jacobian here, not a rescaled one
    block = full[np.ix_(idx, idx)]
    residual = np.max(np.abs(g[idx]))
    for step in range(max_newton + 1):
        if residual <= g_tol:
            return z, g, step, full
        if step == max_newton:
            return None
        try:
            delta = np.linalg.solve(block, -g[idx])
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(delta)) or np.max(np.abs(delta)) > 1.0:
            return None
        trial = z.copy()
        trial[idx] += delta
        g_trial = rhs(t, trial)
        new_residual = np.max(np.abs(g_trial[idx]))
        if new_residual >= 0.5 * residual:
            return None
        z, g, residual = trial, g_trial, new_residual
    return None


class _Rosenbrock2:
    """ROS2 (Verwer et al. 1999): a 2-stage, L-stable, linearly implicit method of order 2 for any W matrix.

    Per step two evaluations, f(z_n) (also the plateau test's g) and f(z_n + h k1), and one LU of
    W = I − γ h J; no Newton iterations (Radau: 3 evaluations per iteration, ≥ 2 iterations a step). Because
    it is a W-method, J may be approximate: the rescaled ∂g/∂β Jacobian is refreshed only when stale.
    The step is chosen from the embedded first-order solution z_n + h k1. Same interface as scipy's
    OdeSolver where the event loop needs it (t, y, f, h_abs, J, status, step, dense_output).
    """

    GAMMA = 1.0 + 1.0 / math.sqrt(2.0)
    GROW = 5.0

    def __init__(self, fun, t0, y0, t_bound, *, rtol, atol, jac, max_step, first_step=None):
        self.fun, self.jac, self.rtol, self.atol, self.max_step = fun, jac, rtol, atol, max_step
        self.t, self.y, self.t_bound = t0, np.asarray(y0, float), t_bound
        self.f = fun(t0, self.y)
        self.h_abs = min(first_step or 0.05, max_step)
        self.status, self.J = "running", None
        self._prev = None

    def step(self):
        from scipy.linalg import lu_factor, lu_solve

        t, y, f = self.t, self.y, self.f
        eye = np.eye(y.size)
        while True:
            h = min(self.h_abs, self.max_step, self.t_bound - t)
            self.J = self.jac(t, y)
            lu = lu_factor(eye - self.GAMMA * h * self.J)
            k1 = lu_solve(lu, f)
            k2 = lu_solve(lu, self.fun(t + h, y + h * k1) - 2.0 * k1)
            y_new = y + h * (1.5 * k1 + 0.5 * k2)
            # z = log w: an absolute error in z is a relative error in w, whatever |z| is (rtol × |z| would
            # allow 0.15 at z = −150, a learned negative product at α = 1e-32, and the loss would rise)
            scale = self.atol + self.rtol * np.minimum(1.0, np.maximum(np.abs(y), np.abs(y_new)))
            err = math.sqrt(np.mean((0.5 * h * (k1 + k2) / scale) ** 2))
            factor = min(self.GROW, max(0.2, 0.9 / math.sqrt(err))) if err > 0 else self.GROW
            if err <= 1.0 and np.all(np.isfinite(y_new)):
                break
            self.h_abs = h * min(factor, 0.5)
        f_new = self.fun(t + h, y_new)
        self._prev = (t, y, f, t + h, y_new, f_new)
        self.t, self.y, self.f, self.h_abs = t + h, y_new, f_new, h * factor
        if self.t >= self.t_bound:
            self.status = "finished"
        return None

    @property
    def direction(self):
        return 1.0

    def dense_output(self):
        """Cubic Hermite interpolant on the last step (values and slopes at both ends), made monotone.

        A long step over a stiff decay (h |λ| ≫ 1) has an end slope h f far larger than the step's change:
        the plain cubic overshoots and comes back, and the recorded loss rose 60% (α = 1e-32, rtol 1e-2).
        Per coordinate the slopes are limited as in Fritsch & Carlson (1980): zero where they disagree in
        sign with the secant, scaled so that (h f0/Δ)² + (h f1/Δ)² ≤ 9; smooth steps are left as they are.
        """
        t0, y0, f0, t1, y1, f1 = self._prev
        h = t1 - t0
        secant = y1 - y0
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b = np.where(secant != 0, h * f0 / secant, 0.0), np.where(secant != 0, h * f1 / secant, 0.0)
        a, b = np.maximum(a, 0.0), np.maximum(b, 0.0)
        radius = np.hypot(a, b)
        shrink = np.where(radius > 3.0, 3.0 / np.maximum(radius, 1e-300), 1.0)
        f0, f1 = a * shrink * secant / h, b * shrink * secant / h

        def at(t):
            s = (t - t0) / h
            h00, h10 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s
            h01, h11 = -2 * s**3 + 3 * s**2, s**3 - s**2
            return h00 * y0 + h10 * h * f0 + h01 * y1 + h11 * h * f1

        return at


def _event_integrate(rhs, jac, z0: np.ndarray, c: np.ndarray, t_eval: np.ndarray, *, rtol: float, atol: float,
                     max_step: float, level: float, g_tol: float, skip_atol: float, inner: str = "Radau"):
    """Records of z at ``t_eval``: an implicit solver through the jumps, plateaus skipped to their escape.

    The solver (Radau, or BDF) runs until the active set (|u_i v_i| ≥ ``level``) has nearly stopped
    (|g_i| ≤ PLATEAU_G_LOOSE); Newton steps then put it at its saddle (|g_i| ≤ ``g_tol``). The prediction:
    the inactive coordinates move linearly to the first escape time (:func:`plateau_escape`), the active
    ones stay. The correction: g at the landing point is evaluated (the next solver start needs it
    anyway); if it moved enough that the linear move is off by more than ``skip_atol`` in z, the skip is
    halved and tried again. Records inside a skip lie on the straight line, exactly as the move.
    """
    t_end = float(t_eval[-1])
    records = np.empty((len(t_eval), z0.size))
    k = 0
    t, z = 0.0, np.asarray(z0, float).copy()
    g = rhs(t, z)
    first_step = 0.05  # gradient-flow time; an order below the jumps' O(1) duration
    skips: list[PlateauSkip] = []

    def try_skip(t, z, g):
        """(z, g, newton, plateau) at the saddle when on a plateau long enough to skip, else None."""
        loose = plateau_escape(z, c, g, level=level, g_tol=PLATEAU_G_LOOSE)
        if loose is None or loose[0] <= max_step:
            return None
        # the solver's last Jacobian, rescaled: costs no evaluation (none needed with no active coordinate)
        estimate = jac(t, z, cached=True) if np.any(~loose[2]) else np.zeros((z.size, z.size))
        # the linearized rest of the relaxation is followed in the skip (_Relaxation) with an error second
        # order in what is left: skip once that is below sqrt(skip_atol)
        if estimate is None or _relaxation_left(estimate, g, ~loose[2]) ** 2 > skip_atol:
            return None
        polished = _to_saddle(rhs, jac, t, z, g, ~loose[2], g_tol)
        if polished is None:
            return None
        z_star, g_star, newton, full = polished
        relax = None
        if full is not None:
            relax = _Relaxation(full, ~loose[2], (z - z_star)[~loose[2]])
            if not relax.stable:
                return None
        far = z_star if relax is None else z_star + relax.at(math.inf)
        plateau = plateau_escape(far, c, g_star, level=level, g_tol=g_tol)
        return None if plateau is None or plateau[0] <= max_step else (z_star, g_star, newton, plateau, relax)

    ready = try_skip(t, z, g)
    while t < t_end:
        if ready is not None:
            z, g, newton, (dt, first, inactive), relax = ready
            ready = None
            dt, corrections = min(dt, t_end - t), 0
            move = np.where(inactive, g, 0.0)
            rate = 2.0 * abs(g[first]) if first >= 0 else 0.0

            def offset(s, relax=relax):
                return 0.0 if relax is None else relax.at(s)

            while True:
                z1 = z + move * dt + offset(dt)
                g1 = rhs(t + dt, z1)
                # the drift of g comes from the escaping coordinate's exponential growth (rate 2|g_i|): its
                # integral over the skip is ~ drift / rate, and at most drift × dt / 2 (a linear drift)
                drift = np.max(np.abs(g1 - g)[inactive])
                if drift * min(0.5 * dt, 1.0 / rate if rate > 0 else np.inf) <= skip_atol or dt <= max_step:
                    break
                dt, corrections = 0.5 * dt, corrections + 1
            while k < len(t_eval) and t_eval[k] <= t + dt:
                records[k] = z + move * (t_eval[k] - t) + offset(t_eval[k] - t)
                k += 1
            skips.append(PlateauSkip(t, t + dt, first if corrections == 0 and t + dt < t_end else -1,
                                     corrections, newton))
            t, z, g = t + dt, z1, g1
            if t >= t_end:
                break
        known = [g]

        def fun(tt, zz, known=known):  # the value at the start is known: the solver's first call is free
            return known.pop() if known else rhs(tt, zz)

        solver = {"Radau": Radau, "BDF": BDF, "ROS2": _Rosenbrock2}[inner](
            fun, t, z, t_end, rtol=rtol, atol=atol, jac=jac, max_step=max_step,
            first_step=min(first_step, t_end - t))  # scipy refuses a first step past the end
        while k < len(t_eval) and t_eval[k] <= t:
            records[k] = z
            k += 1
        while solver.status == "running":
            message = solver.step()
            if solver.status == "failed":
                raise RuntimeError(f"log-coordinate gradient flow ({inner} with events) failed at "
                                   f"t = {solver.t:g}: {message}")
            if k < len(t_eval) and t_eval[k] <= solver.t:
                dense = solver.dense_output()
                while k < len(t_eval) and t_eval[k] <= solver.t:
                    records[k] = dense(t_eval[k])
                    k += 1
            # Radau keeps dz/dt at the accepted point; BDF's interpolant gives it to its order (enough for
            # the loose test: the Newton steps and the skip then evaluate g exactly)
            g = solver.D[1] / (solver.h_abs * solver.direction) if inner == "BDF" else solver.f
            ready = try_skip(solver.t, solver.y, g) if solver.status == "running" else None
            if ready is not None:
                break
        # a restart after the skip begins with the step the solver had reached (it ramps up from a guess ×10
        # per step otherwise: three wasted steps per plateau)
        t, z, first_step = solver.t, solver.y.copy(), min(max_step, max(solver.h_abs, 0.05))
    while k < len(t_eval):
        records[k] = z
        k += 1
    return records, skips


def log_flow(net: DiagonalNetwork, u0: np.ndarray, v0: np.ndarray, alpha: float, t_eval: np.ndarray, *,
             rtol: float = 1e-6, atol: float = 1e-6, method: str = "events", max_step_tau: float = 0.01,
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
    for ~1.4× LSODA's evaluations, so it was the default.

    ``method="events"`` (the default since issue 23) removes (1): plateaus are skipped in one move to their
    predicted escape (:func:`plateau_escape`, corrected at landing), Radau resolves only the jumps with steps
    ≤ EVENT_MAX_STEP in t, so the cost no longer grows with log(1/α) (50-sample toy head, rtol 1e-5: 756,
    830, 816 evaluations at α = 1e-4, 1e-32, 1e-128) and the loss stays monotone at α = 1e-32 (fast
    profile, tested). ``"events-ROS2"`` (a second-order Rosenbrock W-method inside: 2 evaluations a step)
    is the cheapest at loose tolerances: 202 evaluations at rtol 1e-2 for a stage-time error of 6e-4 at
    α = 1e-32, with a monotone loss (tested), against gradient descent's 221,049 at equal accuracy; at the
    profiles' rtol 1e-5 it needs 2,685 against Radau's 830: not the default. ``benchmarks/toy_solver.py``
    compares all of them.
    """
    u0, v0, signs = canonical_signs(np.asarray(u0, float), np.asarray(v0, float))
    w0 = u0 + v0
    if np.any(w0 <= 0):
        raise ValueError("log-coordinates need u_i(0) + v_i(0) ≠ 0 for every coordinate")
    return log_flow_from(net, np.log(w0), conserved(u0, v0), signs, alpha, t_eval, rtol=rtol, atol=atol,
                         method=method, max_step_tau=max_step_tau, record_loss=record_loss)


def log_flow_from(net: DiagonalNetwork, z0: np.ndarray, c: np.ndarray, signs: np.ndarray, alpha: float,
                  t_eval: np.ndarray, *, rtol: float = 1e-6, atol: float = 1e-6, method: str = "events",
                  max_step_tau: float = 0.01, record_loss: bool = True) -> Trajectory:
    """:func:`log_flow` from a state given as z = log w, c = u² − v² and sign flips (u, v) = signs ⊙ (u', v').

    ``record_loss=False`` skips the loss at the recorded points (NaN instead), for timing the solver alone.
    """
    if method not in METHODS:
        raise ValueError(f"log_flow: unknown method {method!r}; choose one of {', '.join(METHODS)}")
    counter = [0]
    rhs, jac = _log_vector_field(net, c, counter)
    options = {} if method in ("RK45", "RK23", "DOP853") else {"jac": jac}
    t_eval = np.asarray(t_eval, float)
    skips: list[PlateauSkip] = []
    start = time.perf_counter()
    with single_thread_blas():
        if method.startswith("events"):
            inner = {"events": "Radau", "events-BDF": "BDF", "events-ROS2": "ROS2"}[method]
            jac = _rescaled_jacobian(net, c, counter, rhs=rhs)
            z, skips = _event_integrate(rhs, jac, np.asarray(z0, float), c, t_eval, rtol=rtol, atol=atol,
                                        max_step=EVENT_MAX_STEP, level=escape_level(atol),
                                        g_tol=PLATEAU_G_TOL, skip_atol=atol, inner=inner)
            times = t_eval
        else:
            sol = solve_ivp(rhs, (0.0, float(t_eval[-1])), z0, method=method, t_eval=t_eval, rtol=rtol,
                            atol=atol, max_step=max_step_tau * log_inverse(alpha), **options)
            if not sol.success:
                raise RuntimeError(f"log-coordinate gradient flow failed: {sol.message}; try a smaller "
                                   "max_step_tau or method='BDF'")
            z, times = sol.y.T, sol.t
        if not np.isfinite(z).all():
            raise RuntimeError(f"log-coordinate gradient flow ({method}) returned non-finite values; try a "
                               "smaller max_step_tau or method='BDF'")
        n_evals = counter[0]
        u, v = uv_from_w(np.exp(z), c)
        u, v = u * signs, v * signs
        loss = np.array([net.loss(b) for b in u * v]) if record_loss else np.full(len(times), np.nan)
    wall = time.perf_counter() - start
    return Trajectory(alpha, times, np.concatenate([u, v], axis=1), loss, n_evals, wall, f"log-flow {method}",
                      log_w=np.array(z, copy=True), c=c, signs=signs, skips=skips)


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
