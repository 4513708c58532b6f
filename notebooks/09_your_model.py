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
# # Your own model: the per-head rank of an update between two checkpoints
#
# The paper motivates its result with LoRA (section 1.1): is the update from a
# pretrained model to a fine-tuned one low-rank, head by head? Its measurements
# (Figs. 1a, 12) are of its own models trained from scratch. This chapter, beyond
# the paper, turns the book's measurement into a tool for any transformer:
#
# ```bash
# python -m rankbook inspect BEFORE AFTER [--json FILE] [--figure FILE] [--arch NAME]
# ```
#
# reads every layer's per-head $W_Q^h, W_K^h, W_V^h, W_O^h$ in the book's
# convention ($d_\text{model} \times d_\text{head}$ each) from the model's own
# layout, and reports, per layer and head, the singular values and stable rank
# $\|\Delta\|_F^2/\|\Delta\|_2^2$ of $\Delta W_K W_Q^\top$ and
# $\Delta W_V W_O^\top$ (computed from the thin factors, as everywhere in the
# book), the same for the products themselves, and the null: a random matrix of
# the same shape and the same rank bound $2\,d_\text{head}$. BEFORE and AFTER are
# HF model folders (`save_pretrained`), model-hub names (online), or state-dict
# files (`.safetensors`, `.pt`, `.bin`) with `--arch` naming the layout and its
# shape. The chapter (1) checks the tool on the book's own ViT written as an HF
# ViT and a timm ViT, (2) measures a fine-tuning update, and (3) runs a public
# pretrained → fine-tuned pair when online.

# %% tags=["parameters"] mystnb={"code_prompt_show": "Parameters", "code_prompt_hide": "Hide parameters"}
profile: str = ""  # "fast" (CPU, minutes), "reference" or "paper"; empty: $RANKBOOK_PROFILE, else "fast"
pretrain_steps: int = 0  # Adam steps on the first five CIFAR-10 classes; 0: the profile's
finetune_steps: int = 0  # Adam steps on all ten classes after pretraining; 0: the profile's
hub_before: str = "google/vit-base-patch16-224-in21k"  # a public pretrained model (online only)
hub_after: str = "google/vit-base-patch16-224"  # ... and its fine-tuned copy

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
import json
import subprocess
import sys

from rankbook.analysis import report, truncation
from rankbook.book.glue import glue
from rankbook.book.source import show_source
from rankbook.figures.tables import Table
from rankbook.inspect import compare, convert, experiment, figure, layouts, load
from rankbook.settings import profiles
from rankbook.settings import vit as vit_settings_table
from rankbook.store import paths
from rankbook.training import vit

CHAPTER = "09_your_model"
profile = profiles.resolve(profile)
vit_settings = profiles.select(vit_settings_table.PROFILES, profile)
ft_settings = profiles.select(experiment.PROFILES, profile, pretrain_steps=pretrain_steps or None,
                              finetune_steps=finetune_steps or None)  # validated here, before any work
dataset, seed = vit_settings.datasets[0], vit_settings.seeds[0]
out = paths.output_dir(profile, CHAPTER)
inspect = [sys.executable, "-m", "rankbook", "inspect"]
print(f"profile {profile}; ViT {dataset}, seed {seed}; {ft_settings}; files in {out}")

# %% [markdown]
# ## The layouts it reads
#
# Each library lays the heads out differently: separate `Linear` projections
# (BERT, HF ViT, the LLaMA family, whose grouped-query attention shares one KV
# head among $\text{heads}/\text{kv\_heads}$ query heads: query head $h$ uses KV
# head $\lfloor h / (\text{heads}/\text{kv\_heads}) \rfloor$), GPT-2's `Conv1D`
# with one fused $[d, 3d]$ `c_attn` (weights stored input-first), timm's fused
# $[3d, d]$ `qkv`, PyTorch's `in_proj_weight`. Slicing one of them wrongly mixes
# heads, and nothing downstream notices: the spectra are still spectra. So every
# layout is pinned by a test that recomputes, from the extracted weights, the
# library's own pre-softmax scores $X W_Q^h (X W_K^h)^\top / \sqrt{d_\text{head}}$
# (captured from its softmax) and its attention output
# $\sum_h \operatorname{softmax}(\cdot)\, X W_V^h W_O^{h\top} + b$, both to
# $10^{-5}$, on tiny random models of each library (every weight and bias
# redrawn), and by a planted update of known rank in one head that must appear
# in that head only. The products leave out what is not bilinear in $X$: the
# biases of $Q$, $K$, $V$, rotary position embeddings and QK-norm; the command
# says which of these a model has.

# %% tags=["hide-input"]
Table(layouts.layout_rows(), title="Supported layouts and the test that pins each")

