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
# # The LoRA question: how low a rank does the trained update need?
#
# The paper notes a link to LoRA, which fine-tunes a model by training a
# low-rank perturbation of its weights, and leaves open whether the
# incremental, low-rank dynamics it finds explain why LoRA works (section
# 1.1). This chapter, beyond the paper, asks a measurable version of that
# question of the models trained in {doc}`04_vit_spectra` (ViT on CIFAR-10)
# and {doc}`06_language` (language model on WikiText), reused with their
# settings and departures from the paper:
#
# > replace every attention weight's update $\Delta = W - W_0$ by its best
# > rank-$r$ approximation, $W_0 + [\Delta]_r$, keep everything else trained,
# > and measure test accuracy (ViT) or loss (LM) against $r$.
#
# The unit is LoRA's: the fused per-layer matrix of each of $W_Q, W_K, W_V,
# W_O$ ($d_\text{model} \times \text{heads}\cdot d_\text{head}$), whose rank-$r$
# updates are exactly what a rank-$r$ LoRA adapter on that layer can express.
# The null replaces $[\Delta]_r$ by a random rank-$r$ matrix of the same
# Frobenius norm. Rank 0 is the attention at initialization (the rest
# trained: chapter 06's ablation); the marked ranks are the smallest swept $r$
# that recover 95% and 99% of the gap between rank 0 and the trained model
# (`rankbook.analysis.truncation`).

# %% tags=["parameters"] mystnb={"code_prompt_show": "Parameters", "code_prompt_hide": "Hide parameters"}
profile: str = ""  # "fast" (CPU, minutes), "reference" or "paper"; empty: $RANKBOOK_PROFILE, else "fast"
null_seeds: int = 0  # random rank-r updates drawn per rank for the null; 0: the profile's
lora_ranks: str = ""  # comma-separated ranks of the LoRA adapters trained from init; empty: the profile's

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
from rankbook.analysis import claims, report, truncation
from rankbook.book.glue import glue
from rankbook.book.source import show_source
from rankbook.figures import lora as lora_figures
from rankbook.figures import stable_rank
from rankbook.figures.tables import Table
from rankbook.settings import lm as lm_settings_table
from rankbook.settings import profiles
from rankbook.settings import vit as vit_settings_table
from rankbook.training import lm, vit

CHAPTER = "07_lora"
profile = profiles.resolve(profile)
vit_settings = profiles.select(vit_settings_table.PROFILES, profile)
lm_settings = profiles.select(lm_settings_table.PROFILES, profile, lora_ranks=lora_ranks or None,
                              null_seeds=null_seeds or None)  # validated here, before any work
dataset, seed, lm_seed = vit_settings.datasets[0], vit_settings.seeds[0], lm_settings.seeds[0]
print(f"profile {profile}; ViT: {dataset}, seed {seed}; LM: {lm_settings.corpus}, seed {lm_seed}")

# %% [markdown]
# ## The trained models
#
# Both runs are chapter 04's and chapter 06's (trained here if missing). For
# the ViT, the final weights and the initial attention weights come from the
# run's final checkpoint. The language model's sweep was computed from its
# final weights at the end of training, on the first windows of WikiText-2's
# test split, and stored with the run (recomputed from the checkpoint only
# if `null_seeds` asks for another number of random draws); so the stored
# reference tier is shown below without any weights.

# %%
vit_task = vit.task(vit_settings, dataset, vit_settings.init_scale, seed)
lm_task = lm.task(lm_settings, lm_seed)
vit_run = vit.run(vit_settings, dataset, vit_settings.init_scale, seed)
lm_run = lm.run(lm_settings, lm_seed)
stored_lm = report.stored(lm.run, lm_settings_table.PROFILES, profile)  # other tiers, never trained here

# %% [markdown]
# ## Metric against the rank of every attention update

# %%
nulls = range(lm_settings.null_seeds)
sweeps = {"ViT": truncation.task_rank_sweep(vit_task, vit_run, "test_acc", null_seeds=nulls),
          "LM": lm.sweep(lm_task, lm_run, lm_settings.null_seeds)}

# %% tags=["hide-input"]
for name, result, ylabel in (("ViT", vit_run, "test accuracy"), ("LM", lm_run, "test loss (nats/token)")):
    glue(f"ch07_fig_{name.lower()}", lora_figures.rank_sweep(sweeps[name], result, profile, ylabel, name),
         display=False)
    report.glue_all(f"ch07_{name.lower()}", truncation.sweep_numbers(sweeps[name]))

