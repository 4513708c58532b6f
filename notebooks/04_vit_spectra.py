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
# # Vision transformers: a low-rank perturbation whose rank grows
#
# The paper trains a vision transformer (6 layers, 8 heads, width 512, head
# dimension 128, patch 4) on CIFAR-10 with Adam and follows, for every head,
# the perturbation of the attention matrices away from their initial values,
# $\Delta W_K W_Q^\top = W_K W_Q^\top - W_K(0) W_Q(0)^\top$ and likewise
# $\Delta W_V W_O^\top$. Its claims (section 5, appendix B; figure numbers
# as in arXiv v1, see the crosswalk on {doc}`08_results`):
#
# * the spectrum of $\Delta$ is concentrated in a few directions, unlike the
#   spectrum of the product at initialization (Figs. 1a, 5, 11);
# * the stable rank $\|\Delta\|_F^2/\|\Delta\|_2^2$ stays small and grows
#   gradually through training (Fig. 12; the paper notes that on CIFAR-10 it
#   "does not grow as much" as on ImageNet).
#
# Each head's $W_Q, W_K, W_V, W_O$ are explicit tensors of the model
# (`rankbook.models.vit`), so the matrices below are exactly the paper's;
# singular values come from the thin factors (`rankbook.analysis.spectra`).
#
# **Where the settings depart from the paper.** The paper's run (500 epochs
# of a width-512 model) needs a GPU; this chapter runs one of three profiles
# and shows the stored runs of the others beside it:
#
# * `fast` (run live on 2 CPU cores in minutes): width 64 with **4 heads of
#   dimension 16** (paper: 8 heads of 128), MLP 128 (paper 512), **5 epochs**
#   of the full 50,000-image training split (paper 500), Adam at **lr 1e-3,
#   10× the paper's 1e-4**, **batch 128** (paper 512) and a **1-epoch
#   warmup** (paper 15), because five epochs at the paper's learning rate
#   barely move the weights (see `rankbook.settings.vit`); evaluation on
#   2,000 test images.
# * `reference` (stored in `results/`; estimated at CPU-hours on 2 cores, but
#   the stored runs were trained on a GPU: see the training times below):
#   **8 heads per layer** as in the paper, but **width 128**, head dimension
#   16, MLP 128, **20 epochs**, lr 1e-3, batch 128, 2-epoch warmup, three seeds.
# * `paper`: the paper's model and schedule; on a GPU it trains in **bf16
#   autocast** with **`torch.compile`**, which the paper does not state. No
#   augmentation, weight decay or dropout, as the paper lists.
#
# The warmup-then-cosine schedule is our reading of the paper's "cyclic
# learning rate decay with a linear warmup" (one cycle).

# %% tags=["parameters"] mystnb={"code_prompt_show": "Parameters", "code_prompt_hide": "Hide parameters"}
profile: str = ""  # "fast" (CPU, minutes), "reference" or "paper"; empty: $RANKBOOK_PROFILE, else "fast"
dataset: str = ""  # "cifar10", "cifar100" or "imagenet"; empty: the profile's first data set (CIFAR-10)
epochs: int = None  # override the profile's training epochs
train_subset: int = None  # override the number of training images (0: the whole split)
lr: float = None  # override Adam's base learning rate

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
from rankbook.analysis import claims, report, transient, trend
from rankbook.book.glue import glue
from rankbook.book.source import show_source
from rankbook.figures import explorer, spectra, stable_rank
from rankbook.settings import profiles
from rankbook.settings.vit import PROFILES
from rankbook.training import vit

CHAPTER = "04_vit_spectra"
profile = profiles.resolve(profile)
settings = profiles.select(PROFILES, profile, epochs=epochs, train_subset=train_subset, lr=lr)
dataset = dataset or settings.datasets[0]
print(f"profile {profile}, {dataset}: {settings}")

# %% [markdown]
# ## Train, or reuse a stored run
#
# A run is keyed by its full configuration (and the data's fingerprint); a
# finished run with the same key, in the repository's `results/` or in
# `_build/results/`, is loaded instead of trained again. Chapter
# {doc}`05_vit_init_scale` trains the same model at other init scales, and
# {doc}`07_lora` cuts this run's updates to low rank.

# %%
runs = [vit.run(settings, dataset, settings.init_scale, seed) for seed in settings.seeds]
stored = report.stored(vit.run, PROFILES, profile, dataset=dataset, init_scale=1.0)
run = runs[0]