# %% [markdown]
# ## 1. The book's ViT, as an HF ViT and a timm ViT
#
# Chapter 04's trained ViT (its run is reused; trained here if missing) is
# written as a `transformers` `ViTForImageClassification` and a timm
# `VisionTransformer` of the same shape, every parameter copied
# (`rankbook.inspect.convert`). The update measured is the one chapter 04 plots:
# from the initialization to the end of training.

# %%
task = vit.task(vit_settings, dataset, vit_settings.init_scale, seed)
stored = vit.run(vit_settings, dataset, vit_settings.init_scale, seed)
trained, initial = truncation.load_trained(task, stored)
init_model = task.build_model().eval()  # seeded: the run's own initialization
native = compare.compare(init_model, trained)
hf_pair = (convert.to_hf_vit(init_model), convert.to_hf_vit(trained))
timm_pair = (convert.to_timm_vit(init_model), convert.to_timm_vit(trained))
converted = {"HF ViT": compare.compare(*hf_pair), "timm ViT": compare.compare(*timm_pair)}

# %% tags=["hide-input"]
init_diff = max(float((init_model.attention_weights()[k] - initial[k]).abs().max()) for k in initial)
rows = [{"model": "rankbook ViT (native)", "layouts": ", ".join(sorted(set(native.layouts))),
         "max |Δσ| vs native": 0.0, "max |Δσ| vs chapter 04's stored spectra":
         compare.difference_from_stored(native, stored.arrays)}]
rows += [{"model": name, "layouts": ", ".join(sorted(set(c.layouts))),
          "max |Δσ| vs native": compare.max_difference(native, c),
          "max |Δσ| vs chapter 04's stored spectra": compare.difference_from_stored(c, stored.arrays)}
         for name, c in converted.items()]
worst = max(max(r["max |Δσ| vs native"], r["max |Δσ| vs chapter 04's stored spectra"]) for r in rows)
assert init_diff == 0 and worst < 1e-6, (init_diff, worst)
glue("ch09_convert_worst", f"{worst:.1e}", display=False)
report.glue_all("ch09_native", compare.numbers(native))
Table(rows, digits=3, title="Singular values of every head's Δ: converted models against the native one")

# %% [markdown]
# The same numbers come out of the command on two HF model folders, written
# with `save_pretrained`:

# %%
hf_pair[0].save_pretrained(out / "hf_init")
hf_pair[1].save_pretrained(out / "hf_trained")
print(subprocess.run([*inspect, out / "hf_init", out / "hf_trained", "--json", out / "hf.json"],
                     capture_output=True, text=True, check=True).stdout)

# %% [markdown]
# ```{admonition} This run
# Every singular value of every head's $\Delta W_K W_Q^\top$ and
# $\Delta W_V W_O^\top$ read from the HF and the timm copies equals the native
# one and the one chapter 04's tracker stored to within
# {glue:text}`ch09_convert_worst` (the check asks for $10^{-6}$). Over the
# {glue:text}`ch09_native_heads` heads, the stable rank of $\Delta W_K W_Q^\top$
# is {glue:text}`ch09_native_qk_rank` and of $\Delta W_V W_O^\top$
# {glue:text}`ch09_native_vo_rank` (mean ± std over heads; a random matrix of the
# same rank bound: {glue:text}`ch09_native_null_rank`).
# ```
#
# ## 2. A fine-tuning update
#
# LoRA's setting is fine-tuning, not training from scratch. A ViT of chapter
# 04's shape is pretrained on the first five CIFAR-10 classes (the classifier
# keeps ten outputs), then every parameter is fine-tuned on all ten with a
# smaller learning rate (`rankbook.inspect.experiment`; Adam, warmup then cosine
# decay, no augmentation). The three state dicts are written as `.safetensors`
# and `.pt` files and measured with the command, as a user would.

# %%
ft = experiment.run(vit_settings, ft_settings, out / "finetune")
files = ft["files"]
for name, (a, b) in {"finetune": ("pretrained", "finetuned"), "pretrain": ("init", "pretrained")}.items():
    done = subprocess.run([*inspect, files[a]["safetensors"], files[b]["pt"], "--arch", ft["arch"], "--json",
                           out / f"{name}.json", "--figure", out / f"{name}.png"],
                          capture_output=True, text=True, check=True)
print(done.stdout)  # the pretraining update; the fine-tuning one is in the figure below

# %% tags=["hide-input"]
measured = {name: compare.from_json(json.loads((out / f"{name}.json").read_text()))
            for name in ("finetune", "pretrain")}
for name, result in measured.items():
    report.glue_all(f"ch09_{name}", compare.numbers(result))
