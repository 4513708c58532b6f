# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The toy model: an attention head learns in stages (Fig. 2, Figs. 6-8)
#
# One self-attention head softmax(X W_K W_Q^T X^T) X W_V W_O^T learns from a
# teacher head of the same form: isotropic Gaussian sequences of 10 tokens in
# R^50, MSE loss, initialization θ(0) = α θ_0. The teacher has diagonal weights
# with a handful of nonzero entries of distinct sizes (see `rankbook.theory.toy` for
# why), so the theory predicts one plateau per teacher coordinate.
#
# We integrate the gradient flow itself (the object of the theory) with an
# adaptive solver in log-coordinates (see the Performance notes in
# `rankbook.theory.flow`), then compare with gradient descent at a small and a large
# learning rate, SGD and Adam.

# %% tags=["parameters"]
profile: str = ""  # "fast" (CPU, minutes) or "paper" (GPU, the paper's settings); empty: $RANKBOOK_PROFILE, else "fast"
alphas: list = None  # initialization scales of the sweep; None: the profile's (paper: 0.1, 0.01, 1e-4, 1e-8, 1e-16, 1e-32)
seed: int = None  # data/teacher/first-init seed; None: the profile's

# %% tags=["remove-cell"]
# Colab: install rankbook and the few packages Colab lacks (it keeps its own torch).
import importlib.util, subprocess, sys  # noqa: E401
if "google.colab" in sys.modules and importlib.util.find_spec("rankbook") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/rankbook/rankbook"])

# %%
import numpy as np
from IPython.display import Markdown, display

from rankbook.figures import style
from rankbook.store import atomic
from rankbook.theory import flow
from rankbook.theory import algorithm1 as incremental
from rankbook.store import paths
from rankbook.settings import profiles
from rankbook.figures import tables
from rankbook.theory import toy

profile = profiles.resolve(profile)
settings = profiles.select(toy.PROFILES, profile, alphas=alphas, seed=seed)
net = toy.diagonal_head(settings)
teacher = toy.teacher(settings)
setting_line = toy.describe(settings, profile)
summary = {"profile": profile, "settings": settings.as_dict(), "teacher_support": teacher.support()}
display(tables.Table([{"coordinate": n, "teacher value": float(b)} for n, b in
                      zip(teacher.support(), teacher.beta[teacher.beta != 0])], title="The teacher's nonzero diagonal entries"))

# %% [markdown]
# ## Diagonal weights: the α sweep (Figs. 6, 7, 8)

# %%
seeds = [settings.seed + s for s in range(settings.n_seeds)]
sweeps = {s: toy.alpha_sweep(net, settings, settings.alphas, seed=s) for s in seeds}
runs = sweeps[settings.seed]
print("solver evaluations per run:", {f"{a:g}": r.n_evals for a, r in runs.items()})

# %%
qk_idx, vo_idx = np.arange(settings.dim), settings.dim + np.arange(settings.dim)
teacher_idx = np.flatnonzero(teacher.beta)
panels = [("loss", "training loss (log scale)", None), ("qk", "diagonal entries of W_K W_Q^T", qk_idx),
          ("vo", "diagonal entries of W_V W_O^T", vo_idx)]
figures = {}
for key, label, idx in panels:
    fig, axes = style.figure(1, len(runs), width=3.0, height=2.8, sharey=True)
    for ax, (alpha, traj) in zip(axes[0], runs.items()):
        if idx is None:
            ax.semilogy(traj.tau, traj.loss, color="C0")
        else:
            ax.plot(traj.tau, traj.beta[:, idx], color="0.75", lw=0.6)
            for n, i in enumerate(i for i in teacher_idx if i in idx):
                ax.plot(traj.tau, traj.beta[:, i], color=f"C{n}", lw=1.4, label=net.coordinate_name(i))
        ax.set(title=f"α = {alpha:g}", xlabel="rescaled time t / log(1/α)")
    axes[0, 0].set_ylabel(label)
    if idx is not None:
        axes[0, -1].legend(fontsize=6)
    fig.suptitle(f"{label} vs rescaled time (gradient flow; grey: non-teacher coordinates): {setting_line}", fontsize=8)
    fig.tight_layout()
    figures[key] = fig

