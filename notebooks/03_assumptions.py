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
# # Checking the theorem's assumptions (appendix A, Figs. 9-10)
#
# Theorem 4.5 rests on three assumptions, which the paper checks on the toy
# head at α = 1e-32 (the closest to the α → 0 limit):
#
# - **4.2 (non-degeneracy)**: stages happen at distinct times.
# - **4.3 (strict local minima)**: the plateaus sit at strict local minima on
#   their support, so a perturbation of the non-negligible weights decays.
# - **4.4 (noise-robust jumps)**: perturbing the weights just as a coordinate
#   becomes non-negligible still leads to the same next plateau.
#
# As in the paper we perturb every non-negligible weight (|weight| above a
# threshold) with Gaussian noise, train on from there, and compare the
# perturbed run (solid) with the unperturbed one (dashed). We train with
# gradient flow rather than SGD and plot the products u_i v_i (the entries of
# W_K W_Q^T and W_V W_O^T): (u, v) → (λu, v/λ) leaves u_i v_i unchanged, so the
# weights themselves can settle elsewhere along that valley while u⊙v returns.

# %% tags=["parameters"]
profile: str = ""  # "fast" (CPU, minutes) or "paper" (GPU, the paper's settings); empty: $RANKBOOK_PROFILE, else "fast"
alpha: float = None  # initialization scale of the perturbation experiments; None: the profile's (1e-32)
seed: int = None  # data/teacher/init/noise seed; None: the profile's

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
from rankbook.store import paths
from rankbook.settings import profiles
from rankbook.figures import tables
from rankbook.theory import toy

profile = profiles.resolve(profile)
settings = profiles.select(toy.PROFILES, profile, perturb_alpha=alpha, seed=seed)
net = toy.diagonal_head(settings)
teacher_idx = np.flatnonzero(toy.teacher(settings).beta)
a = settings.perturb_alpha
reference = toy.alpha_sweep(net, settings, [a])[a]
setting_line = toy.describe(settings, profile)
summary = {"profile": profile, "settings": settings.as_dict()}
print(setting_line, f"| reference run: α = {a:g}, {reference.n_evals} solver evaluations")


# %%
def perturbation_figure(experiments, title):
    """One panel per perturbation: teacher entries u_i v_i, perturbed (solid) vs unperturbed (dashed)."""
    fig, axes = style.figure(2, len(experiments), width=3.2, height=2.6, sharey="row")
    for col, exp in enumerate(experiments):
        ax = axes[0, col]
        names = [net.coordinate_name(i) for i in teacher_idx]
        toy.plot_entries(ax, reference, teacher_idx, names, linestyle=":", legend=False)
        toy.plot_entries(ax, exp.perturbed, teacher_idx, names)
        toy.plot_entries(ax, exp.reference, teacher_idx, names, linestyle="--", legend=False)
        ax.set_xlim(exp.tau - 0.02, exp.reference.tau[-1] + 0.02)
        ax.set_title(f"perturbed at τ = {exp.tau:.3f}", fontsize=8)
        gap = np.linalg.norm(exp.perturbed.beta - exp.reference.beta, axis=1)
        axes[1, col].semilogy(exp.reference.tau, np.maximum(gap, 1e-16), color="k")
        axes[1, col].set_xlabel("rescaled time t / log(1/α)")
    axes[0, 0].set_ylabel("u_i v_i (teacher coordinates)")
    axes[1, 0].set_ylabel("‖u⊙v perturbed − unperturbed‖")
    axes[0, -1].legend(fontsize=6)
    fig.suptitle(f"{title}: {setting_line}", fontsize=8)
    fig.tight_layout()


def distance_rows(experiments):
    return [{"τ of perturbation": e.tau, "weights perturbed": int(e.perturbed_coords.size),
             "‖Δ(u⊙v)‖ after noise": e.distance_start, "‖Δ(u⊙v)‖ at window end": e.distance_end,
             "ratio end / start": e.distance_end / e.distance_start if e.distance_start else float("nan"),
             "end distance / ‖u⊙v‖": e.distance_end / np.linalg.norm(e.reference.beta[-1])}
            for e in experiments]


rng = np.random.default_rng([settings.seed, 9])
common = dict(threshold=settings.perturb_threshold, window_tau=settings.perturb_window, rng=rng,
              rtol=settings.rtol, atol=settings.atol)

# %% [markdown]
# ## Assumption 4.3: plateaus are strict local minima (Fig. 9)
#
# Random times between the first non-negligible weight and the end of
# training; noise std `perturb_std_plateau` (0.05 in the paper) on every weight
# above `perturb_threshold`; train on for `perturb_window` units of rescaled time.

# %%
plateau = [flow.perturb_and_follow(net, reference, t, std=settings.perturb_std_plateau, **common)
           for t in toy.random_times(reference, settings, rng)]
