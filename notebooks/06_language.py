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
# # Language models: is the perturbation low-rank there too?
#
# The paper's experiments on incremental rank growth are on vision
# transformers; its claim is about transformers in general. This chapter,
# beyond the paper, asks the same questions of a GPT-2-style causal language
# model: how does the stable rank $\|\Delta\|_F^2/\|\Delta\|_2^2$ of
# $\Delta W_K W_Q^\top$ and $\Delta W_V W_O^\top$ evolve through training, and
# how do the spectra of $\Delta$ compare with those of the products at
# initialization? The measurements, the trend verdict and the first-step
# transient are those of {doc}`04_vit_spectra`.
#
# The model (`rankbook.models.gpt`) is GPT-2 (pre-norm, learned positions,
# GELU MLP, tied embeddings, GPT-2's initialization) with each head's
# $W_Q, W_K, W_V, W_O$ held as explicit tensors and no Q/K/V biases, so the
# attention logits are exactly $X W_Q W_K^\top X^\top$.
#
# **Settings** (the paper trains no language model, so every choice here is
# ours):
#
# * `fast` (run live): the offline copy of WikiText-2 has no train split, so
#   the model **trains on the WikiText-2 validation split and is evaluated on
#   its test split**, with **byte-level tokens** (vocabulary 256); 4 layers of
#   4 heads of dimension 16 (width 64), context 128, batch 16, Adam at lr
#   3e-3 with a 100-step warmup, **1,500 steps**. Shorter runs stop at a
#   bigram-like loss where attention hardly matters (the sizing runs are
#   recorded in `rankbook.settings.lm`); at 1,500 steps it matters, as
#   measured below.
# * `reference` (stored): the same data and tokens, 8 heads of 16 per layer
#   (width 128), 6,000 steps, lr 2e-3.
# * `paper`: GPT-2 small (12 layers, 12 heads, width 768, context 1024) on
#   WikiText-103 with GPT-2's BPE, for a GPU.

# %% tags=["parameters"]
profile: str = ""  # "fast" (CPU, minutes), "reference" or "paper"; empty: $RANKBOOK_PROFILE, else "fast"
steps: int = None  # override the profile's training steps
lr: float = None  # override Adam's base learning rate
tokenizer: str = ""  # "bytes" or "gpt2" (GPT-2 BPE, else bytes); empty: the profile's

# %% tags=["remove-cell", "colab-setup"]
# Installs rankbook where it is missing (Colab, a downloaded notebook); does nothing in the repository.
# Written by `python -m rankbook.book.colab --write` from _config.yml's repository.url: do not edit by hand.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("rankbook") is None:
    _target = os.environ.get("RANKBOOK_INSTALL") or "rankbook @ git+https://github.com/rankbook/rankbook@main"
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", _target])

# %% tags=["hide-input"]
from rankbook.analysis import claims, report, transient, truncation
from rankbook.book.glue import glue
from rankbook.book.source import show_source
from rankbook.figures import spectra, stable_rank
from rankbook.settings import profiles
from rankbook.settings.lm import PROFILES
from rankbook.training import lm

CHAPTER = "06_language"
profile = profiles.resolve(profile)
settings = profiles.select(PROFILES, profile, steps=steps, lr=lr, tokenizer=tokenizer or None)
layers = [layer - 1 for layer in settings.layers_shown]
print(f"profile {profile}: {settings}")

# %% [markdown]
# ## Train, or reuse a stored run
#
# A run is keyed by its full configuration; a finished run with the same key
# is loaded instead of trained again. Chapter {doc}`07_lora` reuses this run.

# %%
runs = [lm.run(settings, seed) for seed in settings.seeds]
stored = report.stored(lm.run, PROFILES, profile)
run = runs[0]

# %% tags=["hide-input"]
print(report.describe_runs({profile: runs, **stored}, spectra.describe, "eval_loss"))
print("stored runs of the other tiers:", report.stored_note(stored))
glue("ch06_stored", report.stored_note(stored), display=False)

# %% [markdown]
# ## Does the model use its attention?
#
# A model that has only learned byte frequencies and bigrams needs little
# attention, and the question of how its attention weights change would say
# little. So first: the trained model with every attention weight reset to
# its initialization (the rest trained), against the trained model and the
# model at initialization.

# %%
ablation = truncation.attention_ablation(lm.task(settings, settings.seeds[0]), run, "eval_loss")
report.glue_all("ch06_ablation", report.ablation_numbers(ablation))

# %% [markdown]
# ```{admonition} This run: attention matters
# The eval loss falls from {glue:text}`ch06_ablation_model_at_init` nats per
# token at initialization to {glue:text}`ch06_ablation_trained`. With the
# attention weights reset to their initial values it is
# {glue:text}`ch06_ablation_attention_at_init`: the attention updates are
# worth {glue:text}`ch06_ablation_worth` nats, {glue:text}`ch06_ablation_share`
# of the whole drop.
# ```
#
# ## The stable rank through training
#
# As in chapter 04, the first step is Adam's sign-like step; measured here on
# this model, from the same initialization and first batch.