# %% tags=["hide-input"]
print(report.describe_runs({profile: runs, **stored}, spectra.describe, "test_acc"))
print("stored runs of the other tiers:", report.stored_note(stored))
glue("ch04_acc", f"{run.manifest['final_test_acc']:.2f}", display=False)
glue("ch04_stored", report.stored_note(stored), display=False)
glue("ch04_cost", report.cost_note({profile: runs, **stored}), display=False)
stored_paper = bool(stored.get("paper")) or profile == "paper"
for name, tier in (("live", profile), ("reference", "reference"), ("paper", "paper")):
    for key, figure in (("spectra", "Figs. 1a and 11"), ("delta", "Fig. 5"), ("rank", "Fig. 12")):
        glue(f"ch04_cap_{key}_{name}", report.caption_phrase(tier, figure, stored_paper), display=False)

# %% [markdown]
# ## Normalized spectra at initialization and of Δ during training
#
# Three heads drawn at random in layers 1, 3 and 5 (the same heads in every
# figure of the chapter).

# %% tags=["hide-input"]
heads = spectra.random_heads(run, [x for x in (0, 2, 4) if x < settings.depth])
glue("ch04_fig_spectra", spectra.spectra_over_training(run, profile, heads), display=False)
report.glue_all("ch04", report.spectrum_numbers(run))

# %% [markdown]
# ```{glue:figure} ch04_fig_spectra
# :name: "fig-ch04-spectra"
#
# Normalized singular values (divided by the largest) of $W_K W_Q^\top$ and
# $W_V W_O^\top$ at initialization (red) and of their perturbation $\Delta$ at
# log-spaced steps of training (greens, darker later), for one head in each of
# layers 1, 3, 5; dashed: a random matrix of $\Delta$'s shape and rank
# $2 d_\text{head}$. The live run of this page's profile.
# {glue:text}`ch04_cap_spectra_live`.
# ```
#
# ```{admonition} Paper
# The normalized spectrum of $\Delta$ falls off much faster than that of the
# product at initialization: the learned perturbation is low-rank (Figs. 1a, 5, 11).
# ```
#
# ```{admonition} This run
# Over all {glue:text}`ch04_heads` heads at step {glue:text}`ch04_final_step`,
# the top singular value carries {glue:text}`ch04_share_delta_qk` of
# $\|\Delta W_K W_Q^\top\|_F^2$ and {glue:text}`ch04_share_delta_vo` of
# $\|\Delta W_V W_O^\top\|_F^2$, against {glue:text}`ch04_share_init_qk` and
# {glue:text}`ch04_share_init_vo` for the products at initialization
# ({numref}`fig-ch04-spectra`, {numref}`fig-ch04-delta-init`).
# ```

# %% tags=["hide-input"]
glue("ch04_fig_delta_init", spectra.delta_vs_init(run, profile, heads, kind="qk"), display=False)

# %% [markdown]
# ```{glue:figure} ch04_fig_delta_init
# :name: "fig-ch04-delta-init"
#
# Singular values (log scale) of $\Delta W_K W_Q^\top$ at the end of training
# (green) and of $W_K W_Q^\top$ at initialization (red), for the heads of
# {numref}`fig-ch04-spectra`. {glue:text}`ch04_cap_delta_live`.
# ```
#
# ## The stable rank through training
#
# The first point of the curve is Adam's first step. Its update is
# $-\text{lr}\cdot g/(|g|+\epsilon) \approx -\text{lr}\cdot\operatorname{sign}(g)$
# entry by entry, and taking signs spreads a gradient that has a few strong
# directions over many: the stable rank of $\Delta$ starts high and falls over
# the first steps, while Adam's second-moment estimate fills in, before it
# rises. We measure that *transient* on this run's own model, from the same
# initialization and the same first batch: one Adam step, one gradient step
# scaled per head and matrix to the same size, and one sign step.

# %%
first_task = vit.task(settings, dataset, settings.init_scale, settings.seeds[0])
measured = transient.summary(transient.first_step(first_task, transient.first_lr(run)))
report.glue_all("ch04_transient", report.transient_numbers(measured, run))

