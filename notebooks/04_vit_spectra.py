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
# # Vision transformers: the learned perturbation is low-rank
#
# The paper trains a vision transformer (6 layers, 8 heads, width 512, head
# dimension 128, patch 4) on CIFAR-10 with Adam and follows, for every head,
# the perturbation of the attention matrices away from their initial values,
# $\Delta W_K W_Q^\top = W_K W_Q^\top - W_K(0) W_Q(0)^\top$ and likewise
# $\Delta W_V W_O^\top$. Its claims (section 5, appendix B):
#
# * the spectrum of $\Delta$ is concentrated in a few directions, unlike the
#   spectrum of the product at initialization (Figs. 1a, 5, 11);
# * the stable rank $\|\Delta\|_F^2/\|\Delta\|_2^2$ stays small and grows
#   gradually through training (Fig. 12).
#
# This chapter trains that model (or reuses a stored run with the same
# settings) and draws these figures. Each head's $W_Q, W_K, W_V, W_O$ are
# explicit tensors of the model, so the matrices below are exactly the paper's;
# singular values come from the thin factors (see `rankbook.analysis.spectra`).
# The `fast` profile uses a narrower model on 5,000 CIFAR-10 images for a few
# hundred iterations, so its numbers are not the paper's; the `paper` profile
# uses the paper's settings and wants a GPU.

# %% tags=["parameters"]
profile: str = ""  # "fast" (CPU, minutes) or "paper" (GPU, the paper's settings); empty: $RANKBOOK_PROFILE, else "fast"
dataset: str = ""  # "cifar10", "cifar100" or "imagenet"; empty: the profile's data sets (paper: CIFAR-10 and CIFAR-100)
epochs: int = None  # override the profile's training epochs
train_subset: int = None  # override the number of training images (0: the whole split)
lr: float = None  # override Adam's base learning rate

# %% tags=["remove-cell"]
# Colab: install rankbook and the few packages Colab lacks (it keeps its own torch).
import importlib.util, subprocess, sys  # noqa: E401
if "google.colab" in sys.modules and importlib.util.find_spec("rankbook") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/rankbook/rankbook"])

# %%
import numpy as np
from IPython.display import Markdown, display

from rankbook.figures import style
from rankbook.store import atomic
from rankbook.store import paths
from rankbook.figures import spectra as plots
from rankbook.settings import profiles
from rankbook.training import loop as train
from rankbook.settings.vit import PROFILES

profile = profiles.resolve(profile)
settings = profiles.select(PROFILES, profile, epochs=epochs, train_subset=train_subset, lr=lr,
                           datasets=(dataset,) if dataset else None)
print(f"profile {profile}: {settings}")

# %% [markdown]
# ## Train, or reuse a stored run
#
# A run is keyed by its full configuration; a finished run with the same key
# (in the repository's `results/` or in `_build/results/`) is loaded instead
# of trained again. Chapter 05 reuses this default-scale run.

# %%
runs = {ds: [train.run(settings, ds, settings.init_scale, seed) for seed in settings.seeds]
        for ds in settings.datasets}
for ds, rs in runs.items():
    for r in rs:
        print(f"{ds} seed {r.config['seed']}: test accuracy {r.manifest['final_test_acc']:.3f} after "
              f"{r.manifest['total_steps']} iterations, trained in {r.manifest['wall_s']:.0f} s on "
              f"{r.manifest['device']} ({r.path.name})")

# %% [markdown]
# Three heads at random from layers 1, 3 and 5 (the same heads in every figure).

# %%
rng = np.random.default_rng(0)
layers = [layer for layer in (0, 2, 4) if layer < settings.depth]
heads = [(layer, int(rng.integers(settings.heads))) for layer in layers]
summary = {"profile": profile, "settings": settings.as_dict(), "datasets": {}}

# %% [markdown]
# ## Normalized spectra at initialization and of Δ during training (Figs. 1a, 11)

# %%
for ds, rs in runs.items():
    style.show(plots.spectra_over_training(rs[0], profile, heads))

