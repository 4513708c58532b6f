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
# # Theory: incremental learning in networks with diagonal weights
#
# **Question.** The paper's theory (section 4) says that a network
# $f(x; u, v) = h(x; u \odot v)$ (Definition 3.1) trained by gradient flow from
# $\theta(0) = \alpha \theta_0$ learns one coordinate at a time as $\alpha \to 0$, at times that
# Algorithm 1 predicts. Does the flow at finite $\alpha$ follow Algorithm 1?
#
# Our instance is one attention head,
#
# $$
# f(X) = \operatorname{softmax}\!\left(X W_K W_Q^\top X^\top\right) X W_V W_O^\top,
# \qquad X \in \mathbb{R}^{n \times d}
# $$ (eq-ch01-head)
#
# (tokens as rows, softmax over each row), with diagonal weights: it
# depends on $w_K \odot w_Q$ and $w_V \odot w_O$ only, so $u = [w_K, w_V]$, $v = [w_Q, w_O]$
# (Example 3.2). Gradient flow reads
#
# $$
# \frac{du}{dt} = v \odot g(\theta), \qquad \frac{dv}{dt} = u \odot g(\theta), \qquad
# g(\theta) = -\frac{\partial L}{\partial (u \odot v)}
# $$ (eq-ch01-flow)
#
# (the paper's eq. 4). Time is rescaled, $\tau = t / \log(1/\alpha)$, so that the
# stage times $T_k$ do not depend on $\alpha$. The data and the teacher are those of
# {doc}`02_toy`.
#
# ```{admonition} Departures from the paper
# - **Loss normalization.** $L$ = mean over samples of $\tfrac12\lVert f(X) - Y\rVert^2$, the squared
#   norm summed over all tokens and dimensions. The paper does not state its
#   normalization; another one rescales time (and every $T_k$) by a constant.
# - **$b^0 = 1$.** Algorithm 1's pseudo-code starts from "$b^0, \theta^0 \leftarrow 0$". We start
#   from $b^0 = 1$ ($\theta^0 = 0$): $b$ is the log-scale $\log_\alpha |w_i|$, and
#   $\theta(0) = \alpha\theta_0$
#   gives $\log_\alpha |w_i(0)| \to 1$. Below we run both and show what $b^0 = 0$ would predict.
# - **A sparse teacher.** The paper's teacher is "randomly generated"; ours has
#   2 + 3 nonzero entries of distinct sizes. Below we count the stages a dense
#   random teacher gives.
# ```

# %% tags=["parameters"] mystnb={"code_prompt_show": "Parameters", "code_prompt_hide": "Hide parameters"}
profile: str = ""  # "fast", "reference" or "paper"; empty: $RANKBOOK_PROFILE, else "fast"
alphas: list = None  # initialization scales compared with Algorithm 1; None: the profile's theory_alphas
seed: int = None  # data/teacher/init seed; None: the profile's

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
from rankbook.book.source import show_source
from rankbook.figures import tables
from rankbook.figures import toy as toy_figures
from rankbook.settings import profiles
from rankbook.settings.toy import PROFILES
from rankbook.store import atomic, paths
from rankbook.theory import algorithm1, flow, stages, tiers, toy

started = tiers.start()
profile = profiles.resolve(profile)
settings = profiles.select(PROFILES, profile, theory_alphas=alphas, seed=seed)
subtitle = toy.describe(settings, profile)
glue("ch01_profile", profile, display=False)

# %%
net = toy.diagonal_head(settings)
teacher = toy.teacher(settings)
tables.Table(teacher.rows(), title="The teacher's nonzero diagonal entries")

# %% [markdown]
# ## The conservation law (Lemma 4.1)
#
# $$
# \frac{d}{dt}\left(u_i^2 - v_i^2\right) = 2 u_i v_i g_i - 2 v_i u_i g_i = 0 .
# $$ (eq-ch01-conservation)
#
# We check {eq}`eq-ch01-conservation` on a trajectory
# integrated in plain $\theta$ coordinates (where nothing enforces it; the solver in
# log-coordinates used everywhere else relies on the law) at $\alpha = 0.1$.

