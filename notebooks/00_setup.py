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

# %% tags=["parameters"]
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
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", _target])

# %% tags=["hide-input"]
from IPython.display import display

from rankbook.book import environment
from rankbook.book.glue import glue
from rankbook.settings import profiles

profile = profiles.resolve(profile)
for key, text in environment.summary(profile).items():
    glue(f"ch00_{key}", text, display=False)

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
# site shows); `reference` is closer to the paper and takes CPU-hours; `paper`
# uses the paper's settings and wants a GPU. Where the `fast` column differs
# from the `paper` column, the chapters depart from the paper, and each
# chapter says so where it matters.

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
