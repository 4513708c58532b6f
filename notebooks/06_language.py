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
# The experiments on incremental rank growth in the paper's arXiv v1 (the
# text this book follows) are on vision transformers; its claim is about
# transformers in general. This chapter,
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
# **Data.** WikiText-2 (Merity et al., 2016), version 1 as tokenized by its
# authors: rare words are already `<unk>` and numbers are split as `@,@`.
# These are the files of the word-level benchmarks, not "raw" text. Every
# tier **trains on the train split** (2,088,628 words), **selects on the
# validation split** (the tracked eval loss) **and reports on the test
# split**. The test perplexities, the attention ablation and the rank sweep
# of {doc}`07_lora` are computed from the final weights at the end of
# training and stored with the run, so a stored tier's numbers need no
# weights.
#
# **Settings** (arXiv v1 trains no language model, so every choice here is
# ours; `rankbook.settings.lm` gives the reasons):
#
# * `fast` (run live): **byte tokens** (vocabulary 256); 4 layers of 4 heads
#   of dimension 16 (width 64), context 128, batch 16, Adam at lr
#   $3\cdot 10^{-3}$ with a 100-step warmup, 1,500 steps. We use bytes and
#   not GPT-2's BPE because, on CI's 2 CPU cores, the 50,257-way read-out
#   dominates a model this small. Measured side by side on the same machine,
#   one training step took 0.29 s with bytes and 7.7 s with the BPE (27×),
#   which would make this page's three runs last hours.
# * `reference` (stored): a GPT-2-shaped model with **GPT-2's BPE** (50,257
#   tokens): 6 layers of 8 heads of 16 (width 128), context 128, batch 8,
#   6,000 steps (6.1 M tokens, 300 warmup), lr $2\cdot 10^{-3}$. It is
#   trained in the background and stored; its training time is in the
#   last section.
# * `paper`: GPT-2 small (12 layers, 12 heads of 64, width 768, context
#   1024) with GPT-2's BPE on the same train split, with bf16 and
#   `torch.compile`, 1,500 steps of 32 windows, for a GPU (about five
#   minutes of an H200). WikiText-103 is not available offline, so even this
#   tier trains on WikiText-2, which GPT-2 small overfits.
#
# A profile that asks for the BPE stops before any work if GPT-2's
# `vocab.json` and `merges.txt` cannot be loaded. It never falls back to
# bytes.

# %% tags=["parameters"] mystnb={"code_prompt_show": "Parameters", "code_prompt_hide": "Hide parameters"}
profile: str = ""  # "fast" (CPU, minutes), "reference" or "paper"; empty: $RANKBOOK_PROFILE, else "fast"
steps: int = None  # override the profile's training steps
lr: float = None  # override Adam's base learning rate
tokenizer: str = ""  # "bytes" or "gpt2" (GPT-2's BPE; an error if it cannot load); empty: the profile's

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
from rankbook.analysis import claims, report
from rankbook.book.glue import glue
from rankbook.book.source import show_source
from rankbook.figures import spectra, stable_rank
from rankbook.figures.tables import Table
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
# A run is keyed by its full configuration, including the data's
# fingerprint. A finished run with the same key is loaded instead of trained
# again. Chapter {doc}`07_lora` reuses this run.

# %%
runs = [lm.run(settings, seed) for seed in settings.seeds]
stored = report.stored(lm.run, PROFILES, profile)
run = runs[0]

# %% tags=["hide-input"]
by_tier = {profile: runs, **stored}
print(report.describe_runs(by_tier, spectra.describe, "eval_loss"))
print("stored runs of the other tiers:", report.stored_note(stored))
glue("ch06_stored", report.stored_note(stored), display=False)
glue("ch06_cost", report.cost_note(stored), display=False)
stored_paper = bool(stored.get("paper")) or profile == "paper"
for name, tier in (("live", profile), ("reference", "reference"), ("paper", "paper")):
    for key, figure in (("spectra", "Figs. 1a and 11"), ("rank", "Fig. 12")):
        glue(f"ch06_cap_{key}_{name}", report.caption_phrase(tier, figure, stored_paper), display=False)
for tier in PROFILES:
    found = by_tier.get(tier) or []
    report.glue_all(f"ch06_{tier}", lm.tier_numbers(tier, found[0] if found else None))
report.glue_all("ch06_published", {k: str(v) for k, v in lm.PUBLISHED.items()})
# each stored tier's verdicts, shapes and warmup diagnostic ("n/a" where a tier is not stored)
for tier in ("reference", "paper"):
    report.glue_all(f"ch06_{tier}_trend", report.stored_trend_numbers(by_tier.get(tier), "eval_loss"))