# %%
def top_share(result, kind, step_index=-1):
    """Fraction of ‖Δ‖_F² in the top singular value, averaged over all heads."""
    s = result.arrays[f"delta_{kind}"][step_index]
    return float(np.mean(s[..., 0] ** 2 / (s ** 2).sum(-1)))


for ds, rs in runs.items():
    r = rs[0]
    init = {k: r.arrays[f"init_{k}"] for k in ("qk", "vo")}
    init_share = {k: float(np.mean(v[..., 0] ** 2 / (v ** 2).sum(-1))) for k, v in init.items()}
    display(Markdown(
        f"**{ds}. Paper:** the normalized spectrum of Δ falls off much faster than that of the product at "
        f"initialization. **This run** (all {settings.depth}×{settings.heads} heads, iteration "
        f"{r.arrays['step'][-1]}): the top singular value carries {top_share(r, 'qk'):.0%} of "
        f"‖ΔW_K W_Q^T‖_F² and {top_share(r, 'vo'):.0%} of ‖ΔW_V W_O^T‖_F², against {init_share['qk']:.0%} and "
        f"{init_share['vo']:.0%} for the products at initialization."))

# %% [markdown]
# ## Spectrum of Δ against initialization (Fig. 5)

# %%
for ds, rs in runs.items():
    style.show(plots.delta_vs_init(rs[0], profile, heads, kind="qk"))

# %% [markdown]
# ## Stable rank through training (Fig. 12)
#
# Mean ± std over the heads of each layer. Dotted: the product at
# initialization. Dashed: the null reference, a random product of Gaussian
# factors with Δ's shape and rank (2·d_head), which has no low-rank structure
# beyond its rank.

# %%
for ds, rs in runs.items():
    style.show(plots.stable_rank_through_training(rs[0], profile))
    display(plots.stable_rank_table(rs[0]))

# %%
for ds, rs in runs.items():
    r = rs[0]
    early = int(np.argmax(r.arrays["step"] > 0))
    msg = []
    for kind, name in (("qk", "ΔW_K W_Q^T"), ("vo", "ΔW_V W_O^T")):
        first, last = plots.layer_stable_ranks(r, kind, early), plots.layer_stable_ranks(r, kind)
        init = float(np.mean(r.arrays[f"stable_rank_init_{kind}"]))
        msg.append(f"{name}: {first.mean():.2f} at iteration {r.arrays['step'][early]} → {last.mean():.2f} at "
                   f"iteration {r.arrays['step'][-1]} (layers {last.min():.2f}–{last.max():.2f}; "
                   f"{'rose' if last.mean() > first.mean() else 'did not rise'}), against {init:.2f} at "
                   f"initialization")
    null = plots.null_rank(r)["stable_rank_mean"]
    display(Markdown(
        f"**{ds}. Paper:** the stable rank of Δ is far below that of a generic matrix and increases gradually. "
        f"**This run** (mean over heads and layers): " + "; ".join(msg) +
        f"; a random rank-{2 * r.config['d_head']} matrix of the same shape has {null:.2f}."))
    if len(rs) > 1:
        display(plots.seeds_table(rs, "qk"))
    summary["datasets"][ds] = {"runs": [plots.run_summary(x) for x in rs],
                               "top_share_qk": top_share(r, "qk"), "top_share_vo": top_share(r, "vo")}

# %%
out = atomic.write_json(paths.output_dir(profile, "04_vit_spectra") / "summary.json", summary)
print(f"key numbers written to {out}")

# %% [markdown]
# ## Explore the spectra yourself
#
# In Jupyter or Colab, the panel below lets you pick any layer, head,
# tracked iteration and matrix of the first run. Widgets need a running
# kernel, so on the static site the panel is inert; the animation after it
# plays the same plot through every tracked iteration for one head (use its
# slider and buttons).

# %%
from rankbook.figures import explorer  # noqa: E402

first_run = next(iter(runs.values()))[0]
explorer.spectra_explorer(first_run, profile)

# %%
layer, head = heads[0]
explorer.spectra_animation(first_run, profile, layer, head, kind="qk")
