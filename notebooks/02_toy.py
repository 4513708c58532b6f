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
# **Question.** One self-attention head
# $\operatorname{softmax}(X W_K W_Q^\top X^\top) X W_V W_O^\top$
# learns from a teacher head of the same form: isotropic Gaussian sequences of
# 10 tokens in $\mathbb{R}^{50}$, MSE loss, initialization $\theta(0) = \alpha \theta_0$. As
# $\alpha \to 0$, does training show plateaus and sharp jumps, one diagonal entry at a time, and do
# full weights learn their singular values one at a time too? (Figure numbers are the paper's arXiv v1.)
#
# ```{admonition} Departures from the paper
# - **Gradient flow, not SGD.** The paper trains the toy head with SGD; we
#   integrate the gradient flow itself (the object of the theory) with an
#   adaptive implicit solver in log-coordinates (`rankbook.theory.flow`), and
#   compare GD, SGD and Adam in the last section.
# - **A sparse teacher** (2 QK + 3 VO nonzero entries of distinct sizes) instead
#   of a dense random one, so the stages are far enough apart to be seen;
#   {doc}`01_theory` counts the stages of a dense random teacher.
# - **Loss** = mean over samples of $\tfrac12 \lVert f(X) - Y \rVert^2$, summed over tokens and
#   dimensions (the paper does not state its normalization; it sets the time unit).
# - The fast profile uses 200 samples, one seed and five of the paper's six $\alpha$ ($10^{-16}$ left out)
#   (see the profile table in {doc}`00_setup`); the `reference` (1,000 samples, the six $\alpha$, one seed)
#   and `paper` (three seeds) profiles are stored runs, compared with this build at the end of the page.
# - **$\alpha = 10^{-64}$**, beyond the paper's smallest $10^{-32}$, in the fast and reference sweeps: the
#   log-coordinate solver's cost does not grow with $\log(1/\alpha)$, and the flow should come closer to
#   Algorithm 1 still (the gap at each $\alpha$ is stated below).
# ```

# %% tags=["parameters"] mystnb={"code_prompt_show": "Parameters", "code_prompt_hide": "Hide parameters"}
profile: str = ""  # "fast", "reference" or "paper"; empty: $RANKBOOK_PROFILE, else "fast"
alphas: list = None  # initialization scales of the sweep; None: the profile's
seed: int = None  # data/teacher/first-init seed; None: the profile's

# %% tags=["remove-cell", "colab-setup"]
# Installs rankbook where it is missing (Colab, a downloaded notebook); does nothing in the repository.
# Written by `python -m rankbook.book.colab --write` from _config.yml's repository.url: do not edit by hand.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("rankbook") is None:
    _target = os.environ.get("RANKBOOK_INSTALL") or "rankbook @ git+https://github.com/rankbook/rankbook@main"
    if subprocess.call([sys.executable, "-m", "pip", "install", "-q", _target]):
        raise RuntimeError(
            f"pip could not install rankbook from {_target!r} (pip's error is above). If that address "
            "cannot be reached (offline, private, moved), set RANKBOOK_INSTALL to what pip should install "
            "instead (a wheel, a local clone, another git+https:// address), e.g. "
            "os.environ['RANKBOOK_INSTALL'] = '/content/rankbook-0.1.0-py3-none-any.whl', and run this cell "
            "again. The address is the book's _config.yml repository.url and branch (python -m "
            "rankbook.book.colab --write rewrites this cell from it)."
        )

# %% tags=["hide-input"] mystnb={"code_prompt_show": "Imports and settings"}
import numpy as np

from rankbook.analysis import claims
from rankbook.book.glue import glue, glue_all
from rankbook.figures import tables
from rankbook.figures import toy as toy_figures
from rankbook.settings import profiles
from rankbook.settings.toy import PROFILES
from rankbook.store import atomic, paths
from rankbook.theory import algorithm1, descent, flow, stages, tiers, toy

started = tiers.start()
profile = profiles.resolve(profile)
settings = profiles.select(PROFILES, profile, alphas=alphas, seed=seed)
subtitle = toy.describe(settings, profile)
glue("ch02_profile", profile, display=False)
net, teacher = toy.diagonal_head(settings), toy.teacher(settings)
tables.Table(teacher.rows(), title="The teacher's nonzero diagonal entries")

# %% [markdown]
# ## Diagonal weights: the $\alpha$ sweep (Figs. 6, 7, 8)