# %% [markdown]
# ```{glue:figure} ch07_fig_vit
# :name: "fig-ch07-vit"
#
# Test accuracy of chapter 04's ViT with every attention update cut to its
# best rank-$r$ approximation (green) and with a random rank-$r$ update of the
# same norm (gray, mean ± std over draws); dotted and dash-dotted: the
# smallest swept ranks recovering 95% and 99% of the gap between rank 0
# (attention at initialization) and the trained model. Beyond the paper
# (its section 1.1 asks the question); {glue:text}`ch07_profile` profile.
# ```
#
# ```{glue:figure} ch07_fig_lm
# :name: "fig-ch07-lm"
#
# As {numref}`fig-ch07-vit`, for chapter 06's language model (loss on the
# first windows of WikiText-2's test split, lower is better);
# {glue:text}`ch07_profile` profile.
# ```
#
# ```{admonition} This run
# **ViT:** test accuracy {glue:text}`ch07_vit_rank0` with the attention at
# initialization, {glue:text}`ch07_vit_full` trained (full rank
# {glue:text}`ch07_vit_full_rank`); 95% of the gap is recovered at
# $r$ = {glue:text}`ch07_vit_r95` and 99% at $r$ = {glue:text}`ch07_vit_r99`
# ({glue:text}`ch07_vit_r95_share` and {glue:text}`ch07_vit_r99_share` of the
# full rank); a random update of rank {glue:text}`ch07_vit_r95` and the same
# norm gives {glue:text}`ch07_vit_null95`.
# **LM:** test loss {glue:text}`ch07_lm_rank0` with the attention at
# initialization, {glue:text}`ch07_lm_full` trained (full rank
# {glue:text}`ch07_lm_full_rank`); 95% recovered at $r$ =
# {glue:text}`ch07_lm_r95`, 99% at $r$ = {glue:text}`ch07_lm_r99`; random
# update of rank {glue:text}`ch07_lm_r95`: {glue:text}`ch07_lm_null95`.
# ```

# %% tags=["hide-input"]
lora_figures.sweep_table("ViT", sweeps["ViT"], "test accuracy")

# %% tags=["hide-input"]
lora_figures.sweep_table("LM", sweeps["LM"], "test loss")

# %% [markdown]
# ## A per-head stable rank near 1.5, a fused rank of tens: both hold
#
# Chapter 06 finds the stable rank of each head's $\Delta W_K W_Q^\top$
# small, often below 2, while the sweep above needs a rank of many tens of
# the fused per-layer update to recover 95% of the loss gain. The two
# measure different matrices, in different ways:
#
# 1. **Per head against fused.** The sweep cuts the fused update of
#    $W_Q$ of one layer, $[\Delta W_Q^1 \,\cdots\, \Delta W_Q^H]$
#    ($d_\text{model} \times H d_\text{head}$), all heads side by side, which
#    is what a LoRA adapter on that layer sees. If each head learns about one
#    direction but the heads learn different ones, the fused matrix has rank
#    up to $H$ times a head's. The column "heads' top directions fused" keeps
#    only each head's top singular direction and fuses those: its stable rank
#    is already several.
# 2. **Stable rank against rank.** $\|\Delta\|_F^2/\|\Delta\|_2^2$ is the
#    weight of the top direction: a matrix with one strong direction and a
#    long tail of weak ones has a stable rank near 1 and still many
#    directions. The 95%-energy rank (fewest singular values holding 95% of
#    $\|\Delta\|_F^2$) counts the tail.
# 3. **Energy against function.** The sweep asks for 95% of the *loss* gain,
#    and the loss can depend on weak directions that hold little of the norm.
#
# The table computes each step of that chain per layer, from the final
# weights (stored with the run).

# %% tags=["hide-input"]
rank_rows = lora_figures.rank_rows(lm_run, lm.derived(lm_run)["ranks"], sweeps["LM"])
report.glue_all("ch07_ranks", lora_figures.rank_numbers(rank_rows))
Table(rank_rows, digits=3, title="Language model, final weights: per-head and fused per-layer ranks of ΔW_Q")

