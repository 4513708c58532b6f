"""The toy task of section 5 and appendix A: one attention head learning from a teacher head.

Data: ``n_samples`` sequences X of ``n_tokens`` tokens in R^``dim``, entries i.i.d. N(0, 1);
targets Y = teacher head applied to X. Everything is seeded and float64.

The teacher is a diagonal head whose W_K W_Q^T and W_V W_O^T have only a few
nonzero diagonal entries (``teacher_qk`` and ``teacher_vo`` of them), at
random coordinates, random signs, and magnitudes spread over [1, 2.5]. Why sparse: the
theory predicts one coordinate switching on per stage, so a teacher with a
handful of coordinates of distinct sizes gives a handful of plateaus that are
far apart and easy to see; a dense random teacher would give ~100 stages, many
of them too close together to tell apart at any reachable α. The reader can
compare the learned coordinates with :func:`teacher`'s.

Student initialization: θ(0) = α θ_0, θ_0 i.i.d. N(0, 1) per coordinate (diagonal), or
N(0, 1/d) per entry for the full-weight head so that its products have a similar size.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from rankbook.settings import profiles
from rankbook.theory.diagonal import DiagonalAttentionHead, FullAttentionHead
from rankbook.settings.profiles import param

#: the paper's initialization scales (appendix A, Figs. 6-8)
PAPER_ALPHAS = (0.1, 0.01, 1e-4, 1e-8, 1e-16, 1e-32)


@dataclasses.dataclass(frozen=True)
class ToySettings(profiles.Settings):
    """Settings of the toy chapters (01 theory, 02 toy, 03 assumptions)."""

    alphas: tuple[float, ...] = param(PAPER_ALPHAS, gt=0.0, lt=1.0, help="initialization scales α (each 0 < α < 1) for the α sweep")
    theory_alphas: tuple[float, ...] = param((1e-4, 1e-8, 1e-16, 1e-32), gt=0.0, lt=1.0,
                                             help="scales at which measured stage times are compared with Algorithm 1")
    n_samples: int = param(1000, ge=10, help="training sequences")
    n_tokens: int = param(10, ge=2, help="tokens per sequence")
    dim: int = param(50, ge=4, help="token dimension d")
    teacher_qk: int = param(2, ge=0, help="nonzero diagonal entries of the teacher's W_K W_Q^T")
    teacher_vo: int = param(3, ge=1, help="nonzero diagonal entries of the teacher's W_V W_O^T")
    seed: int = param(0, ge=0, help="seed of the data, the teacher and the first student initialization")
    n_seeds: int = param(3, ge=1, help="student initializations (seeds seed, seed+1, ...) for headline numbers")
    tau_max: float = param(1.2, gt=0.0, help="training horizon in rescaled time t / log(1/α)")
    n_record: int = param(1200, ge=10, help="recorded points along each trajectory")
    rtol: float = param(1e-7, gt=0.0, lt=1.0, help="relative tolerance of the adaptive ODE solver")
    atol: float = param(1e-9, gt=0.0, lt=1.0, help="absolute tolerance of the adaptive ODE solver (on log w)")
    active_threshold: float = param(1e-2, gt=0.0, lt=1.0, help="|u_i v_i| above which a coordinate counts as learned")
    gd_lr: float = param(0.05, gt=0.0, help="learning rate of plain gradient descent (chapter 02)")
    large_lr: float = param(0.2, gt=0.0, help="the 'large' learning rate of the optimizer comparison")
    adam_lr: float = param(1e-2, gt=0.0, help="Adam learning rate of the optimizer comparison")
    optimizer_alpha: float = param(1e-8, gt=0.0, lt=1.0, help="α of the optimizer comparison")
    full_alpha: float = param(1e-8, gt=0.0, lt=1.0, help="α of the full-weight head")
    full_lr: float = param(0.05, gt=0.0, help="GD learning rate of the full-weight head")
    full_tau_max: float = param(1.5, gt=0.0, help="horizon (rescaled time) of the full-weight head")
    perturb_alpha: float = param(1e-32, gt=0.0, lt=1.0, help="α of the perturbation experiments (appendix A)")
    perturb_count: int = param(5, ge=1, help="random perturbation times (Fig. 9)")
    perturb_std_plateau: float = param(0.05, gt=0.0, help="noise std at random times (Fig. 9)")
    perturb_std_jump: float = param(1e-2, gt=0.0, help="noise std where a coordinate first crosses the threshold (Fig. 10)")
    perturb_threshold: float = param(1e-5, gt=0.0, lt=1.0, help="'non-negligible' magnitude of a weight (appendix A)")
    perturb_window: float = param(0.05, gt=0.0, help="how long (rescaled time) to train on after a perturbation")
    adam_steps: int = param(400, ge=10, help="Adam steps of the optimizer comparison")


PROFILES = {
    # CI on two CPU cores: fewer samples, fewer α and seeds; the same teacher and dimensions.
    "fast": ToySettings(alphas=(0.1, 1e-2, 1e-4, 1e-8, 1e-32), theory_alphas=(1e-4, 1e-8, 1e-32),
                        n_samples=200, n_seeds=1, n_record=400, rtol=1e-6, atol=1e-6, perturb_count=3,
                        full_alpha=1e-4, full_tau_max=1.2),
    # the paper's settings: 1000 samples, all six α, three seeds
    "paper": ToySettings(),
    # the toy model is cheap: the reference tier runs the paper's settings
    "reference": ToySettings(),
}


@dataclasses.dataclass(frozen=True)
class Teacher:
    """The teacher head's diagonals of W_K W_Q^T and W_V W_O^T (length d each)."""

    qk: np.ndarray
    vo: np.ndarray

    @property
    def beta(self) -> np.ndarray:
        """[β_QK, β_VO]: the product vector a diagonal student would have to learn."""
        return np.concatenate([self.qk, self.vo])

    def support(self) -> list[str]:
        """Names of the teacher's nonzero coordinates, in the students' naming."""
        return [f"QK coordinate {j}" for j in np.flatnonzero(self.qk)] + \
               [f"VO coordinate {j}" for j in np.flatnonzero(self.vo)]