# %%
seeds = [settings.seed + s for s in range(settings.n_seeds)]
sweeps = {s: toy.alpha_sweep(net, settings, settings.alphas, seed=s) for s in seeds}
runs = sweeps[settings.seed]

# %% tags=["hide-input"]
alg = algorithm1.algorithm1(net)
glue("ch02_fig_loss", toy_figures.loss_overlay(runs, alg, settings.tau_max, subtitle), display=False)
for key in ("qk", "vo"):
    glue(f"ch02_fig_{key}", toy_figures.alpha_panels(net, runs, key, teacher.coords, subtitle), display=False)
rises = {a: descent.largest_loss_rise(r, flow.ROUNDING_FLOOR) for a, r in runs.items()}
glue_all("ch02", {"rises": ", ".join(f"{max(r, 0.0):.1e} (α = {a:g})" for a, r in rises.items()),
                  "floor": f"{flow.ROUNDING_FLOOR:g}",
                  "alphas": ", ".join(f"{a:g}" for a in settings.alphas), "solver": settings.solver,
                  "rtol": f"{settings.rtol:g}"})

# %% [markdown]
# ```{glue:figure} ch02_fig_loss
# :name: "fig-ch02-loss"
#
# Training loss against rescaled time $\tau = t/\log(1/\alpha)$ for $\alpha$ = {glue:text}`ch02_alphas`,
# overlaid (gradient flow, {glue:text}`ch02_solver` solver at rtol {glue:text}`ch02_rtol`), with Algorithm 1's
# plateaus ($\alpha \to 0$, dashed); the axis is clipped to the plateaus, so the curves' convergence to the
# dashed steps as $\alpha$ decreases can be read. The analogue of the paper's Fig. 6 (v1) at the
# {glue:text}`ch02_profile` profile.
# ```
#
# ```{glue:figure} ch02_fig_qk
# :name: "fig-ch02-qk"
#
# Diagonal entries of $W_K W_Q^\top$ against rescaled time, one panel per $\alpha$; coloured: the teacher's
# nonzero entries, grey: the others. The analogue of the paper's Fig. 7 (v1) at the
# {glue:text}`ch02_profile` profile.
# ```
#
# ```{glue:figure} ch02_fig_vo
# :name: "fig-ch02-vo"
#
# Diagonal entries of $W_V W_O^\top$, as in {numref}`fig-ch02-qk`. The analogue of the paper's Fig. 8 (v1)
# at the {glue:text}`ch02_profile` profile.
# ```
#
# Gradient flow never raises the loss. The largest rise between consecutive
# records, $L_{k+1}/L_k - 1$ ($\le 0$ when it never rises), counted wherever the loss
# is above {glue:text}`ch02_floor` (below it, at $\alpha = 10^{-32}$, the loss is
# rounding noise of about $10^{-26}$), is {glue:text}`ch02_rises`: the curves of
# {numref}`fig-ch02-loss` are monotone. (The LSODA solver used before made the
# $\alpha = 10^{-32}$ loss rise on its last plateau; `rankbook.theory.flow.log_flow` says
# by how much and why.)
#
# Which coordinates switch on? We count them on the flow runs themselves
# ($|u_i v_i|$ rising from below `active_threshold` to it), then compare their
# onsets with Algorithm 1's $T_k$. Coordinates already at or above the threshold at the first record
# have no onset: they are counted apart, over all $2d$ coordinates.

# %%
switches = stages.switch_rows(net, runs, teacher.coords, settings.active_threshold)
predicted = alg.stage_times()
per_seed = {s: stages.stage_time_rows(net, predicted, sw, settings.active_threshold)
            for s, sw in sweeps.items()}
tables.Table(switches, ["α", "switched on", stages.SAME, "above threshold at init",
                         "largest |u_i v_i| off the teacher"],
             title=f"Coordinates the flow switches on (|u_i v_i| → {settings.active_threshold:g}), per α")

# %% tags=["hide-output"]
print("\n".join(f"α = {r['α']:g}: {r['coordinates']}" for r in switches))

# %% tags=["hide-input"]
tables.Table(stages.seed_spread_rows(per_seed, settings.alphas),
             title=f"Onset τ of Algorithm 1's coordinates, {len(seeds)} seed(s) (mean ± std over seeds)")