perturbation_figure(plateau, f"Perturbations at random times (std {settings.perturb_std_plateau:g}), α = {a:g}")
plateau_rows = distance_rows(plateau)
summary["random_times"] = plateau_rows
display(tables.Table(plateau_rows, title="Distance between perturbed and unperturbed u⊙v"))

# %% [markdown]
# ## Assumption 4.4: the jumps are robust to noise (Fig. 10)
#
# Now the times are those at which a weight first exceeds `perturb_threshold`
# (1e-5, as in the paper): the start of a jump. Noise std `perturb_std_jump` (1e-2).

# %%
jump = [flow.perturb_and_follow(net, reference, t, std=settings.perturb_std_jump, **common)
        for t in toy.crossing_times(reference, settings.perturb_threshold)]
perturbation_figure(jump, f"Perturbations as a weight crosses {settings.perturb_threshold:g} "
                          f"(std {settings.perturb_std_jump:g}), α = {a:g}")
jump_rows = distance_rows(jump)
summary["crossing_times"] = jump_rows
display(tables.Table(jump_rows, title="Distance between perturbed and unperturbed u⊙v"))

# %%
ratios_plateau = [r["ratio end / start"] for r in plateau_rows]
ratios_jump = [r["end distance / ‖u⊙v‖"] for r in jump_rows]
display(Markdown(
    "**Paper's claim** (Figs. 9-10): after a perturbation the dynamics return to the unperturbed "
    "trajectory, both on plateaus (strict local minima) and during jumps (noise-robust nonlinear dynamics).\n\n"
    f"**This run** (window {settings.perturb_window:g} in rescaled time = {settings.perturb_window * flow.log_inverse(a):.1f} "
    "in gradient-flow time): the distance between the perturbed and unperturbed u⊙v, relative to its value "
    "right after the noise, is " + ", ".join(f"{r:.2g}" for r in ratios_plateau)
    + " at the end of the windows started at random times (well below 1: the run came back; near 1: not yet)."
    " At the onset of a jump the noise (std " + f"{settings.perturb_std_jump:g}" + ") is far larger than the "
    "weight just crossing the threshold, so we compare with the size of u⊙v instead: at the end of those "
    "windows the distance is " + ", ".join(f"{r:.2g}" for r in ratios_jump) + " of ‖u⊙v‖. Small values "
    "mean the jump reached the same plateau; a large one is a jump that is shifted in time or still under "
    "way when the window ends (see the panels)."))

# %% [markdown]
# ## Assumption 4.2: the stages separate
#
# For each α, per learned coordinate, the window of rescaled time in which
# |u_i v_i| goes from 1e-3 to 0.5 of its final value. The theory predicts the
# width of a jump to be O(1) in gradient-flow time, i.e. O(1/log(1/α)) in
# rescaled time, while the gaps between stages T_{k+1} − T_k stay fixed.

# %%
runs = toy.alpha_sweep(net, settings, [x for x in settings.theory_alphas if x != a])
runs[a] = reference
sep_rows = toy.separation_rows(net, dict(sorted(runs.items(), reverse=True)))
summary["separation"] = sep_rows
display(tables.Table(sep_rows, title="Jump widths and gaps between jumps (rescaled time)"))

# %%
fig, axes = style.figure(1, 1, width=6.0, height=3.0)
for n, row in enumerate(sep_rows):
    for k, (start, end) in enumerate(sorted(flow.transition_windows(runs[row["α"]]).values())):
        axes[0, 0].plot([start, end], [n, n], color=f"C{k}", lw=6, solid_capstyle="butt")
axes[0, 0].set(yticks=range(len(sep_rows)), yticklabels=[f"α = {r['α']:g}" for r in sep_rows],
               xlabel="rescaled time t / log(1/α)", title="Jumps (|u_i v_i| from 1e-3 to 0.5 of final), one colour per stage")
fig.suptitle(f"Stage separation: {setting_line}", fontsize=8)
fig.tight_layout()

# %%
widths = [r["max jump width (τ)"] for r in sep_rows]
gaps = [r["min gap between jumps (τ)"] for r in sep_rows]
display(Markdown(
    "**Paper's claim** (appendix A): as α → 0 the stages separate and happen at distinct times.\n\n"
    "**This run**: from α = " + f"{sep_rows[0]['α']:g} to {sep_rows[-1]['α']:g} the widest jump shrinks "
    + " → ".join(f"{w:.3f}" for w in widths) + " in rescaled time, while the smallest gap between "
    "consecutive jumps is " + " → ".join(f"{g:.3f}" for g in gaps)
    + (" (a negative gap means two jumps overlap)." if min(gaps) < 0 else " (all positive: the jumps do not overlap).")))

# %%
out = paths.output_dir(profile, "03_assumptions")
atomic.write_json(out / "summary.json", summary)
print(f"wrote {out / 'summary.json'}")
