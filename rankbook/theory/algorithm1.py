"""Algorithm 1: the α → 0 limit of gradient flow on a diagonal network, stage by stage.

State per stage k: rescaled time T_k, log-scale weights b^k (log_α w ≈ b^k on the
plateau), and the saddle θ^k, stored as its product β^k = u^k⊙v^k (at a saddle
reached from α → 0 the weights are balanced, |u_i| = |v_i|, so β^k determines θ^k).

(A) Δ_k(i) = (b_i^k − 1 + sgn g_i(θ^k)) / g_i(θ^k) (∞ where g_i = 0, eq. 8);
    i_k = argmin Δ_k, T_{k+1} = T_k + Δ_k(i_k) (eq. 9); b^{k+1} = b^k − g(θ^k) Δ_k(i_k) (eq. 10).
(B) θ^{k+1}: gradient flow restricted to supp(θ^k) ∪ {i_k}, from θ^k plus
    (ε e_i, sgn(g_i) ε e_i), run to stationarity (eq. 11). On balanced weights
    β_i = s_i u_i² and dβ/dt = 2|β|⊙g(β); we integrate ζ = log|β| on the support,
    dζ_i/dt = 2 sgn(β_i) g_i, so ε can be tiny (1e-12) at no cost.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import minimize

from rankbook.theory.diagonal import DiagonalNetwork, single_thread_blas


@dataclasses.dataclass
class Stage:
    """Stage k of Algorithm 1: coordinate ``winner`` switches on at rescaled time ``time`` (= T_k)."""

    k: int
    time: float
    winner: int
    name: str
    sign: float  # sign of u_i v_i after the jump: sgn g_i(θ^{k-1})
    loss_before: float  # L(θ^{k-1}), the plateau that ends at T_k
    loss_after: float  # L(θ^k), the next plateau
    beta: np.ndarray  # u^k ⊙ v^k, the saddle reached after the jump
    support: list[int]

    def row(self) -> dict:
        return {"stage k": self.k, "T_k (rescaled time)": self.time, "new coordinate i_k": self.name,
                "loss before": self.loss_before, "loss after": self.loss_after,
                "support size": len(self.support)}


@dataclasses.dataclass
class IncrementalResult:
    """Algorithm 1's stages, and why it stopped."""

    stages: list[Stage]
    stop_reason: str
    initial_loss: float

    def stage_times(self) -> dict[int, float]:
        """Predicted activation time T_k of each coordinate that ever switches on."""
        return {s.winner: s.time for s in self.stages}

    def rows(self) -> list[dict]:
        return [s.row() for s in self.stages]


def time_until_active(b: np.ndarray, g: np.ndarray, g_tol: float) -> np.ndarray:
    """Δ_k(i) of eq. (8); ∞ where |g_i| ≤ g_tol (numerically zero)."""
    delta = np.full(b.shape, np.inf)
    moving = np.abs(g) > g_tol
    delta[moving] = (b[moving] - 1.0 + np.sign(g[moving])) / g[moving]
    return delta