# %% tags=["hide-input"]
errors = stages.max_relative_errors(per_seed[settings.seed], settings.alphas)
at_init = stages.count_at_init(per_seed[settings.seed], settings.alphas)
teacher_like = [r["α"] for r in switches if r["same as the teacher's"]]
glue_all("ch02", {
    "switch_counts": ", ".join(f"{r['switched on']} (α = {r['α']:g})" for r in switches),
    "teacher_like": ", ".join(f"{a:g}" for a in teacher_like) or "none",
    "n_teacher": str(teacher.coords.size),
    "stray": ", ".join(f"{r['largest |u_i v_i| off the teacher']:.1e} (α = {r['α']:g})" for r in switches),
    "errors": ", ".join(f"{e:.3f} (α = {a:g})" for a, e in errors.items()),
    "at_init": ", ".join(f"{n} at α = {a:g}" for a, n in at_init.items() if n) or "none",
    "at_init_all": ", ".join(f"{r['above threshold at init']} at α = {r['α']:g}" for r in switches
                             if r["above threshold at init"]) or "none"})

# %% [markdown]
# ```{admonition} Paper
# Figs. 2a-c and 6-8: as $\alpha \to 0$ the loss and the weight entries converge to
# stagewise plateaus and sharp jumps, one diagonal entry switching on per stage.
# ```
#
# ```{admonition} This run
# The flow runs switch on {glue:text}`ch02_switch_counts` coordinates; exactly
# the teacher's {glue:text}`ch02_n_teacher` at $\alpha$ = {glue:text}`ch02_teacher_like`.
# The largest $|u_i v_i|$ of any other entry at any time is {glue:text}`ch02_stray`.
# Coordinates already above the threshold at initialization, out of all $2d$ (the switch table's
# column): {glue:text}`ch02_at_init_all`; of those, Algorithm 1's own coordinates (marked "above threshold
# at init" in the onset table, which has no onset for them): {glue:text}`ch02_at_init`.
# Largest relative gap between the measured onsets and Algorithm 1's $T_k$:
# {glue:text}`ch02_errors`.
# ```
#
# ## Full weights: singular values are learned one at a time (Fig. 2d-f)
#
# $W_K, W_Q, W_V, W_O \in \mathbb{R}^{50 \times 50}$, entries $\alpha\, \mathcal N(0, 1/d)$, trained by
# gradient descent on the same data: beyond the theory (the weights are not diagonal).
# GD follows the flow only with a step below $2/\lambda_{\max}$, $\lambda_{\max}$ the largest
# Hessian eigenvalue; we measure it where it is largest, at the end of training.
#
# **The criterion for "one at a time", fixed here.** A singular value is *learned* when its final value is
# at least 10× the switch-on threshold; its *jump* is the window of $\tau$ in which it goes from $10^{-3}$ to
# $0.5$ of its final value (the window {doc}`03_assumptions` uses for the diagonal entries). The singular
# values of a product are learned one at a time when each learned one's jump starts after the previous
# one's has ended: every gap (start of jump $k+1$ − end of jump $k$) is positive. Shown: every gap
# positive, in both products; partly shown: some; not shown: none, or fewer than two learned.

# %%
full = toy.full_head(settings)
times = flow.record_times(settings.full_alpha, settings.full_tau_max, 150)
full_run = descent.gradient_descent(full.loss_and_grad, toy.full_init(settings, settings.full_alpha),
                                    settings.full_alpha, settings.full_lr, times)
lam = descent.top_hessian_eigenvalue(full.loss_and_grad, full_run.theta[-1])
too_large = descent.gradient_descent(full.loss_and_grad, toy.full_init(settings, settings.full_alpha),
                                     settings.full_alpha, settings.full_lr_large, times)

# %% tags=["hide-input"]
sv_qk, sv_vo = toy.singular_value_paths(full, full_run)
onsets = {name: stages.singular_value_onsets(full_run.tau, sv, settings.active_threshold)
          for name, sv in (("W_K W_Q^T", sv_qk), ("W_V W_O^T", sv_vo))}
windows = {name: stages.singular_value_windows(full_run.tau, sv, settings.active_threshold)
           for name, sv in (("W_K W_Q^T", sv_qk), ("W_V W_O^T", sv_vo))}