# %%
u0, v0 = toy.diagonal_init(settings, 0.1)
check = flow.theta_flow(net.loss_and_grad, np.concatenate([u0, v0]), 0.1, flow.record_times(0.1, 0.8, 100),
                        rtol=1e-9, atol=1e-13, method="DOP853")
law = stages.conservation(check)

# %% tags=["hide-input"]
glue_all("ch01", {"drift": f"{law['drift']:.1e}", "growth": f"{law['growth']:.1e}",
                  "check_evals": str(check.n_evals)})
glue("ch01_fig_conservation", toy_figures.conservation(net, check, subtitle), display=False)

# %% [markdown]
# ```{glue:figure} ch01_fig_conservation
# :name: "fig-ch01-conservation"
#
# Lemma 4.1 on the toy head at $\alpha = 0.1$ ($\theta$-coordinate flow, DOP853, rtol $10^{-9}$): left,
# $u_i^2$ (solid) and $v_i^2$ (dashed) of the three largest learned coordinates; right, the relative change of
# $c_i = u_i^2 - v_i^2$. The {glue:text}`ch01_profile` profile; beyond the paper's figures.
# ```
#
# ```{admonition} This run
# Over {glue:text}`ch01_check_evals` evaluations the largest relative drift
# $|c_i(t) - c_i(0)| / |c_i(0)|$ is {glue:text}`ch01_drift`, while $u_i^2$ grew by
# up to a factor {glue:text}`ch01_growth` ({numref}`fig-ch01-conservation`).
# ```
#
# ## Algorithm 1 on the toy head
#
# From $\theta^0 = 0$, $b^0 = 1$, $T_0 = 0$, each stage $k$ picks the coordinate $i_k$ with the
# smallest time until active, moves the clock and the log-scale weights, then follows the
# gradient flow restricted to the support from $\theta^k + \varepsilon e_{i_k}$ to its stationary
# limit (the paper's eqs. 8-11):
#
# $$
# \begin{aligned}
# \Delta_k(i) &= \frac{b_i^k - 1 + \operatorname{sgn} g_i(\theta^k)}{g_i(\theta^k)}, &
# T_{k+1} &= T_k + \Delta_k(i_k), \\
# b^{k+1} &= b^k - g(\theta^k)\, \Delta_k(i_k), &
# \theta^{k+1} &= \lim_{t \to \infty}
#   \theta_{\text{flow on } \operatorname{supp}}\!\left(\theta^k + \varepsilon e_{i_k}, t\right).
# \end{aligned}
# $$ (eq-ch01-algorithm1)
#
# At $\theta = 0$ the QK coordinates have $g = 0$ exactly (with $w_V \odot w_O = 0$ the
# output is 0 whatever the attention), so the first stage is a VO coordinate.
# The code that runs (folded):

# %% tags=["hide-input"]
show_source(algorithm1.algorithm1)

# %%
result = algorithm1.algorithm1(net)
tables.Table(result.rows(), title=f"Algorithm 1 ({result.stop_reason})")

# %% tags=["hide-input"]
found = sorted(s.name for s in result.stages)
glue_all("ch01", {"n_stages": str(len(result.stages)),
                  "match": "exactly" if found == sorted(teacher.support()) else "not exactly"})

# %% [markdown]
# Algorithm 1 finds {glue:text}`ch01_n_stages` stages; its coordinates are
# {glue:text}`ch01_match` the teacher's nonzero entries.
#
# ## A dense random teacher
#
# The paper's teacher is "randomly generated". A diagonal head with all four
# weight vectors i.i.d. $\mathcal N(0, 1)$ has $2d = 100$ nonzero products. How many stages
# does it give? Algorithm 1 on it is slow (each stage trains a growing support
# to stationarity), so we count the switches of the gradient flow itself.

# %%
dense_net = toy.diagonal_head(settings, toy.dense_teacher(settings))
dense = toy.flow_run(dense_net, settings, settings.dense_alpha, tau_max=settings.dense_tau_max)
dense_onsets = np.sort(flow.activation_times(dense, settings.active_threshold)[stages.switched_on(
    dense, settings.active_threshold)])

