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
# # Vision transformers: smaller initialization, lower rank?
#
# The theory predicts incremental, low-rank learning as the initialization
# scale goes to zero. The paper tests this on the vision transformer of
# {doc}`04_vit_spectra` by multiplying the initial values of every layer
# except the token mapper (patch embedding, class token, position
# embeddings) by a scale factor, 1 being the default initialization. Its
# claims (section 5; figure numbers as in arXiv v1):
#
# * the singular values of $\Delta$ in a head are learned one after another,
#   more visibly at small scales (Fig. 3, a random head of layer 2);
# * the stable rank of $\Delta W_K W_Q^\top$ after training decreases with the
#   initialization scale, at layers 1, 3 and 5 (Fig. 4, mean ± std over 8
#   heads).
#
# **Two readings of "all layers".** The paper does not say whether the
# LayerNorm gains are scaled too. If they are, every residual branch shrinks
# as $s^3$ (gain, then two scaled matrices) and the gradients of $W_Q, W_K$
# roughly as $s^8$, which stalls training at small $s$. With the gains left
# at their default (only linear and attention weights scaled), the branches
# shrink as $s^2$ and small scales train. The setting `scale_norms` chooses;
# the profiles use `False`, the reading that trains (run this page with
# `-p scale_norms True` for the other; the diagnostics below name what it
# gives). Either way, a stable rank near 1 can mean incremental learning or
# a collapse, so beside it this chapter reports, per scale, the test
# accuracy, the size of the update relative to the initial product
# ($\|\Delta\|_F/\|W(0)\|_F$) and the **head alignment** (mean $|\cos|$
# between the top singular vectors of different heads of a layer), and names
# a collapsed or partly aligned scale as such (`rankbook.analysis.scales`).
# Only scales that trained without either count toward the claim.
#
# **Settings.** The model is chapter 04's for each profile (same width,
# heads, optimizer and departures from the paper, listed there). The `fast`
# sweep trains it on **5,000 training images for 10 epochs** per scale
# (about 390 steps; four scales must fit CI), one seed, so its scale-1 run is
# not chapter 04's; the `reference` sweep (stored in `results/`) uses the
# full split and 20 epochs with the paper's 8 heads per layer, at seeds 0, 1
# and 2 (the setting `sweep_seeds`; the page uses whichever of them are
# stored, and says how many). The paper does not list its scale values or
# its seeds; the profiles sweep 1, 0.1, 0.03 and 0.01.

# %% tags=["parameters"] mystnb={"code_prompt_show": "Parameters", "code_prompt_hide": "Hide parameters"}
profile: str = ""  # "fast" (CPU, minutes), "reference" or "paper"; empty: $RANKBOOK_PROFILE, else "fast"
dataset: str = ""  # "cifar10", "cifar100" or "imagenet"; empty: the profile's first data set (CIFAR-10)
init_scales: list = None  # override the swept init scales, e.g. [1.0, 0.1, 0.01]
scale_norms: bool = None  # override: also scale the LayerNorm gains (the reading that collapses)

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
from IPython.display import display

from rankbook.analysis import claims, scales
from rankbook.book.glue import glue
from rankbook.book.source import show_source
from rankbook.figures import scales as scale_figures
from rankbook.figures import spectra, stable_rank
from rankbook.figures.tables import Table
from rankbook.settings import profiles
from rankbook.settings.vit import PROFILES
from rankbook.training import vit

CHAPTER = "05_vit_init_scale"
profile = profiles.resolve(profile)
settings = profiles.select(PROFILES, profile, init_scales=init_scales, scale_norms=scale_norms)
dataset = dataset or settings.datasets[0]
seeds = scales.sweep_seeds(settings)
layers = [x for x in (0, 2, 4) if x < settings.depth]  # the layers of the paper's Fig. 4
print(f"profile {profile}, {dataset}: init scales {settings.init_scales}, "
      f"scale_norms={settings.scale_norms}, seeds {seeds}")

# %% [markdown]
# ## One run per scale and seed

# %%
runs = {s: [vit.run(settings, dataset, s, seed, sweep=True) for seed in seeds] for s in settings.init_scales}
stored = {tier: scales.stored_sweep(vit.run, PROFILES, tier, dataset) for tier in ("reference", "paper")
          if tier != profile}  # {tier: {scale: [result per stored seed]}}, empty where not stored

# %% tags=["hide-input"]
sweeps = {profile: runs, **{t: sw for t, sw in stored.items() if sw}}
analyses = {tier: scales.analyse(sw, layers) for tier, sw in sweeps.items()}
for tier, a in analyses.items():
    print(f"{tier}: {scales.seeds_text(a['claim']['seeds'])}")
print("; ".join(f"{t}: not stored for this code/data" for t, s in stored.items() if not s) or "all stored")
glue("ch05_profile", profile, display=False)
glue_numbers = {"ch05": scales.tier_numbers(analyses, profile, sweeps),
                "ch05_ref": scales.tier_numbers(analyses, "reference", sweeps)}
for prefix, numbers in glue_numbers.items():
    for key, value in numbers.items():
        glue(f"{prefix}_{key}", value, display=False)