# %%
first_task = lm.task(settings, settings.seeds[0])
measured = transient.summary(transient.first_step(first_task, transient.first_lr(run)))
report.glue_all("ch06_transient", report.transient_numbers(measured, run))

# %% tags=["hide-input"]
report.glue_all("ch06_trend", report.trend_numbers(runs))
glue("ch06_fig_rank", stable_rank.through_training(runs, profile, layers, metric="eval_loss"), display=False)

# %% [markdown]
# ```{glue:figure} ch06_fig_rank
# :name: "fig-ch06-rank"
#
# Stable rank of $\Delta W_K W_Q^\top$ (blue) and $\Delta W_V W_O^\top$ (red)
# per layer shown, mean ± std over its heads, and the eval loss (last panel).
# Gray band: the warmup (first-step transient); rings: the post-transient
# minimum; dotted: the products at initialization; dashed: a random matrix of
# $\Delta$'s shape and rank. Each panel's title gives the layer's verdicts.
# The language-model analogue of the paper's Fig. 12.
# ```
#
# ```{admonition} Paper (ViTs)
# The stable rank of $\Delta$ stays far below that of a generic matrix and
# increases gradually through training (Fig. 12).
# ```
#
# ```{admonition} This run
# One Adam step gives $\Delta W_K W_Q^\top$ a stable rank of
# {glue:text}`ch06_transient_qk_adam` where a gradient step of the same size
# gives {glue:text}`ch06_transient_qk_gradient` (sign step
# {glue:text}`ch06_transient_qk_sign`; for $\Delta W_V W_O^\top$
# {glue:text}`ch06_transient_vo_adam` vs {glue:text}`ch06_transient_vo_gradient`).
# After that transient, the mean stable rank of $\Delta W_K W_Q^\top$ falls
# from {glue:text}`ch06_trend_qk_step1` (step 1) to
# {glue:text}`ch06_trend_qk_min` (step {glue:text}`ch06_trend_qk_min_step`) and
# ends at {glue:text}`ch06_trend_qk_end` (step {glue:text}`ch06_trend_end_step`),
# **rising in {glue:text}`ch06_trend_qk_rises`** ({glue:text}`ch06_trend_qk_overall`);
# $\Delta W_V W_O^\top$: {glue:text}`ch06_trend_vo_step1` →
# {glue:text}`ch06_trend_vo_min` → {glue:text}`ch06_trend_vo_end`, rising in
# {glue:text}`ch06_trend_vo_rises` ({glue:text}`ch06_trend_vo_overall`).
# ```

# %% tags=["hide-input"]
stable_rank.trend_table(runs)

# %% tags=["hide-input"]
stable_rank.stable_rank_table(runs)

# %% [markdown]
# ## Normalized spectra: initialization against Δ
#
# One head drawn at random in each layer shown.

# %% tags=["hide-input"]
heads = spectra.random_heads(run, layers)
glue("ch06_fig_spectra", spectra.spectra_over_training(run, profile, heads), display=False)
report.glue_all("ch06", report.spectrum_numbers(run))

# %% [markdown]
# ```{glue:figure} ch06_fig_spectra
# :name: "fig-ch06-spectra"
#
# Normalized singular values of $W_K W_Q^\top$ and $W_V W_O^\top$ at
# initialization (red) and of $\Delta$ at log-spaced steps (greens), one head
# per layer shown; dashed: a random matrix of $\Delta$'s shape and rank. The
# language-model analogue of the paper's Figs. 1a and 11.
# ```
#
# ```{admonition} This run
# Over all {glue:text}`ch06_heads` heads at step {glue:text}`ch06_final_step`,
# the top singular value carries {glue:text}`ch06_share_delta_qk` of
# $\|\Delta W_K W_Q^\top\|_F^2$ and {glue:text}`ch06_share_delta_vo` of
# $\|\Delta W_V W_O^\top\|_F^2$, against {glue:text}`ch06_share_init_qk` and
# {glue:text}`ch06_share_init_vo` for the products at initialization.
# ```
#
# ## The stored reference run
#
# The stored runs of the other tiers, trained with the code and data of this
# page ({glue:text}`ch06_stored`).

# %% tags=["hide-input"]
for tier in ("reference", "paper"):
    fig = stable_rank.stored_figure(stored, tier, "the language model")
    glue(f"ch06_fig_rank_{tier}", fig, display=False)
rows = report.chapter_claims(runs, profile, stored, CHAPTER, "Fig. 12 (ViT; LM here)")
written = claims.record(profile, CHAPTER, rows + [report.ablation_claim(ablation, profile, CHAPTER)])

# %% [markdown]
# ```{glue:figure} ch06_fig_rank_reference
# :name: "fig-ch06-rank-reference"
#
# As {numref}`fig-ch06-rank`, for the stored `reference` run (8 heads of 16
# per layer, width 128, 6,000 steps), when stored.
# ```
#
# The code behind the ablation:

# %% tags=["hide-input"]
show_source(truncation.attention_ablation)