before_w = load.load(files["pretrained"]["safetensors"], ft["arch"]).attention_weights()
after_w = load.load(files["finetuned"]["pt"], ft["arch"]).attention_weights()
fused = truncation.rank_profile(before_w, after_w)
for kind in ("q", "v"):
    ranks95 = fused[kind]["fused_energy95"]
    glue(f"ch09_fused95_{kind}", f"{sum(ranks95) / len(ranks95):.1f}", display=False)
glue("ch09_fused_full", str(fused["full_rank"]), display=False)
glue("ch09_acc_pre", f"{ft['acc_pretrained_on_its_classes']:.1%}", display=False)
glue("ch09_acc_pre_all", f"{ft['acc_pretrained_all']:.1%}", display=False)
glue("ch09_acc_ft", f"{ft['acc_finetuned_all']:.1%}", display=False)
glue("ch09_train_s", f"{ft['pretrain_s'] + ft['finetune_s']:.0f} s", display=False)
subtitle = (f"pretrained (classes 0-{ft_settings.pretrain_classes - 1}, {ft_settings.pretrain_steps} steps)"
            f" → fine-tuned (all classes, {ft_settings.finetune_steps} steps); CIFAR-10, {profile} profile")
title = "Per-head rank of a fine-tuning update"
glue("ch09_fig_finetune", figure.update_figure(measured["finetune"], subtitle, title), display=False)

# %% [markdown]
# ```{glue:figure} ch09_fig_finetune
# :name: "fig-ch09-finetune"
#
# The fine-tuning update of a ViT pretrained on five CIFAR-10 classes and
# fine-tuned on ten, as `python -m rankbook inspect` measures it. Left: stable
# rank of $\Delta W_K W_Q^\top$ (blue) and $\Delta W_V W_O^\top$ (red) per layer,
# mean ± std over heads; dotted: a random matrix of the same shape and rank
# bound. Middle, right: every head's normalized spectrum $\sigma_i/\sigma_1$ of
# $\Delta$, darker for deeper layers. The paper's Figs. 1a and 12 (v1) show the same
# quantities for training from scratch; fine-tuning is beyond the paper.
# ```
#
# ```{admonition} This run
# Pretraining reached {glue:text}`ch09_acc_pre` test accuracy on its five classes
# ({glue:text}`ch09_acc_pre_all` on all ten), fine-tuning
# {glue:text}`ch09_acc_ft` on all ten ({glue:text}`ch09_train_s` of training in
# all). Over the {glue:text}`ch09_finetune_heads` heads, the fine-tuning update
# has stable rank {glue:text}`ch09_finetune_qk_rank` ($\Delta W_K W_Q^\top$) and
# {glue:text}`ch09_finetune_vo_rank` ($\Delta W_V W_O^\top$), the top singular
# value holding {glue:text}`ch09_finetune_qk_top1` and
# {glue:text}`ch09_finetune_vo_top1` of $\|\Delta\|_F^2$; the pretraining update
# from the initialization has {glue:text}`ch09_pretrain_qk_rank` and
# {glue:text}`ch09_pretrain_vo_rank`; a random matrix of the same rank bound
# {glue:text}`ch09_finetune_null_rank` (top value
# {glue:text}`ch09_finetune_null_top1`). Beside chapter 07's truncation, whose
# unit is LoRA's fused per-layer matrix: the fine-tuning update of the fused
# $W_Q$ needs on average {glue:text}`ch09_fused95_q` singular values for 95% of
# its energy, of $W_V$ {glue:text}`ch09_fused95_v`, out of a full rank of
# {glue:text}`ch09_fused_full`.
# ```
#
# What this does not show: one seed and one short schedule of a small model
# (the `fast` profile's, see chapter 04 for its departures from the paper); the
# fine-tuning learning rate is 0.3× the pretraining one, and a smaller one moves
# the weights less, which may change the rank as well as the size of the update.

# %% [markdown]
# ## 3. A public pretrained → fine-tuned pair
#
# Online, the same command measures a public pair from the model hub (by
# default Google's ViT-B/16 pretrained on ImageNet-21k and its ImageNet-1k
# fine-tuned copy). Offline, as on the machines that build this book, the cell
# says so in one line and moves on (`rankbook.inspect.load.offline`: `HF_HUB_OFFLINE`
# set, or no answer from the hub within 3 s).

# %%
if load.offline():
    print(f"skipped: the model hub is out of reach (offline), so {hub_before} → {hub_after} was not measured")
else:
    print(subprocess.run([*inspect, hub_before, hub_after, "--json", out / "hub.json"],
                         capture_output=True, text=True, check=True).stdout)

# %% tags=["hide-input"]
show_source(compare.measure_layer)