# %% [markdown]
# ## Singular values of Δ through training, per scale
#
# The paper's Fig. 3 shows every singular value of $\Delta W_K W_Q^\top$ and
# $\Delta W_V W_O^\top$ of a random head of layer 2. Here each is divided by
# the largest, $\sigma_k/\sigma_1$ for $k = 2, \dots, 6$, on a log axis: a
# singular value not yet learned sits orders of magnitude below $\sigma_1$,
# and its rise is a new direction being learned. The head is drawn at random
# once per sweep (seed 0) and is the same in every panel of a figure; for a
# scale with several seeds it is that head of the first seed's run.

# %% tags=["hide-input"]
layer, head = spectra.random_heads(runs[settings.init_scales[0]][0], [min(1, settings.depth - 1)])[0]
glue("ch05_head", f"layer {layer + 1}, head {head + 1}", display=False)
glue("ch05_fig_evolution", spectra.delta_evolution_per_scale(
    runs, profile, layer, head, status=analyses[profile]["status"]), display=False)
reference = sweeps.get("reference")
ref_head = spectra.random_heads(reference[max(reference)][0], [layer])[0][1] if reference else head
glue("ch05_ref_head", f"layer {layer + 1}, head {ref_head + 1}", display=False)
glue("ch05_fig_evolution_reference", spectra.delta_evolution_per_scale(
    reference, "reference", layer, ref_head, status=analyses["reference"]["status"]) if reference
    else stable_rank.not_stored("reference", f"the init-scale sweep on {dataset}"), display=False)

# %% [markdown]
# ```{glue:figure} ch05_fig_evolution_reference
# :name: "fig-ch05-evolution-reference"
#
# $\sigma_k/\sigma_1$ ($k = 2, \dots, 6$) of $\Delta W_K W_Q^\top$ (left) and
# $\Delta W_V W_O^\top$ (right) of one head ({glue:text}`ch05_ref_head`) through
# training, one row per init scale, colours from $\sigma_2/\sigma_1$ (dark) to
# $\sigma_6/\sigma_1$ (light); dotted: 0.01. The stored `reference` sweep
# (first stored seed). The analogue of the paper's Fig. 3 (v1) at the
# reference profile.
# ```
#
# Over all heads of that layer (and every stored seed), the median
# $\sigma_2/\sigma_1$ of $\Delta W_K W_Q^\top$ in the reference sweep:
# {glue:text}`ch05_ref_plateau_qk`. Of $\Delta W_V W_O^\top$:
# {glue:text}`ch05_ref_plateau_vo`. Over a stretch where the median stays
# below 0.01 the heads have learned one direction only; the steps where
# $\sigma_2/\sigma_1$, then $\sigma_3/\sigma_1$, come back above 0.01 are
# where the second and third directions are learned, the paper's picture of
# incremental learning. A scale that never falls below 0.01 shows no such
# stretch. The claim "more pronounced at smaller scales" is checked on the
# scales that trained without collapse or partial alignment: for both
# products the stretch (in tracked steps) must not shrink as the scale falls,
# must be longer at the smallest scale than at the default, and $\sigma_3$
# must come back at a later tracked step than $\sigma_2$; "shown" also needs
# 3 seeds per scale. Reference sweep: **{glue:text}`ch05_ref_fig3_verdict`**
# (short of shown: {glue:text}`ch05_ref_fig3_reasons`).
#
# ```{glue:figure} ch05_fig_evolution
# :name: "fig-ch05-evolution"
#
# As {numref}`fig-ch05-evolution-reference`, for this page's live sweep
# ({glue:text}`ch05_profile` profile; {glue:text}`ch05_head`); a scale whose heads collapsed onto one
# direction, are partly aligned or did not train says so in its titles (see
# the diagnostics below). The analogue of the paper's Fig. 3 (v1) at the
# {glue:text}`ch05_profile` profile.
# ```
#
# In this sweep, median $\sigma_2/\sigma_1$ of $\Delta W_K W_Q^\top$ over the
# heads of that layer: {glue:text}`ch05_plateau_qk`; verdict by the same
# rule: **{glue:text}`ch05_fig3_verdict`** ({glue:text}`ch05_fig3_reasons`).
# Scales left out, with why: {glue:text}`ch05_left_out`. A collapsed scale's
# low $\sigma_2/\sigma_1$ is every head learning the same single direction,
# not incremental learning.
#
# ## Diagnostics per scale
#
# Averaged over the heads of layers 1, 3 and 5 (the layers of Fig. 4) and the
# stored seeds. "did not train": test accuracy below 1.5× chance;
# "collapsed": head alignment of at least 0.9; "partly aligned": at least
# 0.5; the column "random |cos|" is what independent random directions give
# at the run's own width ({glue:text}`ch05_random_alignment` here,
# {glue:text}`ch05_ref_random_alignment` in the reference sweep). At small
# scales $\|\Delta\|_F/\|W(0)\|_F$ is large by construction: the trained
# product is almost all perturbation, which is the small-initialization
# regime of the theory, not a fault.

# %% tags=["hide-input"]
show_source(scales.status)