# %% [markdown]
# ## Perplexity, and does the model use its attention?
#
# A model that has only learned token frequencies and bigrams needs little
# attention, and the question of how its attention weights change would then
# say little. So the table gives, for each tier, the loss on the whole test
# split as perplexity per token and per word, and the **attention
# ablation**: the trained model with every attention weight reset to its
# initialization (the rest trained). The ablation's share is the part of the
# whole drop of the test loss from initialization that resetting attention
# undoes, measured on the first test windows.
#
# Per word means $\exp(\text{total nats} / \text{words})$, with WikiText's
# word count (245,569 test words, one end-of-line token per line), so byte
# and BPE models compare with word-level numbers. The published figure we
# compare with is {glue:text}`ch06_published_model`: word-level test
# perplexity {glue:text}`ch06_published_test_ppl_word` (validation
# {glue:text}`ch06_published_valid_ppl_word`), on the same tokenized v1
# files. Two caveats. That model predicts the 33,278-type word vocabulary,
# in which `<unk>` is one easy token, while a byte or BPE model must spell
# `<unk>` out (three BPE tokens, five bytes), which costs it. And it is a
# tuned, regularized LSTM of 33 M parameters, while ours are small and
# briefly trained.

# %% tags=["hide-input"]
Table(lm.tier_rows({t: by_tier[t] for t in profiles.PROFILE_NAMES if t in by_tier}, PROFILES), digits=3,
      title="WikiText-2 test split, per tier, from each run's final weights")

# %%
ablation = lm.derived(run)["ablation"]  # computed from the final weights at the end of training
report.glue_all("ch06_ablation", report.ablation_numbers(ablation))

# %% [markdown]
# ```{admonition} This run
# The test loss falls from {glue:text}`ch06_ablation_model_at_init` nats per
# token at initialization to {glue:text}`ch06_ablation_trained`. With the
# attention weights reset to their initial values it is
# {glue:text}`ch06_ablation_attention_at_init`: the attention updates are
# worth {glue:text}`ch06_ablation_worth` nats, {glue:text}`ch06_ablation_share`
# of the whole drop.
# ```
#
# ```{admonition} The stored tiers
# Reference (GPT-2's BPE): {glue:text}`ch06_reference_status`. Perplexity
# {glue:text}`ch06_reference_ppl_token` per token and
# {glue:text}`ch06_reference_ppl_word` per word; attention worth
# {glue:text}`ch06_reference_share` of the drop.
# Paper (GPT-2 small): {glue:text}`ch06_paper_status`. Perplexity per word
# {glue:text}`ch06_paper_ppl_word`; attention share {glue:text}`ch06_paper_share`.
# ```
#
# ## The stable rank through training
#
# As in chapter 04, the first step is Adam's sign-like step. It is measured
# here on this model, from the same initialization and first batch, at the
# end of training (stored with the run).

# %%
measured = lm.derived(run)["transient"]  # rankbook.analysis.transient.first_step, averaged over heads
report.glue_all("ch06_transient", report.transient_numbers(measured, run))

# %% tags=["hide-input"]
report.glue_all("ch06_trend", report.trend_numbers(runs))
glue("ch06_fig_rank", stable_rank.through_training(runs, profile, layers, metric="eval_loss"), display=False)

# %% [markdown]
# ```{glue:figure} ch06_fig_rank
# :name: "fig-ch06-rank"
#
# Stable rank of $\Delta W_K W_Q^\top$ (blue) and $\Delta W_V W_O^\top$ (red)
# per layer shown, mean ± std over its heads, and the validation loss (last
# panel). Gray band: the first-step transient, left out of the verdict;
# thick segments: the window's first and last quarters, which the verdict
# compares. The stable ranks of the products at initialization and of a
# random matrix of $\Delta$'s shape and rank are stated in the legend. Each
# panel's title gives the layer's verdicts. {glue:text}`ch06_cap_rank_live`.
# ```
#
# ```{admonition} Paper (ViTs)
# The stable rank of $\Delta$ stays far below that of a generic matrix and
# increases gradually through training (the paper's Fig. 12 (v1)).
# ```
#
# ```{admonition} This run
# One Adam step gives $\Delta W_K W_Q^\top$ a stable rank of
# {glue:text}`ch06_transient_qk_adam` where a gradient step of the same size
# gives {glue:text}`ch06_transient_qk_gradient` (sign step
# {glue:text}`ch06_transient_qk_sign`; for $\Delta W_V W_O^\top$
# {glue:text}`ch06_transient_vo_adam` against
# {glue:text}`ch06_transient_vo_gradient`). Inside the verdict's window
# (steps {glue:text}`ch06_trend_window_start` on), the mean stable rank of
# $\Delta W_K W_Q^\top$ starts at {glue:text}`ch06_trend_qk_start`, is lowest
# at {glue:text}`ch06_trend_qk_min` (step {glue:text}`ch06_trend_qk_min_step`)
# and ends at {glue:text}`ch06_trend_qk_end` (step
# {glue:text}`ch06_trend_end_step`), **rising in
# {glue:text}`ch06_trend_qk_rises`** ({glue:text}`ch06_trend_qk_overall`).
# For $\Delta W_V W_O^\top$ it goes {glue:text}`ch06_trend_vo_start` →
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
# per layer shown; dashed: a random matrix of $\Delta$'s shape and rank.
# {glue:text}`ch06_cap_spectra_live`.
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
# ## The stored runs of the other tiers
#
# The stored runs of the other tiers, trained with the code and data of this
# page ({glue:text}`ch06_stored`). Training times, from the runs' manifests:
# {glue:text}`ch06_cost`. A tier that is not stored yet is made by
# `python -m rankbook.training --profile reference lm --export results`
# (resumable; see the table above for the full command).