def restricted_flow(net: DiagonalNetwork, beta: np.ndarray, support: np.ndarray, *,
                    stationary_tol: float = 1e-9, basin_tol: float = 1e-3, chunk: float = 5.0,
                    max_time: float = 1e4, drop_below: float = 1e-30, rtol: float = 1e-5,
                    atol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Balanced gradient flow on ``support`` from product vector ``beta`` to its stationary limit.

    The flow (which decides *which* stationary point) runs until max |g| on the
    support is ≤ ``basin_tol``; Newton-free polishing (L-BFGS on the support, from
    inside that basin) then brings it to ``stationary_tol`` far faster than the
    flow's exponential approach. Returns (β, the support without coordinates that
    decayed below ``drop_below``).
    """
    support = np.asarray(support)
    signs = np.sign(beta[support])
    full = beta.copy()

    def expand(zeta):
        full[support] = signs * np.exp(np.clip(zeta, -700.0, 50.0))
        return full

    def rhs(_t, zeta):
        return 2.0 * signs * net.loss_and_g(expand(zeta))[1][support]

    zeta = np.log(np.abs(beta[support]))
    elapsed = 0.0
    while True:
        sol = solve_ivp(rhs, (0.0, chunk), zeta, method="LSODA", rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"restricted flow failed: {sol.message}")
        zeta, elapsed = sol.y[:, -1], elapsed + chunk
        g = net.loss_and_g(expand(zeta))[1]
        alive = np.abs(full[support]) > drop_below
        if np.max(np.abs(g[support][alive]), initial=0.0) <= basin_tol or elapsed >= max_time:
            break
        chunk *= 2.0
    result = expand(zeta).copy()
    result[support[~alive]] = 0.0
    support = support[alive]
    return _polish(net, result, support, stationary_tol), support


def _polish(net: DiagonalNetwork, beta: np.ndarray, support: np.ndarray, tol: float) -> np.ndarray:
    """Minimize L over β restricted to ``support`` from a point already in the basin, to max|g| ≤ tol."""
    full = beta.copy()

    def fun(x):
        full[support] = x
        loss, g = net.loss_and_g(full)
        return loss, -g[support]

    opt = minimize(fun, beta[support], jac=True, method="L-BFGS-B",
                   options={"gtol": tol, "ftol": 0.0, "maxiter": 2000})
    full[support] = opt.x
    return full


def algorithm1(net: DiagonalNetwork, *, max_stages: int = 20, epsilon: float = 1e-12, g_tol: float = 1e-7,
               stationary_tol: float = 1e-9, max_time: float = 1e3, b0: float = 1.0) -> IncrementalResult:
    """Run Algorithm 1 from θ^0 = 0, b^0 = ``b0``, T_0 = 0 until T = ∞, ``max_stages``, or T > ``max_time``.

    ``g_tol``: |g_i| at or below it counts as g_i = 0 (Δ = ∞); it must exceed the
    residual gradient left by the stationarity tolerance ``stationary_tol``.

    Why b^0 = 1 although the pseudo-code's line 1 reads "b^0, θ^0 ← 0": b^k is the
    log-scale of the weights, log_α|w_i| (section 4.1), and θ(0) = α θ_0 gives
    log_α|w_i(0)| = 1 + log|θ_0,i| / log α → 1. With b^0 = 0, eq. (8) gives
    Δ_0(i) = 0 for every g_i > 0 (a first stage at T = 0) and 2/|g_i| for g_i < 0,
    while the flow's first coordinate switches on at τ ≈ 1 / max|g_i(0)| (chapter 01
    runs both). ``b0`` is a parameter only to show that.
    """
    p = net.p
    b = np.full(p, float(b0))
    beta = np.zeros(p)
    support = np.array([], dtype=int)
    t_now = 0.0
    stages: list[Stage] = []
    with single_thread_blas():
        loss, g = net.loss_and_g(beta)
        initial_loss = loss
        reason = f"reached max_stages={max_stages}"
        for k in range(1, max_stages + 1):
            g_off = g.copy()
            g_off[support] = 0.0  # stationary on the support; only rounding is left there
            delta = time_until_active(b, g_off, g_tol)
            winner = int(np.argmin(delta))
            if not math.isfinite(delta[winner]):
                reason = "T = ∞: no coordinate has a nonzero gradient (a stationary point of the full loss)"
                break
            if t_now + delta[winner] > max_time:
                reason = f"next stage after T > {max_time:g}"
                break
            t_now += delta[winner]
            b = b - g_off * delta[winner]
            sign = float(np.sign(g[winner]))
            start = beta.copy()
            start[winner] = sign * epsilon * epsilon  # u = ε, v = sgn(g) ε
            support = np.union1d(support, [winner])
            beta, support = restricted_flow(net, start, support, stationary_tol=stationary_tol)
            new_loss, g = net.loss_and_g(beta)
            stages.append(Stage(k, t_now, winner, net.coordinate_name(winner), sign, loss, new_loss,
                                beta.copy(), support.tolist()))
            loss = new_loss
    return IncrementalResult(stages, reason, initial_loss)


def errors_against_flow(net: DiagonalNetwork, runs: dict, threshold: float,
                        predicted: dict[int, float] | None = None) -> dict[float, float]:
    """{α: max over Algorithm 1's stages of |flow onset − T_k| / T_k} for flow ``runs`` {α: Trajectory}.

    Onsets are where |u_i v_i| first reaches ``threshold`` on each run; stages whose coordinate is already
    above it at initialization are left out (see :func:`rankbook.theory.stages.stage_time_rows`). The
    theory predicts the error shrinks as α → 0 (at rate ~ 1/log(1/α)). ``predicted``: Algorithm 1's
    :meth:`IncrementalResult.stage_times`, computed here when not given.
    """
    from rankbook.theory import stages

    predicted = algorithm1(net).stage_times() if predicted is None else predicted
    return stages.max_relative_errors(stages.stage_time_rows(net, predicted, runs, threshold), list(runs))
