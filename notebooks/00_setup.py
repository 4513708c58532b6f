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
# # Check your setup
#
# Run this chapter first. It tells you which versions of the libraries you
# have, whether a GPU is visible, which run profile is active (and what it
# means for every other chapter), and which data sets the book can find on
# this machine or would have to download.

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
from IPython.display import display

from rankbook.book import environment
from rankbook.book.glue import glue
from rankbook.settings import profiles

profile = profiles.resolve(profile)
for key, text in environment.summary(profile).items():
    glue(f"ch00_{key}", text, display=False)
for key, text in environment.reference_times().items():
    glue(f"ch00_reference_{key}_time", text, display=False)

# %% [markdown]
# ```{admonition} This machine
# The book runs the {glue:text}`ch00_profile` profile here, on
# {glue:text}`ch00_device`, with Python {glue:text}`ch00_python` and
# torch {glue:text}`ch00_torch`.
# ```
#
# ## Libraries and device

# %%
environment.versions_table()

# %%
environment.device_table()

# %% [markdown]
# ## What the profiles set
#
# Each part of the book reads its settings from the active profile; a
# notebook parameter overrides a single setting (and a copy run with an
# override is never published as the profile's page). `fast` runs every
# chapter on two CPU cores in minutes (this is what CI executes and what this
# site shows). `reference` is closer to the paper: its ViT runs took
# {glue:text}`ch00_reference_vit_time` each (a GPU: on a laptop CPU they
# would take hours, hence "CPU-hours" elsewhere), and they are stored in
# `results/` rather than run by the build; the reference language model took
# {glue:text}`ch00_reference_lm_time`. `paper` uses the paper's
# settings and wants a GPU. These times are the stored runs' own records; the
# performance chapter lists every run's cost.
#
# Each setting has a one-line description. The rows where the `fast` column
# differs from the `paper` column are **highlighted** (and marked "departs"):
# there the fast chapters depart from the paper, and each chapter says so
# where it matters. The descriptions name each head's two products as the book
# writes them: $W_K W_Q^\top$ (keys and queries, the attention logits) and
# $W_V W_O^\top$ (values and output).

# %%
for part in environment.PROFILE_TABLES:
    display(environment.profile_comparison(part, profile))

# %% [markdown]
# ## Data sets
#
# The book looks for data in `$RANKBOOK_DATA` first (an offline copy, e.g. a
# folder holding `cifar10-jpeg.tar.gz` and `wikitext-2/`), then in its cache
# (`$RANKBOOK_CACHE`), and downloads only when neither has it.

# %%
environment.datasets_table()