# %% tags=["hide-input"]
from IPython.display import display

for tier in ("reference", "paper"):
    fig = stable_rank.stored_figure(stored, tier, "the language model", metric="eval_loss")
    glue(f"ch06_fig_rank_{tier}", fig, display=False)
    if stored.get(tier):
        display(stable_rank.trend_table(stored[tier]))
rows = report.chapter_claims(runs, profile, stored, CHAPTER, "Fig. 12 (ViT; LM here)")
rows += [report.ablation_claim(lm.derived(rs[0])["ablation"], tier, CHAPTER)
         for tier, rs in by_tier.items() if rs]
written = claims.record(profile, CHAPTER, rows)

# %% [markdown]
# ```{glue:figure} ch06_fig_rank_reference
# :name: "fig-ch06-rank-reference"
#
# As {numref}`fig-ch06-rank`, for the stored `reference` run (GPT-2's BPE,
# 6 layers of 8 heads of 16, width 128, 6,000 steps), when stored.
# {glue:text}`ch06_cap_rank_reference`.
# ```
#
# ```{admonition} The reference tier: verdicts, shapes and what the window opens on
# Under the rule fixed in advance (the window opens at step
# {glue:text}`ch06_reference_trend_ctx_window_step`), $\Delta W_K W_Q^\top$ is
# **{glue:text}`ch06_reference_trend_qk_verdict`**: it rises in
# {glue:text}`ch06_reference_trend_qk_rises` and falls in
# {glue:text}`ch06_reference_trend_qk_falls`. Its mean over heads and layers
# is {glue:text}`ch06_reference_trend_qk_start` over the window's first
# quarter, lowest at {glue:text}`ch06_reference_trend_qk_min` (step
# {glue:text}`ch06_reference_trend_qk_min_step`) and
# {glue:text}`ch06_reference_trend_qk_end` at step
# {glue:text}`ch06_reference_trend_end_step`
# ({glue:text}`ch06_reference_trend_qk_shapes`). $\Delta W_V W_O^\top$ is
# **{glue:text}`ch06_reference_trend_vo_verdict`**: it rises in
# {glue:text}`ch06_reference_trend_vo_rises` and falls in
# {glue:text}`ch06_reference_trend_vo_falls`
# ({glue:text}`ch06_reference_trend_vo_start` →
# {glue:text}`ch06_reference_trend_vo_end`;
# {glue:text}`ch06_reference_trend_vo_shapes`).
#
# *Diagnostic.* The window opens when the learning rate is
# {glue:text}`ch06_reference_trend_ctx_lr_share` of its peak (the warmup
# lasts {glue:text}`ch06_reference_trend_ctx_warmup_end` steps) and the
# validation loss is still {glue:text}`ch06_reference_trend_ctx_loss_start`
# nats per token; it is {glue:text}`ch06_reference_trend_ctx_loss_warmup` at
# step {glue:text}`ch06_reference_trend_ctx_warmup_step` and
# {glue:text}`ch06_reference_trend_ctx_loss_end` at the end. So the window's
# first quarter measures a Δ made of many tiny warmup steps, taken before
# the model has learned even the token frequencies (uniform guessing over
# GPT-2's 50,257 tokens costs 10.82 nats). Its stable rank is high, the first real learning after it is
# lower-rank, and where the shapes say "climbs back" the stable rank grows
# again from there. We do not move the window after seeing this: the
# verdict stands as computed, and at this scale the language model does
# not show the ViTs' gradual rise of $\Delta W_K W_Q^\top$ from the start
# of training. Whether a later window would show it is a question for a
# rule fixed before a new run, not for this one.
# ```
#
# ```{glue:figure} ch06_fig_rank_paper
# :name: "fig-ch06-rank-paper"
#
# As {numref}`fig-ch06-rank`, for the stored `paper` run (GPT-2 small), when
# stored. {glue:text}`ch06_cap_rank_paper`.
# ```
#
# The code that computes the stored numbers from the final weights:

# %% tags=["hide-input"]
show_source(lm.LMTask.final_numbers)
