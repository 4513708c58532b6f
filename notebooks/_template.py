# ---
# jupyter:
#   jupytext:
#     formats: py:percent
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
# # NN. The question this chapter answers
#
# One paragraph: what the paper claims (with the figure or section, e.g. the
# paper's Fig. 1a), and what this chapter runs to check it. Copy this file to
# `notebooks/NN_topic.py`; it is kept out of `_toc.yml` and never built
# (see CONTRIBUTING.md, "A chapter's shape").

# %% tags=["parameters"] mystnb={"code_prompt_show": "Parameters", "code_prompt_hide": "Hide parameters"}
# "fast" (CPU, minutes), "reference" or "paper"; empty: $RANKBOOK_PROFILE, else "fast"
profile: str = ""
seed: int = 0  # every parameter is a setting's name, validated by profiles.select before any work

# %% tags=["remove-cell", "colab-setup"]
# (replace this cell: python -m rankbook.book.colab --write notebooks/NN_topic.py)

# %% tags=["hide-input"] mystnb={"code_prompt_show": "Imports and settings"}
from rankbook.book.glue import glue
from rankbook.book.source import show_source
from rankbook.figures import style
from rankbook.settings import profiles
from rankbook.settings.toy import PROFILES

profile = profiles.resolve(profile)
settings = profiles.select(PROFILES, profile, seed=seed)

# %% [markdown]
# ## Run
#
# What is trained or solved, and what the profile changes from the paper.

# %%
# the one call a reader should see, e.g. `run = rankbook.training.vit.run(settings, ...)`
alphas = settings.alphas

# %% tags=["hide-input"]
fig, axes = style.figure(1, 2)
axes[0, 0].semilogx(alphas, range(len(alphas)), marker="o")
axes[0, 0].set(xlabel="α", ylabel="index")
axes[0, 1].axis("off")
style.finish(fig, "What the figure shows", f"data, {profile} profile, settings")
glue("chNN_fig_main", fig, display=False)
glue("chNN_n_alphas", str(len(alphas)), display=False)

# %% [markdown]
# ```{glue:figure} chNN_fig_main
# :name: "fig-chNN-main"
#
# What is shown, on which data, profile and settings; reproduces the paper's Fig. X.
# ```
#
# ```{admonition} Paper
# The paper's statement, with its numbers and where it is made.
# ```
#
# ```{admonition} This run
# The run swept {glue:text}`chNN_n_alphas` initialization scales; {numref}`fig-chNN-main`
# shows ... (numbers glued from `rankbook.analysis`, the verdict computed from the whole curve).
# ```

# %% tags=["hide-input"]
show_source(profiles.select)

# %% [markdown]
# Finally record the checked claims for the results page:
# `claims.record(profile, "NN_topic", [claims.row(claim, paper, tier, measured, verdict, "NN_topic")])`
# (`rankbook.analysis.claims`).
