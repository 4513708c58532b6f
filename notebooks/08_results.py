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
# # Results: every claim the book checks
#
# Each chapter ends by comparing what the paper states with what its runs
# measured, and records that comparison: the claim, where the paper makes it,
# the measured numbers and a verdict computed from the whole curve or
# distribution (never typed by hand). This page gathers those records into
# one table, so a reader can see at a glance which of the paper's claims this
# book reproduces, at which scale, and follow the link to the chapter that
# shows the figures and the code.

# %% tags=["parameters"]
# "fast" (CPU, minutes), "reference" or "paper"; empty: $RANKBOOK_PROFILE, else "fast"
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
from rankbook.book import results
from rankbook.book.glue import glue
from rankbook.settings import profiles

profile = profiles.resolve(profile)
table = results.claims_table(profile)
counts = results.tally(table)
glue("ch08_profile", profile, display=False)
glue("ch08_n_claims", str(len(table.rows)), display=False)
glue("ch08_tally", ", ".join(f"{n} {verdict}" for verdict, n in counts.items()) or "none yet", display=False)

# %% [markdown]
# ## The claims
#
# This build ran the {glue:text}`ch08_profile` profile and checked
# {glue:text}`ch08_n_claims` claims; their verdicts: {glue:text}`ch08_tally`.
#
# ```{admonition} How to read the table
# Each claim names, in brackets, the figure or section where the paper makes
# it. The three middle columns are this book's measurements at each scale:
# **fast** is the run this site was built from (CPU, minutes, a small model
# and data set), **reference** a stored run closer to the paper's settings
# (CPU-hours), **paper scale** a stored run with the paper's settings (GPU);
# "not run" means no stored run for the current code and data. The verdict is
# the one of the largest scale measured, named in brackets; a smaller scale
# that disagrees shows its own verdict in its cell. The fast profile departs
# from the paper in model size, data and steps (each chapter says how), so
# its verdicts say whether the effect is visible at that scale, not whether
# the paper's numbers are reproduced.
# ```

# %%
table

# %% [markdown]
# ## Where the rows come from
#
# Each chapter calls `rankbook.analysis.claims.record(profile, chapter, rows)`
# after computing its verdicts; the table above is built by the function
# below from every chapter's record (folded: click to show).

# %% tags=["hide-input"]
from rankbook.book.source import show_source

show_source(results.claim_rows)
