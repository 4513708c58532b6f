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
# # rankbook: Transformers learn through gradual rank increase
#
# This book is an executable reproduction of {cite:t}`boixadsera2023transformers`.
# Every number and figure in it comes from running the code in the `rankbook`
# package, in notebooks that you can open in Colab, execute with papermill, or
# read here. Each figure says which **profile** produced it: `fast` (a CPU run
# of minutes, what continuous integration executes and this site shows),
# `reference` (closer to the paper; its ViT runs were trained on one GPU, an
# H100 or an H200, in minutes each, which is CPU-hours on a laptop; stored and
# shown beside the live ones; the performance chapter lists every run's device
# and time) or `paper` (the paper's settings, for a GPU; stored).
#
# **Figure numbers.** The paper's figures are cited by their numbers in
# **arXiv v1** (2306.07042v1, the text this book was checked against), written
# "the paper's Fig. 12 (v1)"; the NeurIPS 2023 version numbers them
# differently (the crosswalk on {doc}`08_results` gives both). This book's
# own figures are numbered by chapter (Fig. 4.2 is chapter 4's second figure),
# so a book figure number never reads as one of the paper's.

# %% tags=["parameters"] mystnb={"code_prompt_show": "Parameters", "code_prompt_hide": "Hide parameters"}
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
from IPython.display import Markdown

from rankbook.analysis import claims, crosswalk
from rankbook.book import landing, runner
from rankbook.book.glue import glue
from rankbook.figures import style
from rankbook.settings import profiles

profile = profiles.resolve(profile)
found = claims.load_all(profile)
stems = [p.stem for p in runner.available()]
glue("ch99_profile", profile, display=False)
glue("ch99_headline", landing.headline_sentence(found), display=False)
glue("ch99_language_model", Markdown(crosswalk.LANGUAGE_MODEL), display=False)

# %% [markdown]
# ## What this book finds
#
# Each chapter compares what the paper claims with what its runs measure, and
# records a verdict computed from the measurement, in one vocabulary (defined
# on {doc}`08_results`: *shown*, *partly shown*, *not shown at this scale*,
# *contradicted*, *cannot be shown by this tier's runs*). This build (the
# {glue:text}`ch99_profile` profile) gathers them; per tier:
# {glue:text}`ch99_headline`
#
# The fast tier is small by design (a CPU, minutes), so its verdicts say
# whether an effect is visible at that scale; the reference and paper-scale
# tiers are the stored runs closer to the paper.

# %% tags=["remove-input"]
landing.tier_table(found)

# %% tags=["remove-input"]
landing.headline_table(found, stems)

# %% [markdown]
# ## The key figure
#
# The paper's central measurement on a real network: the stable rank of the
# learned perturbations $\Delta W_K W_Q^\top$ and $\Delta W_V W_O^\top$ of a
# vision transformer trained with Adam on CIFAR-10, through training, at the
# largest stored tier (the paper-scale run when it is stored). Chapter
# {doc}`04_vit_spectra` shows it at every tier, with the trend rule that turns
# these curves into verdicts.

# %% tags=["remove-input"]
fig, tier = landing.key_figure(profile)
style.show(fig)

# %% [markdown]
# The title of the figure names the tier it comes from and its settings. The
# paper's claim is that both curves rise gradually from a low stable rank
# while staying far below the head dimension; {doc}`04_vit_spectra` states
# the verdict for each layer and compares the tiers.

# %% [markdown]
# ## What is not reproduced here
#
# The paper's figures this book does not show, from the crosswalk of the
# paper's figures to the book's ({doc}`08_results`), with the reason:

# %% tags=["remove-input"]
landing.not_reproduced_table()

