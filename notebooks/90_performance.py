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
# # Performance
#
# What each chapter and each stored training run cost, and how fast the
# book's code runs, measured rather than claimed: the ViT
# training throughput of the fast path against a plain PyTorch pipeline,
# the cost of the spectra tracker against training, the factored against
# the dense singular values, and the toy model's solver. Each figure comes
# from a script in `benchmarks/` that times its alternatives side by side in
# one process and prints the ratio. This page runs the scripts in their
# `--quick` mode (small shapes, a minute each on two CPU cores) when their
# results are missing; on a GPU, run them without arguments (full mode, the
# paper's shapes) and the page shows whichever results it finds.

# %% tags=["parameters"] mystnb={"code_prompt_show": "Parameters", "code_prompt_hide": "Hide parameters"}
# "fast" (CPU, minutes) or "paper" (GPU, the paper's settings); empty: $RANKBOOK_PROFILE, else "fast"
profile: str = ""

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
from rankbook.book import performance
from rankbook.book.glue import glue
from rankbook.settings import profiles
from rankbook.store import paths

profile = profiles.resolve(profile)
out = paths.output_dir(profile, "90_performance")
glue("ch90_folder", performance.shown_path(out), display=False)

# %% [markdown]
# ## What each run costs
#
# Each chapter's wall time as the runner recorded it in the chapter's executed
# copy (from the kernel's start to its last cell), for every profile executed
# in this build folder. The runner records no device, so the device column
# names the machine that built this page; the landing page runs after this
# one and is absent from a fresh build's table.

# %%
performance.chapter_costs()

# %% [markdown]
# The stored runs that the chapters show beside the live ones (`results/`),
# each as its manifest records it: the device it trained on, its steps and
# its training time. The `reference` ViT runs were trained on one GPU (an H100,
# or an H200 for the later seeds) in minutes each; on a laptop CPU they
# would take hours, which is why they are stored rather than run by the
# build. The profile column is the profile
# whose settings the run's configuration matches (or the closest one, with
# the settings that differ).

# %%
performance.stored_run_costs()

# %% [markdown]
# ## Benchmarks
#
# The call below reads the current benchmark reports (CI writes them before
# the notebooks run) and runs, in quick mode, any benchmark whose report is
# missing or older than its script; this build's reports are in
# {glue:text}`ch90_folder`.

# %%
reports = performance.reports(out)

# %% [markdown]
# ## All figures
#
# The *device* column says where each figure was measured and in which mode
# (quick: small shapes on the CPU; full: the paper's shapes, normally on a
# GPU). CPU timings on shared cores are noisy; ratios measured side by side
# are more stable than the absolute figures.

# %%
performance.figures_table(reports)

# %% [markdown]
# ## What each figure measures
#
# **ViT throughput** (`benchmarks/vit_throughput.py`). Training images per
# second of the same ViT, batch and optimizer on two paths. The *fast path*
# is what `rankbook.training.loop` runs: the training split held as one uint8 tensor
# on the device, batches gathered by index (and augmented there when a run
# asks for it), bf16 autocast on GPUs, fused Adam on CUDA, no host sync per
# step (losses summed on the device and read at tracking points), optionally
# `torch.compile`. The *plain path* is a textbook pipeline: torchvision
# `ImageFolder` over the JPEG files with PIL transforms in a `DataLoader`,
# fp32, default Adam, `loss.item()` every step. The ratio is fast / plain.
# The book's runs train **without augmentation** (`augment none` in every
# profile: the paper names none); the benchmark times both paths **with**
# random crop and flip (`augment="crop_flip"` in `benchmarks/vit_throughput.py`),
# so its figures include the cost of an augmentation that the book's own
# runs do not pay.
# Model FLOP utilization (MFU) is achieved FLOP/s over the device's peak,
# with training FLOPs counted analytically as
# $3 \times [2T(Pd + L(4 d h d_h + 2 d m)) + 4 L T^2 h d_h + 2dC]$ per image
# ($\approx 6 \times$ matmul parameters $\times$ tokens plus the attention
# terms; $T$ tokens, $P$ values per patch, $L$ layers, width $d$, $h$ heads of
# $d_h$, MLP width $m$, $C$ classes). The peak is the data-sheet dense peak on
# GPUs (H100/H200: 989 TFLOP/s in bf16) and an *assumed* one on CPUs
# (threads × clock × 32 fp32 FLOP per cycle), named in the table.
#
# **Tracker overhead** (`benchmarks/tracking_overhead.py`). The time to
# compute the singular values of every head's $\Delta W_K W_Q^\top$ and
# $\Delta W_V W_O^\top$ at one tracking point, against one epoch of training
# of the paper's ViT (50,000 images, batch 512). Over a run the overhead is
# points × time per point / (epochs × time per epoch), with the paper's 500
# epochs and 6 tracking points per decade of iterations. Target: below 2% of
# the training time. The test evaluation at each point is reported apart.
#
# **Factored vs dense spectra** (`benchmarks/spectra.py`). Singular values
# of the $512\times512$ per-head products from their thin factors
# (`rankbook.analysis.spectra`) against a dense SVD of the formed product, in float64,
# with the largest relative disagreement; and the bound on any exact
# factored method for $\Delta$ (rank up to $2 d_h$).
#
# **Toy solver** (`benchmarks/toy_solver.py`). It is not run by this page
# (it takes minutes); CI runs it before the notebooks, and the table above
# shows its report when this build has one, or says how to make it.
# Vector-field evaluations of the adaptive log-coordinate gradient flow
# against fixed-step gradient descent at the same stage-time accuracy, and
# the hand-derived gradient against autograd.