# %% [markdown]
# ```{admonition} The first-step transient, measured
# After one Adam step the stable rank of $\Delta W_K W_Q^\top$ (mean over
# heads and layers) is {glue:text}`ch04_transient_qk_adam` (the run recorded
# {glue:text}`ch04_transient_qk_recorded` at step 1); after a gradient step of
# the same size, from the same weights and batch, it is
# {glue:text}`ch04_transient_qk_gradient`; after a sign step,
# {glue:text}`ch04_transient_qk_sign`. For $\Delta W_V W_O^\top$:
# {glue:text}`ch04_transient_vo_adam` (Adam), {glue:text}`ch04_transient_vo_gradient`
# (gradient), {glue:text}`ch04_transient_vo_sign` (sign). The high start is
# Adam's, not the dynamics' the paper describes. It dies out within about
# $1/(1-\beta_1) = 10$ steps, the memory of Adam's first moment: the median
# change of a layer's mean stable rank from one tracked step to the next is,
# for $\Delta W_K W_Q^\top$, {glue:text}`ch04_decay_qk_decay`, and for
# $\Delta W_V W_O^\top$, {glue:text}`ch04_decay_vo_decay`
# ({glue:text}`ch04_decay_source`). So the trend below is judged from step
# {glue:text}`ch04_trend_window_start` on, a start fixed by the optimizer, not
# chosen from the curves, and not the end of the learning-rate warmup (which
# would leave out most of the paper-scale run's rise).
# ```

# %% tags=["hide-input"]
decay_runs = stored.get("reference") or runs  # three seeds where stored, else this page's run
report.glue_all("ch04_decay", report.transient_decay(decay_runs))
glue("ch04_decay_source", "the stored reference seeds" if stored.get("reference") else "this page's runs",
     display=False)
glue("ch04_rule", trend.rule_text(), display=False)
show_source(transient.first_step)

# %% [markdown]
# The verdict of a layer comes from a rule fixed before looking at these
# curves (`rankbook.analysis.trend`): {glue:text}`ch04_rule`. Its thresholds
# were calibrated so that curves with no trend (noise of 2-10% per head and
# point, random walks of 2-10% per tracked point, and the stored runs' own
# curves shuffled in time) get "rises" or "falls" in at most 5% of cases on
# every tier's step grid and head count (`benchmarks/trend_calibration.py`).
# One word can hide a shape, so the table also names each layer's shape over
# the window ("dips then rises", "rises then plateaus").

# %% tags=["hide-input"]
show_source(trend.layer_trend)

# %% tags=["hide-input"]
report.glue_all("ch04_trend", report.trend_numbers(runs))
glue("ch04_fig_rank", stable_rank.through_training(runs, profile, metric="test_acc"), display=False)

# %% [markdown]
# ```{glue:figure} ch04_fig_rank
# :name: "fig-ch04-rank"
#
# Stable rank of $\Delta W_K W_Q^\top$ (blue) and $\Delta W_V W_O^\top$ (red)
# per layer through training, mean ± std over the heads of the layer (and
# over seeds where there are several); gray band: steps before 10, Adam's
# first-step transient, left out of the verdict; dotted vertical line: the
# end of the learning-rate warmup; thick segments: the mean over the window's
# first and last quarter (log step) that the verdict compares. The stable
# ranks of the products at initialization and of a random matrix of
# $\Delta$'s shape and rank lie far above the axes; the legend states them.
# Each panel's title gives the layer's verdicts; the last panel is the test
# accuracy. The live run of this page's profile. {glue:text}`ch04_cap_rank_live`.
# ```
#
# ```{admonition} Paper
# The stable rank of $\Delta$ stays far below that of a generic matrix and
# increases gradually through training (Fig. 12, mean and std over 8 heads
# per layer).
# ```
#
# ```{admonition} This run
# The mean stable rank of $\Delta W_K W_Q^\top$ (over heads and layers) is
# {glue:text}`ch04_trend_qk_step1` at step 1, inside the transient. Over the
# verdict's window, from step {glue:text}`ch04_trend_window_start`, it starts
# at {glue:text}`ch04_trend_qk_start` (the window's first quarter), is lowest
# at {glue:text}`ch04_trend_qk_min` at step {glue:text}`ch04_trend_qk_min_step`
# and ends at {glue:text}`ch04_trend_qk_end` at step
# {glue:text}`ch04_trend_end_step`. It **rises in
# {glue:text}`ch04_trend_qk_rises`** and falls in
# {glue:text}`ch04_trend_qk_falls` (verdict: {glue:text}`ch04_trend_qk_verdict`);
# {glue:text}`ch04_trend_qk_shapes`. $\Delta W_V W_O^\top$:
# {glue:text}`ch04_trend_vo_step1` at step 1; over the window
# {glue:text}`ch04_trend_vo_start` → lowest {glue:text}`ch04_trend_vo_min`
# (step {glue:text}`ch04_trend_vo_min_step`) → {glue:text}`ch04_trend_vo_end`;
# it rises in {glue:text}`ch04_trend_vo_rises` (verdict:
# {glue:text}`ch04_trend_vo_verdict`; {glue:text}`ch04_trend_vo_shapes`).
# Test accuracy at the end: {glue:text}`ch04_acc`.
# ```

