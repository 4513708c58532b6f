"""Gradient descent, SGD and Adam with a fixed step, and the numbers that say whether a step follows the flow.

Time is t = lr × steps, the gradient-flow time GD approximates (for Adam only a
nominal clock), so GD runs share the flow's rescaled time axis τ = t / log(1/α).
GD follows the flow only if the step is below 2/λ_max, λ_max the largest
Hessian eigenvalue along the run; :func:`top_hessian_eigenvalue` measures it and
:func:`largest_loss_rise` shows what happens above it.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from rankbook.theory import flow
from rankbook.theory.diagonal import single_thread_blas
from rankbook.theory.flow import Trajectory

LossAndGrad = Callable[..., "tuple[float, np.ndarray]"]
OPTIMIZERS = ("gd", "adam")


def gradient_descent(loss_and_grad: LossAndGrad, theta0: np.ndarray, alpha: float, lr: float,
                     t_eval: np.ndarray, *, optimizer: str = "gd", batch_size: int | None = None,
                     n_samples: int | None = None, seed: int = 0, betas: tuple[float, float] = (0.9, 0.999),
                     eps: float = 1e-8) -> Trajectory:
    """GD, SGD (``batch_size``) or Adam with a fixed step, recorded at the steps nearest ``t_eval``."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be 'gd' or 'adam', got {optimizer!r}")
    if batch_size is not None and n_samples is None:
        raise ValueError("SGD (batch_size) needs n_samples")
    record_steps = np.unique(np.rint(np.asarray(t_eval) / lr).astype(int))
    rng = np.random.default_rng(seed)
    theta = np.array(theta0, dtype=float)
    m, s = np.zeros_like(theta), np.zeros_like(theta)
    thetas, losses = [], []
    start = time.perf_counter()
    with single_thread_blas(), np.errstate(over="ignore", invalid="ignore"):  # a too-large step diverges
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


def largest_loss_rise(traj: Trajectory, floor: float = 0.0) -> float:
    """max over consecutive records with L[k] > ``floor`` of L[k+1] / L[k] − 1 (≤ 0: the loss never rises).

    Gradient flow never increases the loss, so a rise is GD (or a solver) leaving the flow.
    ``floor`` (e.g. :data:`rankbook.theory.flow.ROUNDING_FLOOR`) skips the records where the
    loss is rounding noise. NaN if no record is above it.
    """
    loss = np.asarray(traj.loss, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = loss[1:] / loss[:-1]
    ratio = ratio[loss[:-1] > floor]
    return float(np.nanmax(ratio) - 1.0) if ratio.size else float("nan")


def top_hessian_eigenvalue(loss_and_grad: LossAndGrad, theta: np.ndarray, *, steps: int = 40,
                           h: float = 1e-6, seed: int = 0) -> float:
    """λ_max of ∇²L at ``theta`` by power iteration on finite-difference Hessian-vector products.

    GD with step η is stable near a minimum only if η < 2 / λ_max.
    """
    theta = np.asarray(theta, dtype=float)
    base = loss_and_grad(theta)[1]
    vec = np.random.default_rng(seed).standard_normal(theta.size)
    value = 0.0
    with single_thread_blas():
        for _ in range(steps):
            vec /= np.linalg.norm(vec)
            hv = (loss_and_grad(theta + h * vec)[1] - base) / h
            value, vec = float(vec @ hv), hv
    return value


def optimizer_rows(net, runs: dict, threshold: float) -> list[dict]:
    """Per run: final loss, largest loss rise, how many coordinates ever reach ``threshold``, first onsets."""
    rows = []
    for name, traj in runs.items():
        with np.errstate(over="ignore", invalid="ignore"):  # a diverged run's u⊙v overflows
            onsets = flow.activation_times(traj, threshold)
        ever = np.flatnonzero(~np.isnan(onsets))
        first = sorted(ever, key=lambda i: onsets[i])[:6]
        final = float(traj.loss[-1])
        rows.append({"run": name, "final loss": final if np.isfinite(final) else "diverged",
                     "largest loss rise": largest_loss_rise(traj),
                     f"coordinates ever ≥ {threshold:g}": int(ever.size),
                     "first onsets (τ)": ", ".join(f"{onsets[i]:.3f}" for i in first),
                     "gradient evaluations": traj.n_evals})
    return rows