def teacher(settings: ToySettings) -> Teacher:
    """The seeded sparse teacher: distinct magnitudes in [1, 2.5], random signs and coordinates."""
    rng = np.random.default_rng([settings.seed, 1])
    qk, vo = np.zeros(settings.dim), np.zeros(settings.dim)
    for vec, count in ((qk, settings.teacher_qk), (vo, settings.teacher_vo)):
        coords = rng.choice(settings.dim, size=count, replace=False)
        magnitudes = np.linspace(2.5, 1.0, count) if count > 1 else np.array([2.0])
        vec[coords] = magnitudes * rng.choice([-1.0, 1.0], size=count)
    return Teacher(qk=qk, vo=vo)


def data(settings: ToySettings) -> tuple[torch.Tensor, torch.Tensor]:
    """(X, Y): isotropic Gaussian tokens and the teacher's outputs, deterministic given the seed."""
    gen = torch.Generator().manual_seed(settings.seed)
    x = torch.randn(settings.n_samples, settings.n_tokens, settings.dim, generator=gen, dtype=torch.float64)
    t = teacher(settings)
    y = DiagonalAttentionHead(x, torch.zeros_like(x)).predict(torch.as_tensor(t.beta))
    return x, y


def diagonal_head(settings: ToySettings) -> DiagonalAttentionHead:
    """The diagonal student network on the toy data."""
    return DiagonalAttentionHead(*data(settings))


def full_head(settings: ToySettings) -> FullAttentionHead:
    """The full-weight student network (W ∈ R^{d×d}) on the same data."""
    return FullAttentionHead(*data(settings))


