"""The toy task of section 5 and appendix A: one attention head learning from a teacher head.

Data: ``n_samples`` sequences X of ``n_tokens`` tokens in R^``dim``, entries i.i.d. N(0, 1);
targets Y = teacher head applied to X. Everything is seeded and float64.

The teacher is a diagonal head whose W_K W_Q^T and W_V W_O^T have only a few
nonzero diagonal entries (``teacher_qk`` and ``teacher_vo`` of them), at
random coordinates, random signs, and magnitudes spread over [1, 2.5]. Why sparse: the
theory predicts one coordinate switching on per stage, so a teacher with a
handful of coordinates of distinct sizes gives a handful of plateaus that are
far apart and easy to see. The paper's teacher is "randomly generated";
:func:`dense_teacher` is such a head (all four diagonals Gaussian), and chapter 01
counts the coordinates its gradient flow switches on and how close together they come
(Algorithm 1 itself is too slow on it: each stage trains a growing support to stationarity).

Student initialization: θ(0) = α θ_0, θ_0 i.i.d. N(0, 1) per coordinate (diagonal), or
N(0, 1/d) per entry for the full-weight head so that its products have a similar size.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from rankbook.settings.toy import ToySettings
from rankbook.theory import flow
from rankbook.theory.diagonal import DiagonalAttentionHead, FullAttentionHead


@dataclasses.dataclass(frozen=True)
class Teacher:
    """The teacher head's diagonals of W_K W_Q^T and W_V W_O^T (length d each)."""

    qk: np.ndarray
    vo: np.ndarray

    @property
    def beta(self) -> np.ndarray:
        """[β_QK, β_VO]: the product vector a diagonal student would have to learn."""
        return np.concatenate([self.qk, self.vo])

    @property
    def coords(self) -> np.ndarray:
        """Indices of the nonzero entries of :attr:`beta`."""
        return np.flatnonzero(self.beta)

    def support(self) -> list[str]:
        """Names of the teacher's nonzero coordinates, in the students' naming."""
        return [f"QK coordinate {j}" for j in np.flatnonzero(self.qk)] + \
               [f"VO coordinate {j}" for j in np.flatnonzero(self.vo)]

    def rows(self) -> list[dict]:
        """One row per nonzero entry: its name and value."""
        values = self.beta[self.coords]
        return [{"coordinate": n, "teacher value": float(b)} for n, b in zip(self.support(), values)]


def teacher(settings: ToySettings) -> Teacher:
    """The seeded sparse teacher: distinct magnitudes in [1, 2.5], random signs and coordinates."""
    rng = np.random.default_rng([settings.seed, 1])
    qk, vo = np.zeros(settings.dim), np.zeros(settings.dim)
    for vec, count in ((qk, settings.teacher_qk), (vo, settings.teacher_vo)):
        coords = rng.choice(settings.dim, size=count, replace=False)
        magnitudes = np.linspace(2.5, 1.0, count) if count > 1 else np.array([2.0])
        vec[coords] = magnitudes * rng.choice([-1.0, 1.0], size=count)
    return Teacher(qk=qk, vo=vo)


def dense_teacher(settings: ToySettings) -> Teacher:
    """A "randomly generated" diagonal head: w_K, w_Q, w_V, w_O i.i.d. N(0, 1), every product nonzero."""
    w = np.random.default_rng([settings.seed, 4]).standard_normal((4, settings.dim))
    return Teacher(qk=w[0] * w[1], vo=w[2] * w[3])