# %% tags=["hide-input"]
stable_rank.trend_table(runs)

# %% tags=["hide-input"]
stable_rank.curve_table(runs, "qk")

# %% tags=["hide-input"]
stable_rank.curve_table(runs, "vo")

# %% tags=["hide-input"]
stable_rank.stable_rank_table(runs)

# %% [markdown]
# ## The stored reference and paper-scale runs
#
# The same figure for the stored runs of the other tiers, trained with the
# code and data of this page ({glue:text}`ch04_stored`). The reference run
# has the paper's 8 heads per layer; its band is mean ± std over heads and
# seeds, and its verdict pools the 24 heads of the three seeds. Training
# times, from the runs' manifests: {glue:text}`ch04_cost`.

# %% tags=["hide-input"]
stable_rank.seeds_table({profile: runs, **stored}, "qk")

# %% tags=["hide-input"]
for tier in ("reference", "paper"):
    fig = stable_rank.stored_figure(stored, tier, f"the ViT on {dataset}", metric="test_acc")
    glue(f"ch04_fig_rank_{tier}", fig, display=False)
written = claims.record(profile, CHAPTER, report.chapter_claims(runs, profile, stored, CHAPTER))
paper_run = (stored.get("paper") or (runs if profile == "paper" else []))[:1]
reference_runs = stored.get("reference") or (runs if profile == "reference" else [])
memorized = bool(paper_run and reference_runs)
for name, rs in (("paper", paper_run), ("ref", reference_runs)):
    numbers = report.memorization_numbers(rs[0]) if memorized else None
    report.glue_all(f"ch04_{name}", numbers or dict.fromkeys(report.memorization_numbers(runs[0]), "n/a"))
glue("ch04_memorized", "" if memorized else "No stored paper-profile and reference runs to compare here.",
     display=False)

# %% tags=["hide-input"]
from IPython.display import display

for tier, rs in {"reference": reference_runs, "paper": paper_run}.items():
    if rs and tier != profile:
        display(stable_rank.trend_table(rs))

# %% [markdown]
# ```{glue:figure} ch04_fig_rank_reference
# :name: "fig-ch04-rank-reference"
#
# As {numref}`fig-ch04-rank`, for the stored `reference` runs (8 heads per
# layer, width 128, 20 epochs; mean ± std over heads and seeds), when
# stored. {glue:text}`ch04_cap_rank_reference`.
# ```
#
# ```{glue:figure} ch04_fig_rank_paper
# :name: "fig-ch04-rank-paper"
#
# As {numref}`fig-ch04-rank`, for the stored `paper` run (the paper's model
# and schedule, bf16 on a GPU), when stored. {glue:text}`ch04_cap_rank_paper`.
# ```
#
# ```{admonition} Why the paper-scale run ends below the reference run in test accuracy
# {glue:text}`ch04_memorized` The paper-scale run peaks at test accuracy
# {glue:text}`ch04_paper_best_acc` at step {glue:text}`ch04_paper_best_step`
# and ends at {glue:text}`ch04_paper_final_acc`, below the first reference
# seed's {glue:text}`ch04_ref_final_acc`. It memorizes: with no augmentation,
# weight decay or dropout (as the paper lists), its train loss falls to
# {glue:text}`ch04_paper_final_train_loss` while its test loss climbs from
# {glue:text}`ch04_paper_min_test_loss` to {glue:text}`ch04_paper_final_test_loss`
# over 500 epochs (reference: train loss {glue:text}`ch04_ref_final_train_loss`,
# test loss {glue:text}`ch04_ref_final_test_loss` after 20 epochs). The
# test-accuracy panels of the two figures above show the curves.
# ```
#
# ## Explore the spectra yourself
#
# In Jupyter or Colab, the panel below lets you pick any layer, head, tracked
# step and matrix of the live run. Widgets need a running kernel, so on the
# static site the panel is inert; the animation after it plays the same plot
# through every tracked step for one head.

# %%
explorer.spectra_explorer(run, profile)

# %%
explorer.spectra_animation(run, profile, *heads[0], kind="qk")