gaps = {name: stages.window_gaps(w) for name, w in windows.items()}
glue("ch02_fig_full", toy_figures.full_weights(full_run, sv_qk, sv_vo, subtitle, windows), display=False)
glue_all("ch02", {
    "full_lr": f"{settings.full_lr:g}", "lam": f"{lam:.1f}", "lr_limit": f"{2 / lam:.4f}",
    "full_rise": f"{descent.largest_loss_rise(full_run):.1e}",
    "full_loss": f"{full_run.loss[-1]:.1e}", "lr_large": f"{settings.full_lr_large:g}",
    "large_rise": f"{100 * descent.largest_loss_rise(too_large):.0f}%",
    "large_loss": f"{too_large.loss[-1]:.2f}",
    "full_onsets": stages.onsets_text(onsets),
    "windows": "; ".join(f"{n}: " + ", ".join(f"[{a:.3f}, {b:.3f}]" for a, b in w)
                         for n, w in windows.items()),
    "gaps": "; ".join(f"{n}: " + (", ".join(f"{g:+.3f}" for g in gs) or "fewer than two learned")
                      for n, gs in gaps.items()),
    "sv_verdict": stages.one_at_a_time_verdict(gaps),
    "sv_final": f"W_K W_Q^T {np.round(sv_qk[-1], 2).tolist()}, W_V W_O^T {np.round(sv_vo[-1], 2).tolist()}",
    "sv_teacher": f"{np.round(np.sort(np.abs(teacher.qk))[::-1][:3], 2).tolist()} and "
                  f"{np.round(np.sort(np.abs(teacher.vo))[::-1][:3], 2).tolist()}"})

# %% [markdown]
# ```{glue:figure} ch02_fig_full
# :name: "fig-ch02-full"
#
# Full-weight head trained by GD at lr {glue:text}`ch02_full_lr`: the top singular values of $W_K W_Q^\top$
# and $W_V W_O^\top$, with each learned one's jump (from $10^{-3}$ to $0.5$ of its final value) shaded, and
# the training loss against rescaled time. The analogue of the paper's Fig. 2d-f (v1) at the
# {glue:text}`ch02_profile` profile.
# ```
#
# ```{admonition} Paper
# Fig. 2d-f: with full weights the singular values are learned incrementally.
# ```
#
# ```{admonition} This run
# At the end of training $\lambda_{\max}$ = {glue:text}`ch02_lam`, so GD is stable for a
# step below $2/\lambda_{\max}$ = {glue:text}`ch02_lr_limit`; we use
# {glue:text}`ch02_full_lr`. The largest loss rise between records is
# {glue:text}`ch02_full_rise` (≤ 0: the loss never rises) and the final loss
# {glue:text}`ch02_full_loss`. With a step of {glue:text}`ch02_lr_large`, above
# $2/\lambda_{\max}$, the loss rises by up to {glue:text}`ch02_large_rise` between records
# and ends at {glue:text}`ch02_large_loss`: it oscillates instead of following
# the flow. Singular values reach the threshold at rescaled times
# {glue:text}`ch02_full_onsets`; the final top singular values are
# {glue:text}`ch02_sv_final` (teacher: {glue:text}`ch02_sv_teacher`)
# ({numref}`fig-ch02-full`). The jumps of the learned singular values are {glue:text}`ch02_windows`;
# the gaps between consecutive jumps are {glue:text}`ch02_gaps` (negative: the next jump starts before
# the previous one is half done). By the criterion above, "one at a time" is **{glue:text}`ch02_sv_verdict`**
# at this tier (the other tiers are compared at the end of the page).
# ```
#
# ## Beyond gradient flow: step size, SGD and Adam
#
# GD with step $\eta$ follows the flow up to $O(\eta)$ per unit time while $\eta < 2/\lambda_{\max}$;
# with a larger step it oscillates or diverges. Adam normalizes each
# coordinate's step, so a coordinate at scale $\alpha$ moves by about lr per step whatever
# its gradient: the small initialization is erased after a few steps. Which optimizers keep the flow's
# stages, i.e. switch on exactly the teacher's coordinates in the flow's order?

# %%
opt_runs = toy.optimizer_runs(net, settings)
opt_rows = descent.optimizer_rows(net, opt_runs, settings.active_threshold)
survival = stages.optimizer_survival(opt_runs, teacher.coords, settings.active_threshold)
tables.Table([{**r, **s} for r, s in zip(opt_rows, survival)],
             ["run", "final loss", "largest loss rise", "coordinates switched on",
              "the teacher's, in the flow's order", "largest onset shift vs the flow (τ)"],
             title=f"Optimizers at α = {settings.optimizer_alpha:g} "
             "(Adam's τ = lr × steps / log(1/α): a nominal clock)")