# %% [markdown]
# ```{admonition} This run
# Per head, $\Delta W_K W_Q^\top$ has stable rank
# {glue:text}`ch07_ranks_product` (mean over heads, by layer) and
# $\Delta W_Q^h$ {glue:text}`ch07_ranks_head`; a head's
# $\Delta W_Q^h$ needs {glue:text}`ch07_ranks_head95` singular values for 95%
# of its energy. Fusing only the heads' top directions gives stable rank
# {glue:text}`ch07_ranks_tops`; the whole fused $\Delta W_Q$ has stable rank
# {glue:text}`ch07_ranks_fused` and needs {glue:text}`ch07_ranks_fused95` of
# {glue:text}`ch07_ranks_full` singular values for 95% of its energy; and the
# sweep needs $r$ = {glue:text}`ch07_ranks_r95` for 95% of the loss gain.
# The small per-head number and the large fused one are the two ends of this
# chain, not a contradiction.
# ```
#
# ## Training rank-r adapters from the initialization
#
# The sweep shows that a rank-$r$ update *exists* that does nearly as well
# as full training. Does training find it? Here the language model is
# trained again from the same initialization, on the same batches and
# schedule, but every attention matrix is frozen at $W_0$ and learns only
# through a rank-$r$ adapter $W_0 + BA$ ($B = 0$ at the start, as in LoRA;
# `rankbook.models.adapters`); embeddings, MLPs and LayerNorms train fully,
# as they kept their full update in the sweep. Every loss here is on the
# same test windows as the sweep.

# %%
adapters = {r: lm.run(lm_settings, lm_seed, lora_rank=r) for r in lm_settings.lora_ranks}

# %% tags=["hide-input"]
lora_losses = {r: lm.derived(a)["test_window_loss"] for r, a in adapters.items()}
full_loss = lm.derived(lm_run)["test_window_loss"]
glue("ch07_fig_lora", lora_figures.lora_vs_truncation(sweeps["LM"], lora_losses, full_loss, lm_run, profile),
     display=False)
lora_rows = lora_figures.lora_rows(sweeps["LM"], adapters, lm_run, lm.derived)
report.glue_all("ch07_lora", truncation.lora_numbers(lora_rows))
claim_rows = truncation.lora_claims(sweeps, lora_rows, profile, CHAPTER)
Table(lora_rows, digits=4, title="LoRA adapters trained from initialization vs truncating full training")

# %% [markdown]
# ```{glue:figure} ch07_fig_lora
# :name: "fig-ch07-lora"
#
# Test loss of the language model against rank: the fully trained model cut
# to rank $r$ (green, as in {numref}`fig-ch07-lm`) and rank-$r$ adapters
# trained from initialization with the same steps and data (blue); dashed:
# full training; dotted: attention at initialization. Beyond the paper;
# {glue:text}`ch07_profile` profile.
# ```
#
# ```{admonition} This run
# {glue:text}`ch07_lora_summary`
# ```
#
# ## The stored reference tier of the language model
#
# The reference language model (GPT-2's BPE, 6 layers of 8 heads) is not
# trained here; its sweep and rank numbers were stored with it, and its LoRA
# runs are trained after it by the same command:
# {glue:text}`ch07_reference_status`.

# %% tags=["hide-input"]
from IPython.display import display

ref_runs = stored_lm.get("reference") or []
ref_settings = lm_settings_table.PROFILES["reference"]
ref_adapters = {r: report.lookup(lm.run, ref_settings, ref_settings.seeds[0], lora_rank=r)
                for r in ref_settings.lora_ranks}
