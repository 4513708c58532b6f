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
# # Language models: is the perturbation low-rank there too?
#
# The paper's experiments on incremental rank growth are on vision
# transformers; its claim is about transformers trained from small
# initialization in general. This chapter asks the same question of a
# GPT-2-style causal language model: for every head, how does the stable rank
# $\|\Delta\|_F^2/\|\Delta\|_2^2$ of
# $\Delta W_K W_Q^\top = W_K W_Q^\top - W_K(0) W_Q(0)^\top$ and of
# $\Delta W_V W_O^\top$ evolve through training, and how do the spectra of
# $\Delta$ compare with those of the products at initialization?
#
# The model (`rankbook.models.gpt`) is GPT-2 (pre-norm, learned positions, GELU MLP,
# tied embeddings, GPT-2's initialization) with each head's
# $W_Q, W_K, W_V, W_O$ held as explicit tensors and no Q/K/V biases, so the
# attention logits are exactly $X W_Q W_K^\top X^\top$. The training loop,
# tracker and results store are the ViT chapters' (`rankbook.training.loop`).
#
# Data. The `paper` profile is GPT-2 small (12 layers, 12 heads, width 768,
# context 1024) on WikiText-103 with GPT-2's BPE, downloaded when online.
# The `fast` profile has no network and no WikiText-2 train split: it
# **trains on the WikiText-2 validation split and evaluates on the WikiText-2
# test split**, with byte-level tokens (vocabulary 256) and a 4-layer model of
# width 64, for a few hundred steps, so its losses are far from a real
# language model's.

# %% tags=["parameters"]
profile: str = ""  # "fast" (CPU, minutes) or "paper" (GPU, the paper's settings); empty: $RANKBOOK_PROFILE, else "fast"
steps: int = None  # override the profile's training steps
lr: float = None  # override Adam's base learning rate
tokenizer: str = ""  # "bytes" or "gpt2" (GPT-2 BPE via tiktoken/transformers, else bytes); empty: the profile's

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
from rankbook.training import lm
from rankbook.figures import lm as lm_plots
from rankbook.store import paths
from rankbook.figures import spectra as plots
from rankbook.settings import profiles
from rankbook.settings.lm import PROFILES

profile = profiles.resolve(profile)
settings = profiles.select(PROFILES, profile, steps=steps, lr=lr, tokenizer=tokenizer or None)
print(f"profile {profile}: {settings}")

# %% [markdown]
# ## Train, or reuse a stored run
#
# A run is keyed by its full configuration; a finished run with the same key
# is loaded instead of trained again. Chapter 07 reuses this run.

# %%
runs = [lm.run(settings, seed) for seed in settings.seeds]
for r in runs:
    m = r.manifest
    print(f"seed {r.config['seed']}: eval loss {m['final_eval_loss']:.3f} nats/token after {m['total_steps']} steps, "
          f"trained in {m['wall_s']:.0f} s on {m['device']} ({r.path.name})\n  train: {m['data']['train']}\n"
          f"  eval:  {m['data']['eval']}")
result = runs[0]
layers = [layer - 1 for layer in settings.layers_shown]

# %% [markdown]
# ## Stable rank through training, with the validation loss
#
# Mean ± std over the heads of each layer shown. Dotted: the product at
# initialization. Dashed: the null reference, a random product of Gaussian
# factors with Δ's shape and rank (2·d_head), which has no structure beyond
# its rank.

# %%
style.show(lm_plots.stable_rank_and_loss(result, profile, layers))
display(lm_plots.stable_rank_table(result, layers))

# %%
a = result.arrays
early = int(np.argmax(a["step"] > 0))
null = plots.null_rank(result)["stable_rank_mean"]
lines = []
for kind, name in (("qk", "ΔW_K W_Q^T"), ("vo", "ΔW_V W_O^T")):
    first, last = plots.layer_stable_ranks(result, kind, early), plots.layer_stable_ranks(result, kind)
    init = float(np.mean(a[f"stable_rank_init_{kind}"]))
    lines.append(f"{name}: {first.mean():.2f} at step {a['step'][early]} → {last.mean():.2f} at step {a['step'][-1]} "
                 f"(layers {last.min():.2f}–{last.max():.2f}; {'rose' if last.mean() > first.mean() else 'did not rise'}), "
                 f"against {init:.2f} for the product at initialization")
display(Markdown(
    "**Paper (ViTs):** the stable rank of Δ is far below that of a generic matrix and grows gradually. "
    f"**This run** (mean over all {settings.depth}×{settings.heads} heads): " + "; ".join(lines) +
    f"; a random rank-{2 * settings.d_head} matrix of the same shape has {null:.2f}. The eval loss fell from "
    f"{a['eval_loss'][0]:.3f} to {a['eval_loss'][-1]:.3f} nats/token."))

# %% [markdown]
# ## Normalized spectra: initialization against Δ
#
# Each curve is the normalized spectrum (singular values over the largest)
# averaged over a layer's heads.

# %%
style.show(lm_plots.spectra_init_vs_delta(result, profile, layers))


# %%
def top_share(svals):
    """Fraction of ‖A‖_F² in the top singular value, averaged over heads."""
    return float(np.mean(svals[..., 0] ** 2 / (svals ** 2).sum(-1)))


shares = {kind: (top_share(a[f"delta_{kind}"][-1]), top_share(a[f"init_{kind}"])) for kind in ("qk", "vo")}
display(Markdown(
    "**Paper (ViTs):** the normalized spectrum of Δ falls off much faster than that of the product at "
    f"initialization. **This run** (all heads, step {a['step'][-1]}): the top singular value carries "
    f"{shares['qk'][0]:.0%} of ‖ΔW_K W_Q^T‖_F² and {shares['vo'][0]:.0%} of ‖ΔW_V W_O^T‖_F², against "
    f"{shares['qk'][1]:.0%} and {shares['vo'][1]:.0%} for the products at initialization."))

# %%
summary = {"profile": profile, "settings": settings.as_dict(),
           "runs": [{"config_key": r.manifest["key"], "path": str(r.path), "device": r.manifest["device"],
                     "wall_s": r.manifest["wall_s"], "final_eval_loss": r.manifest["final_eval_loss"],
                     "initial_eval_loss": float(r.arrays["eval_loss"][0]), "final_step": int(r.arrays["step"][-1]),
                     "stable_rank": lm_plots.stable_rank_rows(r, range(settings.depth))} for r in runs],
           "null_reference_rank_2dhead": null,
           "top_share": {k: {"delta": v[0], "init": v[1]} for k, v in shares.items()}}
out = atomic.write_json(paths.output_dir(profile, "06_language") / "summary.json", summary)
print(f"key numbers written to {out}")