# %% tags=["hide-input"]
dense_gaps, sparse_gaps = np.diff(dense_onsets), np.diff([s.time for s in result.stages])
glue_all("ch01", {"dense_switches": str(dense_onsets.size), "dense_alpha": f"{settings.dense_alpha:g}",
                  "dense_tau": f"{settings.dense_tau_max:g}", "dense_loss": f"{dense.loss[-1]:.2f}",
                  "dense_loss0": f"{dense.loss[0]:.1f}", "dense_close": str(int((dense_gaps < 0.01).sum())),
                  "dense_min_gap": f"{dense_gaps.min():.4f}", "sparse_min_gap": f"{sparse_gaps.min():.3f}"})

# %% [markdown]
# ```{admonition} This run
# With the dense teacher, the flow at $\alpha$ = {glue:text}`ch01_dense_alpha` switches
# on {glue:text}`ch01_dense_switches` coordinates by $\tau$ = {glue:text}`ch01_dense_tau`,
# and the loss has only fallen from {glue:text}`ch01_dense_loss0` to
# {glue:text}`ch01_dense_loss`: more stages follow. {glue:text}`ch01_dense_close`
# of the gaps between consecutive switches are below 0.01 in rescaled time
# (smallest {glue:text}`ch01_dense_min_gap`), against a smallest gap of
# {glue:text}`ch01_sparse_min_gap` between Algorithm 1's stages for our sparse
# teacher. A jump ($|u_i v_i|$ from $10^{-3}$ to half its final value) of our teacher
# lasts up to {glue:text}`ch01_jump_width` in rescaled time even at
# $\alpha$ = {glue:text}`ch01_smallest` (measured below; {doc}`03_assumptions` follows
# the widths across α), so most of those stages cannot be told apart: that is
# why the book uses a sparse teacher.
# ```
#
# ## Predicted stage times against gradient flow at finite α
#
# Theorem 4.5: as $\alpha \to 0$,
#
# $$
# \theta\big(\tau \log(1/\alpha)\big) \to \theta^k \quad \text{for } \tau \in (T_k, T_{k+1}).
# $$ (eq-ch01-theorem)
#
# We integrate the gradient flow for each $\alpha$ and measure, per coordinate, the
# rescaled time at which $|u_i v_i|$ first reaches `active_threshold`. Each cell of the table is the
# measured onset and, in brackets, its relative error against Algorithm 1's $T_k$.

# %%
runs = toy.alpha_sweep(net, settings, settings.theory_alphas)
rows = stages.stage_time_rows(net, result.stage_times(), runs, settings.active_threshold)
tables.Table(stages.compact_stage_rows(rows, settings.theory_alphas),
             title=f"Stage times: flow onset (|u_i v_i| ≥ {settings.active_threshold:g}), relative error")

# %% tags=["hide-input"]
errors = stages.max_relative_errors(rows, settings.theory_alphas)
ordered = sorted(errors, reverse=True)
shrinks = stages.decreasing(errors[a] for a in ordered)
glue_all("ch01", {"errors": ", ".join(f"{errors[a]:.3f} at α = {a:g}" for a in ordered),
                  "shrinks": "shrinks" if shrinks else "does not shrink monotonically",
                  "threshold": f"{settings.active_threshold:g}"})
glue("ch01_fig_overlay", toy_figures.algorithm1_overlay(net, result, runs, settings.tau_max, subtitle),
     display=False)