# %%
predicted = incremental.algorithm1(net).stage_times()
per_seed = {s: toy.stage_time_rows(net, predicted, sw, settings.active_threshold) for s, sw in sweeps.items()}
rows = []
for k, row in enumerate(per_seed[settings.seed]):
    out = {"stage": row["stage"], "coordinate": row["coordinate"], "T_k (Algorithm 1)": row["T_k (Algorithm 1)"]}
    for alpha in settings.alphas:
        vals = np.array([per_seed[s][k][f"α={alpha:g}"] for s in seeds])
        out[f"α={alpha:g}"] = f"{vals.mean():.3f} ± {vals.std():.3f}" if len(seeds) > 1 else float(vals[0])
    rows.append(out)
summary["stage_times"] = {"seeds": seeds, "per_seed": {str(s): r for s, r in per_seed.items()}}
display(tables.Table(rows, title=f"Onset (|u_i v_i| ≥ {settings.active_threshold:g}) in rescaled time, "
                     f"{len(seeds)} seed(s): mean ± std"))

# %%
final_loss = {a: float(r.loss[-1]) for a, r in runs.items()}
others = np.setdiff1d(np.arange(net.p), teacher_idx)
stray = {a: float(np.abs(r.beta[:, others]).max()) for a, r in runs.items()}
errors = toy.max_relative_errors(per_seed[settings.seed], settings.alphas)
summary["final_loss"] = {f"{a:g}": v for a, v in final_loss.items()}
summary["max_non_teacher_entry"] = {f"{a:g}": v for a, v in stray.items()}
summary["max_relative_error_vs_algorithm1"] = {f"{a:g}": v for a, v in errors.items()}
display(Markdown(
    "**Paper's claim** (Figs. 2a-c, 6-8): as α → 0 the loss and the weight entries converge to stagewise "
    "plateaus and sharp jumps, with one diagonal entry switching on per stage.\n\n"
    f"**This run**: {len(predicted)} entries switch on, those of the teacher "
    f"({'all' if sorted(predicted) == sorted(teacher_idx.tolist()) else 'not all'} of them); the largest "
    "|u_i v_i| of a non-teacher (grey) entry at any time is "
    + ", ".join(f"{v:.1e} (α = {a:g})" for a, v in stray.items()) + ". Final losses: "
    + ", ".join(f"{v:.1e} (α = {a:g})" for a, v in final_loss.items())
    + ". Largest relative gap between the onsets and Algorithm 1's T_k (seed "
    + f"{settings.seed}): " + ", ".join(f"{e:.3f} (α = {a:g})" for a, e in errors.items()) + "."))

# %% [markdown]
# ## Full weights: singular values are learned one at a time (Fig. 2d-f)
#
# W_K, W_Q, W_V, W_O ∈ R^{50×50}, entries α N(0, 1/d), trained by gradient
# descent on the same data. This is beyond the theory (the weights are not
# diagonal), but the paper observes the same incremental picture for the
# singular values of W_K W_Q^T and W_V W_O^T.

# %%
full = toy.full_head(settings)
full_run = flow.gradient_descent(full.loss_and_grad, toy.full_init(settings, settings.full_alpha), settings.full_alpha,
                                 settings.full_lr, flow.record_times(settings.full_alpha, settings.full_tau_max, 150))
sv_qk, sv_vo = toy.singular_value_paths(full, full_run)
fig, axes = style.figure(1, 3, width=3.6)
axes[0, 0].plot(full_run.tau, sv_qk)
axes[0, 1].plot(full_run.tau, sv_vo)
axes[0, 2].semilogy(full_run.tau, full_run.loss)
for ax, title in zip(axes[0], ["singular values of W_K W_Q^T", "singular values of W_V W_O^T", "training loss"]):
    ax.set(title=title, xlabel="rescaled time t / log(1/α)")
fig.suptitle(f"Full weights, GD lr {settings.full_lr:g}, α = {settings.full_alpha:g}: {setting_line}", fontsize=8)
fig.tight_layout()

# %%
sv_onsets = {name: [float(full_run.tau[np.argmax(sv[:, j] >= settings.active_threshold)])
                    if (sv[:, j] >= settings.active_threshold).any() else None for j in range(sv.shape[1])]
             for name, sv in (("W_K W_Q^T", sv_qk), ("W_V W_O^T", sv_vo))}
summary["full"] = {"onsets": sv_onsets, "final_singular_values_qk": sv_qk[-1], "final_singular_values_vo": sv_vo[-1],
                   "final_loss": float(full_run.loss[-1])}