# %% [markdown]
# **A language model?** The book's chapter {doc}`06_language` trains a
# GPT-2-style model {cite:p}`radford2019language`, although arXiv v1 trains
# none. What each version says: {glue:md}`ch99_language_model`
#
# ## What the paper claims
#
# 1. **Incremental learning in diagonal networks (theory).** For networks that
#    depend on their weights through an elementwise product,
#    $f(x; u, v) = h(x; u \odot v)$, trained by gradient flow from an
#    initialization of scale $\alpha$, training proceeds in *stages*: a long
#    plateau of length $\Theta(\log 1/\alpha)$ near a saddle point, then a fast
#    escape after which the support of $u \odot v$ has grown by at most one
#    coordinate. The conservation law $u_i^2 - v_i^2 = \text{const}$ and a
#    greedy procedure (Algorithm 1) predict the stage times, the coordinate that
#    wins each stage, and the saddle the weights reach. This extends the
#    incremental-learning analyses of linear networks
#    {cite:p}`saxe2014exact,gissin2020implicit,arora2019implicit,berthier2023incremental,jacot2021saddle`
#    beyond the kernel regime of large initializations
#    {cite:p}`jacot2018neural,chizat2019lazy`.
# 2. **Attention heads are such networks.** A self-attention head
#    {cite:p}`vaswani2017attention`
#    $\operatorname{softmax}(X W_K W_Q^\top X^\top) X W_V W_O^\top$ with diagonal
#    weights fits the theorem, so $W_K W_Q^\top$ and $W_V W_O^\top$ increase in
#    rank one step at a time.
# 3. **Toy experiments agree**, for diagonal and for full weight matrices, and
#    the theorem's assumptions (non-degenerate stages, strict local minima,
#    noise-robust escapes) hold numerically.
# 4. **Real vision transformers show it too.** In a ViT
#    {cite:p}`dosovitskiy2021image` trained with Adam {cite:p}`kingma2015adam`
#    on CIFAR-10/100 {cite:p}`krizhevsky2009learning` (and ImageNet), the
#    *perturbations* $\Delta W_K W_Q^\top$ and $\Delta W_V W_O^\top$ from
#    initialization are of low stable rank, their rank grows gradually during
#    training, and more so at smaller initialization scales.
# 5. The paper asks whether this low-rank bias explains why low-rank
#    fine-tuning such as LoRA {cite:p}`hu2022lora` works.
#
# ## How this book is organized
#
# - **Getting started**: how to run the book on a CPU, a GPU, in Colab and with
#   papermill, and a chapter that checks your setup and lists every setting.
# - **Theory and toy model** (chapters 1-3): the diagonal-network class and the
#   conservation law, Algorithm 1 made executable and compared with
#   gradient-flow runs as $\alpha \to 0$; the paper's toy figures (the paper's
#   Figs. 2 and 6-8 (v1)); and the checks of the assumptions (the paper's
#   Figs. 9-10 (v1)).
# - **Vision transformers** (chapters 4-5): the spectra of learned perturbations
#   (the paper's Figs. 1a, 5, 11 and 12 (v1)) and the effect of the
#   initialization scale (the paper's Figs. 3-4 (v1)).
# - **Language models and LoRA** (chapters 6-7): the same measurements on a
#   GPT-2-style language model trained on WikiText-2 {cite:p}`merity2016pointer`
#   (a test beyond v1, see above), and the question the paper leaves open: how
#   much of a trained model survives when every attention update is truncated
#   to rank $r$, against a random update of the same norm, and against LoRA
#   adapters trained from the initialization.
# - **Results** (chapter 8): every claim the book checks, with its numbers at
#   each scale and its verdict, and the crosswalk of the paper's figures.
# - **Performance**: what each chapter and each stored run cost, and how fast
#   the pieces are, measured by the scripts in `benchmarks/`.
#
# ## A lesson from an earlier reproduction
#
# A public student reproduction {cite:p}`tore2024reproduction` computed
# per-head matrices by slicing a fused query/key/value projection in the wrong
# order, so the matrices it studied were not the paper's $W_K W_Q^\top$ and
# $W_V W_O^\top$. Here, every attention head keeps its own $W_Q, W_K, W_V, W_O$
# as explicit tensors, and a test checks each head's $W_K W_Q^\top$ against the
# attention logits the model actually computes.