ref_adapters = {r: a for r, a in ref_adapters.items() if a is not None}
if ref_runs:
    ref_sweep = lm.sweep_of(ref_runs[0])
    glue("ch07_fig_lm_reference", lora_figures.rank_sweep(ref_sweep, ref_runs[0], "reference",
                                                           "test loss (nats/token)", "LM"), display=False)
    report.glue_all("ch07_ref", truncation.sweep_numbers(ref_sweep))
    ref_ranks = lora_figures.rank_rows(ref_runs[0], lm.derived(ref_runs[0])["ranks"], ref_sweep)
    report.glue_all("ch07_ref_ranks", lora_figures.rank_numbers(ref_ranks))
    display(lora_figures.sweep_table("LM, reference", ref_sweep, "test loss"))
    display(Table(ref_ranks, digits=3, title="Reference LM: per-head and fused per-layer ranks of ΔW_Q"))
    if ref_adapters:
        ref_rows = lora_figures.lora_rows(ref_sweep, ref_adapters, ref_runs[0], lm.derived)
        display(Table(ref_rows, digits=4, title="Reference LM: LoRA adapters vs truncating full training"))
        claim_rows += truncation.lora_claims({"LM": ref_sweep}, ref_rows, "reference", CHAPTER)
    lora_summary = truncation.lora_numbers(ref_rows) if ref_adapters else {"summary": "n/a"}
    report.glue_all("ch07_ref_lora", lora_summary)
    devices = {r: a.manifest.get("device", "?") for r, a in {0: ref_runs[0], **ref_adapters}.items()}
    glue("ch07_ref_devices", "; ".join(f"{'full run' if r == 0 else f'LoRA rank {r}'}: {d}"
                                       for r, d in devices.items()), display=False)
    missing = [r for r in ref_settings.lora_ranks if r not in ref_adapters]
    status = "stored, with its LoRA runs of ranks " + ", ".join(map(str, ref_adapters)) if not missing else (
        f"stored; LoRA runs of ranks {', '.join(map(str, missing))} not stored yet "
        f"(`{lm.make_command('reference')}`)")
else:
    glue("ch07_fig_lm_reference", stable_rank.not_stored("reference", "the language model"), display=False)
    for key, numbers in (("ch07_ref", ("rank0", "full", "full_rank", "r95", "r99", "null95")),
                         ("ch07_ref_ranks", ("product", "fused95", "r95"))):
        report.glue_all(key, dict.fromkeys(numbers, "n/a"))
    report.glue_all("ch07_ref_lora", {"summary": "n/a"})
    glue("ch07_ref_devices", "n/a", display=False)
    status = f"not stored yet; make it with `{lm.make_command('reference')}`"
glue("ch07_reference_status", status, display=False)
glue("ch07_profile", profile, display=False)
written = claims.record(profile, CHAPTER, claim_rows)

# %% [markdown]
# ```{glue:figure} ch07_fig_lm_reference
# :name: "fig-ch07-lm-reference"
#
# As {numref}`fig-ch07-lm`, for the stored `reference` language model (GPT-2's
# BPE), when stored: the analogue at the reference profile.
# ```
#
# ```{admonition} The reference tier
# Test loss {glue:text}`ch07_ref_rank0` with the attention at
# initialization, {glue:text}`ch07_ref_full` trained (full rank
# {glue:text}`ch07_ref_full_rank`); 95% of the gain recovered at
# $r$ = {glue:text}`ch07_ref_r95`, 99% at $r$ = {glue:text}`ch07_ref_r99`
# (random update of rank {glue:text}`ch07_ref_r95`:
# {glue:text}`ch07_ref_null95`). Per head, $\Delta W_K W_Q^\top$ has stable
# rank {glue:text}`ch07_ref_ranks_product`; the fused $\Delta W_Q$ needs
# {glue:text}`ch07_ref_ranks_fused95` singular values for 95% of its energy.
#
# LoRA adapters trained from initialization, against the full run cut to
# the same rank (test loss, nats per token): {glue:text}`ch07_ref_lora_summary`
# Where they were trained ({glue:text}`ch07_ref_devices`): the runs of one
# tier share their settings and keys whatever the device (fp32 throughout),
# but their training times in the table are not comparable across devices.
# ```
#
# ## What follows for LoRA, and what does not
#
# What follows: if a small $r$ recovers most of the gain, the update that
# full training found is, *for the model's function*, close to a rank-$r$
# update of each attention matrix, so a rank-$r$ adapter on every attention
# matrix could represent it: the low-rank picture of the paper applies to the
# function, not only to the spectra of chapters 04 and 06. The random null
# separates this from a mere norm effect.
#
# What does not: (1) these models are trained from scratch, not fine-tuned
# from a pretrained model, which is LoRA's setting; (2) that a rank-$r$
# update *exists* does not mean training a rank-$r$ adapter *finds* it (the
# dynamics differ: LoRA trains factors from a zero/random start with the base
# frozen); the adapter runs above test this for the language model only, on
# one seed; (3) only attention is truncated here, the MLPs and embeddings
# keep their full trained updates; (4) the `fast` profile's models are small
# and briefly trained (see chapters 04 and 06 for their departures from the
# paper), so their updates may be lower-rank than those of a long
# paper-scale run.

# %% tags=["hide-input"]
show_source(truncation.rank_r_weights)