display(Markdown(
    "**Paper's claim** (Fig. 2d-f): with full weights the singular values are learned incrementally.\n\n"
    "**This run**: singular values reach " + f"{settings.active_threshold:g} at rescaled times "
    + "; ".join(f"{n}: " + ", ".join("never" if t is None else f"{t:.3f}" for t in ts) for n, ts in sv_onsets.items())
    + f". Final top singular values: W_K W_Q^T {np.round(sv_qk[-1], 3).tolist()}, W_V W_O^T "
    f"{np.round(sv_vo[-1], 3).tolist()} (teacher: {np.round(np.sort(np.abs(teacher.qk))[::-1][:3], 2).tolist()} and "
    f"{np.round(np.sort(np.abs(teacher.vo))[::-1][:3], 2).tolist()})."))

# %% [markdown]
# ## Beyond gradient flow: step size, SGD and Adam
#
# The theory is for gradient flow. Gradient descent with step η follows it up
# to O(η) per unit time; with a large step the growth factor per step (1 + η g)
# differs from e^{η g} and the stages shift, then training becomes unstable.
# Adam normalizes each coordinate's step, so a coordinate at scale α moves by
# ~lr per step whatever its gradient: the small initialization is erased after
# a few steps. What survives?

# %%
a_opt = settings.optimizer_alpha
theta0 = np.concatenate(toy.diagonal_init(settings, a_opt))
times = flow.record_times(a_opt, settings.tau_max, 300)
opt_runs = {"gradient flow": toy.alpha_sweep(net, settings, [a_opt])[a_opt]}
for lr in (settings.gd_lr, settings.large_lr):
    opt_runs[f"GD lr {lr:g}"] = flow.gradient_descent(net.loss_and_grad, theta0, a_opt, lr, times)
opt_runs[f"SGD lr {settings.gd_lr:g}, batch 32"] = flow.gradient_descent(
    net.loss_and_grad, theta0, a_opt, settings.gd_lr, times, batch_size=32, n_samples=settings.n_samples)
adam_times = settings.adam_lr * np.arange(settings.adam_steps + 1)
opt_runs[f"Adam lr {settings.adam_lr:g}"] = flow.gradient_descent(net.loss_and_grad, theta0, a_opt, settings.adam_lr,
                                                                  adam_times, optimizer="adam")
opt_rows = toy.optimizer_rows(net, opt_runs, settings.active_threshold)
summary["optimizers"] = opt_rows
display(tables.Table(opt_rows, title=f"Optimizers at α = {a_opt:g} (Adam's τ is lr × steps / log(1/α), a nominal clock)"))

# %%
fig, axes = style.figure(1, 3, width=3.8)
for n, (name, traj) in enumerate(opt_runs.items()):
    ax = axes[0, 2] if name.startswith("Adam") else axes[0, 0]
    x = np.arange(len(traj.t)) if name.startswith("Adam") else traj.tau
    ax.semilogy(x, np.where(np.isfinite(traj.loss), traj.loss, np.nan), color=f"C{n}", label=name)
    if name.startswith("GD lr") or name == "gradient flow":
        for j, i in enumerate(teacher_idx[teacher_idx >= settings.dim]):
            axes[0, 1].plot(traj.tau, traj.beta[:, i], color=f"C{n}", lw=1, label=name if j == 0 else None)
axes[0, 0].set(title="loss: flow, GD, SGD", xlabel="rescaled time t / log(1/α)", ylabel="training loss")
axes[0, 1].set(title="teacher's VO entries", xlabel="rescaled time t / log(1/α)", ylabel="u_i v_i")
axes[0, 2].set(title="loss: Adam", xlabel="Adam step", ylabel="training loss")
for ax in axes[0]:
    ax.legend(fontsize=6)
fig.suptitle(f"Optimizers at α = {a_opt:g}: {setting_line}", fontsize=8)
fig.tight_layout()

# %%
by_name = {r["run"]: r for r in opt_rows}
key = f"coordinates ever ≥ {settings.active_threshold:g}"
display(Markdown(
    "**What survives.** The theory's picture needs the dynamics to respect the scale of each coordinate. "
    + "; ".join(f"{name}: {r[key]} coordinates ever reach {settings.active_threshold:g}, final loss "
                + (r['final loss'] if isinstance(r['final loss'], str) else f"{r['final loss']:.1e}")
                for name, r in by_name.items())
    + f". Gradient flow switches on {by_name['gradient flow'][key]} coordinates (the teacher has {teacher_idx.size})."))

# %%
out = paths.output_dir(profile, "02_toy")
atomic.write_json(out / "summary.json", summary)
print(f"wrote {out / 'summary.json'}")
