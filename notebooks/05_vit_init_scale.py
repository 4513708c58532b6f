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
# # Vision transformers: smaller initialization, lower rank
#
# The theory predicts incremental, low-rank learning as the initialization
# scale goes to zero. The paper tests this on the vision transformer of
# chapter 04 by multiplying the initial values of every layer except the
# token mapper (patch embedding, class token, position embeddings) by a scale
# factor, 1 being the default initialization. Its claims (section 5):
#
# * the singular values of Δ in a head are learned one after another,
#   more visibly at small scales (Fig. 3, a random head of layer 2);
# * the stable rank of $\Delta W_K W_Q^\top$ after training decreases with the
#   initialization scale, at layers 1, 3 and 5 (Fig. 4, mean ± std over heads).
#
# The paper does not list its scale values; the profiles sweep 1, 0.3 and
# 0.1 (at 0.01 the fast run never left its initial plateau: the gradients of
# $W_Q, W_K$ start far below Adam's $\epsilon$; see `rankbook.settings.vit`).
# The default-scale run is the one of chapter 04, reused from disk.

# %% tags=["parameters"]
profile: str = ""  # "fast" (CPU, minutes) or "paper" (GPU, the paper's settings); empty: $RANKBOOK_PROFILE, else "fast"
dataset: str = ""  # "cifar10", "cifar100" or "imagenet"; empty: the profile's data sets (paper: CIFAR-10 and CIFAR-100)
epochs: int = None  # override the profile's training epochs
train_subset: int = None  # override the number of training images (0: the whole split)
lr: float = None  # override Adam's base learning rate
init_scales: list = None  # override the swept init scales, e.g. [1.0, 0.1, 0.01]

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
from rankbook.figures.tables import Table
from rankbook.settings.vit import PROFILES

profile = profiles.resolve(profile)
settings = profiles.select(PROFILES, profile, epochs=epochs, train_subset=train_subset, lr=lr,
                           init_scales=tuple(init_scales) if init_scales else None,
                           datasets=(dataset,) if dataset else None)
print(f"profile {profile}: init scales {settings.init_scales}, seeds {settings.seeds}, data {settings.datasets}")

# %% [markdown]
# ## Train one run per scale and seed, or reuse stored runs

# %%
runs = {ds: {scale: [train.run(settings, ds, scale, seed) for seed in settings.seeds]
             for scale in settings.init_scales} for ds in settings.datasets}
Table([{"data": ds, "init scale": scale, "seed": r.config["seed"], "test accuracy": r.manifest["final_test_acc"],
        "iterations": r.manifest["total_steps"], "train time (s)": r.manifest["wall_s"], "run": r.path.name}
       for ds, by_scale in runs.items() for scale, rs in by_scale.items() for r in rs], title="Runs")

# %% [markdown]
# ## Singular values of Δ through training, per scale (Fig. 3)
#
# A head of layer 2 chosen at random; one curve per singular value.

# %%
layer = min(1, settings.depth - 1)
head = int(np.random.default_rng(0).integers(settings.heads))
for ds, by_scale in runs.items():
    style.show(plots.delta_evolution_per_scale({s: rs[0] for s, rs in by_scale.items()}, profile, layer, head))

# %%
def gap(result, kind):
    """Ratio of the largest to the second singular value of Δ in the chosen head, at the end."""
    s = result.arrays[f"delta_{kind}"][-1, layer, head]
    return float(s[0] / s[1])


for ds, by_scale in runs.items():
    parts = [f"scale {s:g}: σ1/σ2 = {gap(rs[0], 'qk'):.1f} (ΔW_K W_Q^T), {gap(rs[0], 'vo'):.1f} (ΔW_V W_O^T)"
             for s, rs in sorted(by_scale.items(), reverse=True)]
    display(Markdown(f"**{ds}. Paper:** singular values of Δ emerge one at a time, more clearly at smaller "
                     f"scales. **This run** (layer {layer + 1}, head {head + 1}, last iteration): "
                     + "; ".join(parts) + "."))

# %% [markdown]
# ## Stable rank per initialization scale at layers 1, 3, 5 (Fig. 4)

# %%
layers = [x for x in (0, 2, 4) if x < settings.depth]
for ds, by_scale in runs.items():
    style.show(plots.stable_rank_per_scale({s: rs[0] for s, rs in by_scale.items()}, profile, layers))

# %%
summary = {"profile": profile, "settings": settings.as_dict(), "datasets": {}}
for ds, by_scale in runs.items():
    rows, per_scale = [], {}
    for scale, rs in sorted(by_scale.items()):
        sr = np.array([[r.arrays["stable_rank_delta_qk"][-1, x] for x in layers] for r in rs])  # [seeds, layers, heads]
        per_scale[scale] = np.nanmean(sr, axis=(0, 2))
        rows += [{"init scale": scale, "layer": x + 1, "stable rank mean (heads, seeds)": float(np.nanmean(sr[:, i])),
                  "std over heads": float(np.nanstd(sr[:, i], axis=-1).mean()), "seeds": len(rs)}
                 for i, x in enumerate(layers)]
    display(Table(rows, digits=3, title=f"{ds}: stable rank of ΔW_K W_Q^T after training"))
    scales = sorted(per_scale)
    monotone = [all(per_scale[a][i] <= per_scale[b][i] for a, b in zip(scales, scales[1:]))
                for i in range(len(layers))]
    display(Markdown(
        f"**{ds}. Paper:** smaller initialization scales give lower-rank heads. **This run:** mean stable "
        f"rank over layers {', '.join(str(x + 1) for x in layers)} is "
        + ", ".join(f"{per_scale[s].mean():.2f} at scale {s:g}" for s in scales)
        + f"; it does not decrease as the scale grows at {sum(monotone)} of {len(layers)} layers."))
    summary["datasets"][ds] = {"stable_rank_qk_by_scale_and_layer": {f"{s:g}": per_scale[s] for s in scales},
                               "layers": [x + 1 for x in layers], "increases_with_scale_per_layer": monotone,
                               "runs": {f"{s:g}": [plots.run_summary(r) for r in rs] for s, rs in by_scale.items()}}

# %%
out = atomic.write_json(paths.output_dir(profile, "05_vit_init_scale") / "summary.json", summary)
print(f"key numbers written to {out}")