def inputs(settings: ToySettings) -> torch.Tensor:
    """X: isotropic Gaussian tokens (N × n × d), deterministic given the seed."""
    gen = torch.Generator().manual_seed(settings.seed)
    shape = (settings.n_samples, settings.n_tokens, settings.dim)
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def data(settings: ToySettings, head: Teacher | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(X, Y): the inputs and the outputs of ``head`` (default: the sparse :func:`teacher`)."""
    x = inputs(settings)
    beta = (head or teacher(settings)).beta
    y = DiagonalAttentionHead(x, torch.zeros_like(x)).predict(torch.as_tensor(beta))
    return x, y


def diagonal_head(settings: ToySettings, head: Teacher | None = None) -> DiagonalAttentionHead:
    """The diagonal student network on the toy data (of ``head``, default the sparse teacher)."""
    return DiagonalAttentionHead(*data(settings, head))


def full_head(settings: ToySettings) -> FullAttentionHead:
    """The full-weight student network (W ∈ R^{d×d}) on the same data."""
    return FullAttentionHead(*data(settings))


def diagonal_init(settings: ToySettings, alpha: float,
                  seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(u(0), v(0)) = α θ_0 with θ_0 ~ N(0, I); u = [w_K, w_V], v = [w_Q, w_O]."""
    rng = np.random.default_rng([settings.seed if seed is None else seed, 2])
    theta0 = rng.standard_normal((2, 2 * settings.dim))
    return alpha * theta0[0], alpha * theta0[1]


def full_init(settings: ToySettings, alpha: float, seed: int | None = None) -> np.ndarray:
    """Flat (W_K, W_Q, W_V, W_O) = α θ_0, entries ~ N(0, 1/d)."""
    rng = np.random.default_rng([settings.seed if seed is None else seed, 3])
    return alpha * rng.standard_normal(4 * settings.dim * settings.dim) / np.sqrt(settings.dim)


def describe(settings: ToySettings, profile: str) -> str:
    """One line for figure subtitles: data, profile and scale, so a reader knows what ran."""
    return (f"toy head, {settings.n_samples} samples × {settings.n_tokens} tokens × d={settings.dim}, "
            f"seed {settings.seed}, profile '{profile}'")


def flow_run(net: DiagonalAttentionHead, settings: ToySettings, alpha: float, seed: int | None = None,
             tau_max: float | None = None) -> flow.Trajectory:
    """Gradient flow (log-coordinates, the profile's solver and tolerances) from α θ_0."""
    u0, v0 = diagonal_init(settings, alpha, seed)
    times = flow.record_times(alpha, tau_max or settings.tau_max, settings.n_record)
    return flow.log_flow(net, u0, v0, alpha, times, **solver_options(settings))


def solver_options(settings: ToySettings) -> dict:
    """The profile's solver and tolerances, as keywords of :func:`rankbook.theory.flow.log_flow`."""
    return {"rtol": settings.rtol, "atol": settings.atol, "method": settings.solver}


def alpha_sweep(net: DiagonalAttentionHead, settings: ToySettings, alphas, seed: int | None = None) -> dict:
    """{α: :func:`flow_run`} for each α."""
    return {alpha: flow_run(net, settings, alpha, seed) for alpha in alphas}


def singular_value_paths(full: FullAttentionHead, traj, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` singular values of W_K W_Q^T and W_V W_O^T at each recorded point: two (T, k) arrays."""
    qk, vo = [], []
    for theta in traj.theta:
        a, b = full.products(theta)
        qk.append(np.linalg.svd(a, compute_uv=False)[:k])
        vo.append(np.linalg.svd(b, compute_uv=False)[:k])
    return np.array(qk), np.array(vo)


def optimizer_runs(net: DiagonalAttentionHead, settings: ToySettings) -> dict:
    """From one α θ_0 (α = ``optimizer_alpha``): the flow, GD at two steps, SGD (batch 32) and Adam."""
    from rankbook.theory import descent

    alpha = settings.optimizer_alpha
    theta0 = np.concatenate(diagonal_init(settings, alpha))
    times = flow.record_times(alpha, settings.tau_max, 300)
    runs = {"gradient flow": flow_run(net, settings, alpha)}
    for lr in (settings.gd_lr, settings.large_lr):
        runs[f"GD lr {lr:g}"] = descent.gradient_descent(net.loss_and_grad, theta0, alpha, lr, times)
    runs[f"SGD lr {settings.gd_lr:g}, batch 32"] = descent.gradient_descent(
        net.loss_and_grad, theta0, alpha, settings.gd_lr, times, batch_size=32, n_samples=settings.n_samples)
    adam_times = settings.adam_lr * np.arange(settings.adam_steps + 1)
    runs[f"Adam lr {settings.adam_lr:g}"] = descent.gradient_descent(
        net.loss_and_grad, theta0, alpha, settings.adam_lr, adam_times, optimizer="adam")
    return runs