# %% tags=["hide-input"]
lam_diag = descent.top_hessian_eigenvalue(net.loss_and_grad, opt_runs["gradient flow"].theta[-1])
key = f"coordinates ever ≥ {settings.active_threshold:g}"
kept, shift = "the teacher's, in the flow's order", "largest onset shift vs the flow (τ)"
teacher_vo = teacher.coords[teacher.coords >= settings.dim]
glue("ch02_fig_opt", toy_figures.optimizers(opt_runs, teacher_vo, subtitle, toy_figures.plateau_range(alg)),
     display=False)
glue_all("ch02", {"lam_diag": f"{lam_diag:.1f}", "lr_diag": f"{2 / lam_diag:.4f}",
                  "opt_summary": "; ".join(f"{r['run']}: {r[key]} coordinates, final loss "
                                           + (r["final loss"] if isinstance(r["final loss"], str)
                                              else f"{r['final loss']:.1e}") for r in opt_rows),
                  "kept": ", ".join(f"{r['run']} (onsets within {r[shift]:.3f})"
                                    for r in survival[1:] if r[kept]) or "none",
                  "lost": ", ".join(f"{r['run']} ({r['coordinates switched on']} coordinates)"
                                    for r in survival if not r[kept]) or "none"})

# %% [markdown]
# ```{glue:figure} ch02_fig_opt
# :name: "fig-ch02-opt"
#
# Gradient flow, GD at two steps, SGD (batch 32) and Adam from the same $\alpha \theta_0$: loss against
# rescaled time (axis clipped to Algorithm 1's plateaus), the teacher's VO entries under flow and GD, and
# Adam's loss per step. The {glue:text}`ch02_profile` profile; beyond the paper's figures.
# ```
#
# ```{admonition} This run
# On the diagonal head $\lambda_{\max}$ = {glue:text}`ch02_lam_diag` at the end of the
# flow ($2/\lambda_{\max}$ = {glue:text}`ch02_lr_diag`). Coordinates that ever reach the
# threshold, and final losses: {glue:text}`ch02_opt_summary`
# ({numref}`fig-ch02-opt`).
#
# **What survives.** The flow's stages (the teacher's coordinates, switched on in the flow's order) are kept
# by {glue:text}`ch02_kept`, and lost by {glue:text}`ch02_lost`. A step below $2/\lambda_{\max}$, with or
# without minibatch noise, keeps the stages; Adam, whose per-coordinate normalization erases the small
# initialization, does not.
# ```

# %% tags=["hide-input"]
chapter = "02_toy"
summary = tiers.normalize({
    "profile": profile, "settings": settings.as_dict(), "switches": switches,
    "n_teacher": int(teacher.coords.size),
    "stage_times": {str(s): r for s, r in per_seed.items()},
    "max_relative_error": {stages.alpha_key(a): e for a, e in errors.items()},
    "largest_loss_rise": {stages.alpha_key(a): r for a, r in rises.items()},
    "full": {"lambda_max": lam, "final_loss": float(full_run.loss[-1]), "onsets": onsets, "windows": windows,
             "gaps": gaps},
    "optimizers": opt_rows, "optimizer_survival": survival})
found = tiers.stored(chapter, PROFILES, profile)
summaries = tiers.by_tier(profile, summary, found)
_ = claims.record(profile, chapter, [row for t, s in summaries.items()
                                     for row in stages.toy_claims(s, stages.tier(t), chapter)])
_ = atomic.write_json(paths.output_dir(profile, chapter) / "summary.json", summary)
_ = tiers.record(chapter, profile, settings, summary, started)
glue("ch02_tiers", tiers.note(found), display=False)

# %% [markdown]
# ## The three tiers side by side
#
# The `reference` profile runs the paper's 1,000 samples and all six $\alpha$ with one seed, `paper` the same
# with three seeds (and the full-weight head at the paper's $\alpha = 10^{-8}$); both are CPU work, run once
# and stored in `results/` ({glue:text}`ch02_tiers`). A "–" is a value the tier does not measure.

# %% tags=["hide-input"]
tables.Table(stages.toy_tier_rows(summaries), title="Chapter 02 at each tier (fast: this build; reference, "
             "paper: stored)")