# %%
for tier, a in analyses.items():
    display(Table(a["rows"], digits=3, title=f"{dataset}: Δ(W_K W_Qᵀ) after training, per init scale, "
                  f"{tier} sweep" + ("" if tier == profile else " (stored)")))

# %% [markdown]
# ## The test per layer
#
# Per layer, the default init (scale 1) is compared with each smaller scale
# that trained without collapse or partial alignment: a one-sided
# Mann-Whitney test over the final stable ranks of the heads of every stored
# seed (heads × seeds pooled), significant below 0.05 divided by the number
# of tests (Bonferroni; {glue:text}`ch05_ref_level` in the reference sweep).
# Heads of one run are not independent repeats of the experiment; the seeds
# are, so beside it an exact permutation test over the seeds' head means
# gives what the seeds alone can show, with its smallest possible p
# ("its floor": $1/\binom{n+m}{n}$ for $n$ and $m$ seeds). The ordering is
# checked among the same scales: the mean must not rise as the scale falls.
# The verdict (shown / partly shown / not shown at this scale /
# contradicted / cannot be shown by this tier's runs, the book's vocabulary
# defined on {doc}`08_results`) follows the rule in the folded source below.

# %% tags=["hide-input"]
for tier, a in analyses.items():
    display(Table(scales.tests_table(a["tests"]), digits=2, title=f"{tier} sweep: default init against "
                  f"each smaller trained scale, per layer") if a["tests"] else f"{tier}: no test "
            f"({'; '.join(a['claim']['reasons'])})")
show_source(scales.lower_rank_claim)

# %% tags=["hide-input"]
glue("ch05_fig_per_scale", scale_figures.per_scale(runs, profile, layers, status=analyses[profile]["status"]),
     display=False)
glue("ch05_fig_per_scale_reference", scale_figures.per_scale(
    reference, "reference", layers, status=analyses["reference"]["status"]) if reference
    else stable_rank.not_stored("reference", f"the init-scale sweep on {dataset}"), display=False)

# %% [markdown]
# ```{glue:figure} ch05_fig_per_scale_reference
# :name: "fig-ch05-per-scale-reference"
#
# Stable rank of $\Delta W_K W_Q^\top$ after training per init scale at
# layers 1, 3, 5 in the stored `reference` sweep: bars are the mean ± std
# over the heads of every stored seed, black dots each seed's head mean; the
# seeds per scale are under each tick. The stable rank of a random matrix of
# $\Delta$'s shape and rank is stated in the legend (drawn only when it fits
# the bars' range), so the bars keep the height of the axes. The analogue of
# the paper's Fig. 4 (v1) at the reference profile.
# ```
#
# ```{glue:figure} ch05_fig_per_scale
# :name: "fig-ch05-per-scale"
#
# As {numref}`fig-ch05-per-scale-reference`, for this page's live sweep;
# hatched bars and the label under a scale mark runs that did not train,
# collapsed or are partly aligned (see the diagnostics table), which the
# claim leaves out. The analogue of the paper's Fig. 4 (v1) at the
# {glue:text}`ch05_profile` profile.
# ```
#
# ```{admonition} Paper
# Smaller initialization scales lead to lower-rank attention heads (Fig. 4),
# and incremental learning is more pronounced at smaller scales (Fig. 3).
# ```
#
# ````{admonition} This run
# **Reference sweep** (stored; {glue:text}`ch05_ref_seeds`). Stable rank of
# $\Delta W_K W_Q^\top$ (layers 1, 3, 5) per scale: {glue:text}`ch05_ref_ranks`.
# Test accuracy: {glue:text}`ch05_ref_accuracy`; head alignment:
# {glue:text}`ch05_ref_alignment` (random directions:
# {glue:text}`ch05_ref_random_alignment`). Scales that count:
# {glue:text}`ch05_ref_trained`; left out: {glue:text}`ch05_ref_left_out`.
# Default init above each smaller scale, one-sided p over heads × seeds:
# {glue:text}`ch05_ref_tests` (level {glue:text}`ch05_ref_level`). Ordering
# per layer: {glue:text}`ch05_ref_order`. Verdict:
# **{glue:text}`ch05_ref_verdict`**; short of "shown":
# {glue:text}`ch05_ref_reasons`.
#
# **Live sweep** ({glue:text}`ch05_profile` profile;
# {glue:text}`ch05_seeds`). Stable rank: {glue:text}`ch05_ranks`. Test
# accuracy: {glue:text}`ch05_accuracy`; head alignment:
# {glue:text}`ch05_alignment`; $\|\Delta\|_F/\|W(0)\|_F$:
# {glue:text}`ch05_relative`. Scales that count: {glue:text}`ch05_trained`;
# left out: {glue:text}`ch05_left_out`. Verdict:
# **{glue:text}`ch05_verdict`**; short of "shown": {glue:text}`ch05_reasons`.
# ````

# %% tags=["hide-input"]
rows = scales.scale_claims(analyses, CHAPTER) + scales.incremental_claims(sweeps, analyses, CHAPTER, layer)
written = claims.record(profile, CHAPTER, rows)