# %% [markdown]
# ```{glue:figure} ch01_fig_overlay
# :name: "fig-ch01-overlay"
#
# Gradient flow at each $\alpha$ (overlaid) against Algorithm 1 ($\alpha \to 0$): left, the training loss
# with Algorithm 1's plateaus (dashed steps), the axis clipped to the plateaus (the last plateau, at the
# teacher, has loss 0); right, the learned entries $u_i v_i$ at the smallest $\alpha$, dotted lines at the
# predicted $T_k$. The analogue of the paper's Fig. 6 (v1) at the {glue:text}`ch01_profile` profile, with
# Algorithm 1 added.
# ```
#
# ```{admonition} Paper
# Theorem 4.5: the gradient-flow trajectory in rescaled time converges to
# Algorithm 1's stages as $\alpha \to 0$.
# ```
#
# ```{admonition} This run
# The largest relative error of the measured stage times is
# {glue:text}`ch01_errors`: it {glue:text}`ch01_shrinks` as $\alpha$ decreases
# ({numref}`fig-ch01-overlay`). The error is of order
# $\log(1/\text{threshold}) / \log(1/\alpha)$: growing from the threshold to $O(1)$ and from
# $|\theta_0|$ to $\alpha$ take a fixed time in $t$, hence a vanishing one in $\tau$.
# ```

# %% [markdown]
# **Why $b^0 = 1$.** With the pseudo-code's $b^0 = 0$, {eq}`eq-ch01-algorithm1` gives
# $\Delta_0(i) = (\operatorname{sgn} g_i - 1) / g_i$: 0 for every $g_i(0) > 0$ (a first stage at $T = 0$)
# and $2/|g_i|$ for $g_i(0) < 0$, twice the $b^0 = 1$ value. The flow decides.

# %%
b0_zero = algorithm1.algorithm1(net, b0=0.0, max_stages=1).stages[0]
smallest = min(runs)
first_flow = float(np.nanmin(flow.activation_times(runs[smallest], settings.active_threshold)))
g0 = net.loss_and_g(np.zeros(net.p))[1]

# %% tags=["hide-input"]
jump_width = max(end - start for start, end in flow.transition_windows(runs[smallest]).values())
glue_all("ch01", {"t1": f"{result.stages[0].time:.3f}", "t1_b0": f"{b0_zero.time:.3f}",
                  "jump_width": f"{jump_width:.3f}",
                  "first_flow": f"{first_flow:.3f}", "smallest": f"{smallest:g}",
                  "g_pos": str(int((g0 > 1e-7).sum())), "g_neg": str(int((g0 < -1e-7).sum()))})

# %% [markdown]
# ```{admonition} This run
# At $\theta = 0$, {glue:text}`ch01_g_pos` coordinates have $g_i > 0$ and
# {glue:text}`ch01_g_neg` have $g_i < 0$. With $b^0 = 1$ the first stage comes at
# $T_1$ = {glue:text}`ch01_t1`; with $b^0 = 0$ at {glue:text}`ch01_t1_b0`. The flow
# at $\alpha$ = {glue:text}`ch01_smallest` switches its first coordinate on at
# $\tau$ = {glue:text}`ch01_first_flow`: $b^0 = 1$ is the reading consistent with the flow.
# ```

# %% tags=["hide-input"]
chapter = "01_theory"
summary = tiers.normalize({
    "profile": profile, "settings": settings.as_dict(), "conservation": law, "algorithm1": result.rows(),
    "n_stages": len(result.stages), "stage_times": rows, "dense_teacher_switches": int(dense_onsets.size),
    "max_relative_error": {stages.alpha_key(a): e for a, e in errors.items()}})
found = tiers.stored(chapter, PROFILES, profile)
summaries = tiers.by_tier(profile, summary, found)
_ = claims.record(profile, chapter, [row for t, s in summaries.items()
                                     for row in stages.theory_claims(s, stages.tier(t), chapter)])
_ = atomic.write_json(paths.output_dir(profile, chapter) / "summary.json", summary)
_ = tiers.record(chapter, profile, settings, summary, started)
glue("ch01_tiers", tiers.note(found), display=False)

# %% [markdown]
# ## The three tiers side by side
#
# The toy chapters are CPU work, so the `reference` and `paper` profiles (the paper's 1,000 samples and all
# six $\alpha$) are run once and stored in `results/` ({glue:text}`ch01_tiers`); the table puts their numbers
# beside this build's. A "–" is a value the tier does not measure (an $\alpha$ it does not run).

# %% tags=["hide-input"]
tables.Table(stages.theory_tier_rows(summaries),
             title="Chapter 01 at each tier (fast: this build; reference, paper: stored)")