def diagonal_init(settings: ToySettings, alpha: float, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(u(0), v(0)) = α θ_0 with θ_0 ~ N(0, I); u = [w_K, w_V], v = [w_Q, w_O]."""
    rng = np.random.default_rng([settings.seed if seed is None else seed, 2])
    theta0 = rng.standard_normal((2, 2 * settings.dim))
    return alpha * theta0[0], alpha * theta0[1]


def full_init(settings: ToySettings, alpha: float, seed: int | None = None) -> np.ndarray:
    """Flat (W_K, W_Q, W_V, W_O) = α θ_0, entries ~ N(0, 1/d)."""
    rng = np.random.default_rng([settings.seed if seed is None else seed, 3])
    return alpha * rng.standard_normal(4 * settings.dim * settings.dim) / np.sqrt(settings.dim)


# ----------------------------------------------------------------------------- chapter helpers
def describe(settings: ToySettings, profile: str) -> str:
    """One line for figure titles: data, profile and scale, so a reader knows what ran."""
    return (f"toy head, {settings.n_samples} samples × {settings.n_tokens} tokens × d={settings.dim}, "
            f"seed {settings.seed}, profile '{profile}'")


def alpha_sweep(net: DiagonalAttentionHead, settings: ToySettings, alphas, seed: int | None = None,
                tau_max: float | None = None) -> dict:
    """Gradient flow (log-coordinates) from α θ_0 for each α: {α: Trajectory}."""
    from rankbook.theory import flow

    runs = {}
    for alpha in alphas:
        u0, v0 = diagonal_init(settings, alpha, seed)
        times = flow.record_times(alpha, tau_max or settings.tau_max, settings.n_record)
        runs[alpha] = flow.log_flow(net, u0, v0, alpha, times, rtol=settings.rtol, atol=settings.atol)
    return runs


def stage_time_rows(net: DiagonalAttentionHead, predicted: dict, runs: dict, threshold: float) -> list[dict]:
    """Per coordinate Algorithm 1 switches on: predicted T_k and measured activation time per α, relative error."""
    from rankbook.theory import flow

    measured = {alpha: flow.activation_times(traj, threshold) for alpha, traj in runs.items()}
    rows = []
    for k, (i, t_pred) in enumerate(sorted(predicted.items(), key=lambda kv: kv[1]), start=1):
        row = {"stage": k, "coordinate": net.coordinate_name(i), "T_k (Algorithm 1)": t_pred}
        for alpha, times in measured.items():
            row[f"α={alpha:g}"] = float(times[i])
            row[f"rel. err α={alpha:g}"] = abs(float(times[i]) - t_pred) / t_pred
        rows.append(row)
    return rows


def max_relative_errors(rows: list[dict], alphas) -> dict:
    """{α: max over stages of |measured − predicted| / predicted} (NaN-propagating: a missed stage shows)."""
    return {alpha: float(np.max([r[f"rel. err α={alpha:g}"] for r in rows])) for alpha in alphas}


def plot_entries(ax, traj, coords, names, *, linestyle="-", legend=True, colors=None) -> None:
    """u_i v_i against rescaled time for ``coords`` (the diagonal entries of W_K W_Q^T or W_V W_O^T)."""
    for n, (i, name) in enumerate(zip(coords, names)):
        color = colors[n] if colors is not None else f"C{n}"
        ax.plot(traj.tau, traj.beta[:, i], linestyle, color=color, label=name if legend else None, lw=1.3)
    ax.set_xlabel("rescaled time t / log(1/α)")


def singular_value_paths(full: FullAttentionHead, traj, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` singular values of W_K W_Q^T and W_V W_O^T at each recorded point: two (T, k) arrays."""
    qk, vo = [], []
    for theta in traj.theta:
        a, b = full.products(theta)
        qk.append(np.linalg.svd(a, compute_uv=False)[:k])
        vo.append(np.linalg.svd(b, compute_uv=False)[:k])
    return np.array(qk), np.array(vo)


def optimizer_rows(net: DiagonalAttentionHead, runs: dict, threshold: float) -> list[dict]:
    """Per optimizer run: final loss, how many coordinates ever reach ``threshold``, and their onset times."""
    from rankbook.theory import flow

    rows = []
    for name, traj in runs.items():
        onsets = flow.activation_times(traj, threshold)
        ever = np.flatnonzero(~np.isnan(onsets))
        first = sorted(ever, key=lambda i: onsets[i])[:6]
        rows.append({"run": name, "final loss": float(traj.loss[-1]) if np.isfinite(traj.loss[-1]) else "diverged",
                     f"coordinates ever ≥ {threshold:g}": int(ever.size),
                     "first onsets (τ)": ", ".join(f"{onsets[i]:.3f}" for i in first),
                     "gradient evaluations": traj.n_evals})
    return rows


def crossing_times(traj, threshold: float) -> list[float]:
    """Rescaled times at which some weight (|u_i| or |v_i|) first exceeds ``threshold`` (Fig. 10's epochs)."""
    from rankbook.theory import flow

    onsets = flow.activation_times(traj, threshold, np.maximum(np.abs(traj.u), np.abs(traj.v)))
    return sorted(float(t) for t in onsets[~np.isnan(onsets)] if t > traj.tau[0])


def random_times(traj, settings: ToySettings, rng: np.random.Generator) -> list[float]:
    """``perturb_count`` uniform random rescaled times between the first crossing and the end of training (Fig. 9)."""
    start = crossing_times(traj, settings.perturb_threshold)[0]
    return sorted(rng.uniform(start, traj.tau[-1] - settings.perturb_window, settings.perturb_count).tolist())


def separation_rows(net: DiagonalAttentionHead, runs: dict) -> list[dict]:
    """Per α: the transition windows of the learned coordinates, their widths and the gaps between them."""
    from rankbook.theory import flow

    rows = []
    for alpha, traj in runs.items():
        windows = sorted(flow.transition_windows(traj).values())
        widths = [end - start for start, end in windows]
        gaps = [nxt[0] - cur[1] for cur, nxt in zip(windows, windows[1:])]
        rows.append({"α": alpha, "stages": len(windows), "max jump width (τ)": max(widths),
                     "min gap between jumps (τ)": min(gaps) if gaps else float("nan"),
                     "width × log(1/α) (t)": max(widths) * flow.log_inverse(alpha)})
    return rows
