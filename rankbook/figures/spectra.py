"""Spectra of Δ: one function per paper figure (Figs. 1a/11, 5, 3; arXiv v1 numbering), ViT and LM runs alike.

Layers and heads are numbered from 1 in titles (the paper's "layers 1, 3, 5"
are the first, third and fifth blocks; array index = layer - 1). Every figure
is made with :mod:`rankbook.figures.style` and its subtitle states data,
profile and key settings (:func:`describe`). Step axes are logarithmic; step 0
(where Δ = 0) is left out of them.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from rankbook.analysis import spectra
from rankbook.figures import style
from rankbook.store.results import Result

KIND_LABEL = {"qk": r"$W_K W_Q^\top$", "vo": r"$W_V W_O^\top$"}
KIND_COLOR = {"qk": "tab:blue", "vo": "tab:red"}


def describe(result: Result, profile: str) -> str:
    """One line: data, profile and key settings of a ViT (``kind == "vit"``) or language-model run."""
    c, m = result.config, result.manifest
    if c.get("kind") == "vit":
        return (
            f"{c['dataset'].upper()} ({m.get('train_images', '?')} train images), {profile} profile: "
            f"ViT d={c['d_model']}, {c['depth']} layers × {c['heads']} heads, d_head={c['d_head']}, "
            f"{c['epochs']} epochs, Adam lr {c['lr']:g}, batch {c['batch_size']}, "
            f"init scale {c['init_scale']:g}, seed {c['seed']}"
        )
    return (
        f"{c['corpus']} (train: {c['train_split']}, eval: {c['eval_split']}; {c['tokenizer']} tokens), "
        f"{profile} profile: GPT d={c['d_model']}, {c['depth']} layers × {c['heads']} heads, "
        f"d_head={c['d_head']}, context {c['context']}, {c['steps']} steps, Adam lr {c['lr']:g}, "
        f"batch {c['batch_size']}, seed {c['seed']}"
    )


def pick_steps(steps: np.ndarray, count: int) -> list[int]:
    """Indices of ``count`` tracked steps spread on a log scale, excluding 0, always with the last."""
    nonzero = np.flatnonzero(steps > 0)
    if len(nonzero) <= count:
        return nonzero.tolist()
    targets = np.geomspace(steps[nonzero[0]], steps[-1], count)
    picked = {int(nonzero[np.argmin(np.abs(np.log(steps[nonzero]) - np.log(t)))]) for t in targets}
    return sorted(picked | {len(steps) - 1})


def null_rank(result: Result, rank_factor: int = 2, samples: int = 8) -> dict:
    """Null reference for Δ: a random product of Gaussian factors of Δ's shape and rank (2·d_head)."""
    d, r = result.config["d_model"], rank_factor * result.config["d_head"]
    return spectra.null_reference((d, d), rank=min(r, d), samples=samples)


def random_heads(result: Result, layers: Sequence[int], seed: int = 0) -> list[tuple[int, int]]:
    """One head drawn at random in each of ``layers`` (index from 0): the same heads in every figure."""
    rng = np.random.default_rng(seed)
    return [(layer, int(rng.integers(result.config["heads"]))) for layer in layers]


def _normalized(svals: np.ndarray) -> np.ndarray:
    return spectra.normalized(torch.from_numpy(np.asarray(svals))).numpy()


# --------------------------------------------------------------------------- Figs. 1a / 11


def spectra_over_training(
    result: Result, profile: str, heads: Sequence[tuple[int, int]], kinds=("qk", "vo"), n_steps: int = 5
):
    """Figs. 1a/11: normalized spectrum at init (red) and of Δ at several steps (greens), per head.

    ``heads`` are (layer index, head index) pairs; rows are ``kinds``.
    """
    a = result.arrays
    idx = pick_steps(a["step"], n_steps)
    greens = plt.cm.Greens(np.linspace(0.35, 1.0, len(idx)))
    null = _normalized(null_rank(result)["svals"])
    fig, axes = style.figure(len(kinds), len(heads), height=2.4)  # the key is in the title (no legend row)
    for row, kind in enumerate(kinds):
        for col, (layer, head) in enumerate(heads):
            ax = axes[row, col]
            init = _normalized(a[f"init_{kind}"][layer, head])
            ax.plot(np.arange(1, len(init) + 1), init, color="red", lw=2, label="init")
            for color, i in zip(greens, idx):
                delta = _normalized(a[f"delta_{kind}"][i, layer, head])
                ax.plot(np.arange(1, len(delta) + 1), delta, color=color, label=f"Δ, step {a['step'][i]}")
            ax.plot(
                np.arange(1, len(null) + 1), null, color="gray", ls="--", lw=1, label="random, rank 2·d_head"
            )
            ax.set(
                title=f"{KIND_LABEL[kind]}: layer {layer + 1}, head {head + 1}",
                xlabel="index",
                ylabel="σ / σ₁" if col == 0 else "",
                ylim=(0, 1.05),
            )
    steps = ", ".join(f"{a['step'][i]:,}" for i in idx)
    return style.finish(
        fig,
        f"Normalized spectra: initialization (red) vs learned perturbation Δ (greens, darker later: steps "
        f"{steps}); dashed: random, rank 2·d_head",
        describe(result, profile),
    )


# --------------------------------------------------------------------------- Fig. 5


def delta_vs_init(result: Result, profile: str, heads: Sequence[tuple[int, int]], kind: str = "qk"):
    """Fig. 5: singular values of Δ at the end of training against those of the initial product, per head."""
    a = result.arrays
    fig, axes = style.figure(1, len(heads), height=3.0)  # the default's axes were ~100 px tall on the page
    for col, (layer, head) in enumerate(heads):
        ax = axes[0, col]
        init, delta = a[f"init_{kind}"][layer, head], a[f"delta_{kind}"][-1, layer, head]
        ax.semilogy(np.arange(1, len(init) + 1), init, "o-", color="red", ms=3, label="initialization")
        ax.semilogy(
            np.arange(1, len(delta) + 1),
            np.maximum(delta, 1e-12),
            "o-",
            color="green",
            ms=3,
            label=f"Δ after {a['step'][-1]} steps",
        )
        ax.set(
            title=f"layer {layer + 1}, head {head + 1}",
            xlabel="singular value index",
            ylabel="singular value",
        )
    # the colour key goes in the title: a legend in a panel covered the curves
    key = f"red: initialization, green: Δ after {a['step'][-1]} steps"
    return style.finish(
        fig, f"Spectrum of Δ{KIND_LABEL[kind]} vs initialization ({key})", describe(result, profile)
    )


# --------------------------------------------------------------------------- Fig. 3 (v1)

#: σ_k/σ_1 for k = 2 … RATIO_TOP in the Fig. 3 analogue
RATIO_TOP = 6


def delta_evolution_per_scale(
    results_by_scale: Mapping[float, Result | Sequence[Result]],
    profile: str,
    layer: int,
    head: int,
    top: int = RATIO_TOP,
    status: Mapping[float, str] | None = None,
    floor: float = 1e-5,
):
    """Fig. 3 (v1): ``σ_k/σ_1`` (k = 2 … ``top``) of ΔW_K W_Q^T (left) and ΔW_V W_O^T (right) of one head
    through training, one row per init scale (largest first), log-log, on one shared y-axis.

    A scale given as several runs (seeds) shows its first run's head. ``status`` (from
    :func:`rankbook.analysis.scales.statuses`) names a scale that did not train, collapsed or is partly
    aligned in its row's titles. The dotted line is ``σ_k/σ_1 = 0.01``; values under ``floor`` are drawn at
    ``floor``.
    """
    from rankbook.analysis.scales import SMALL_RATIO, as_runs

    scales = sorted(results_by_scale, reverse=True)
    kinds = ("qk", "vo")
    fig, axes = style.figure(len(scales), len(kinds), height=1.9, sharex=True, sharey=True)
    colors = plt.cm.viridis(np.linspace(0, 0.85, top - 1))
    low, lowest = 1.0, {}  # lowest ratio drawn per panel: the legend goes where the most room is below
    for row, scale in enumerate(scales):
        a = as_runs(results_by_scale[scale])[0].arrays
        keep = a["step"] > 0
        note = status.get(scale, "trained") if status else "trained"
        for col, kind in enumerate(kinds):
            ax = axes[row, col]
            s = a[f"delta_{kind}"][keep, layer, head].astype(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratios = np.maximum(s[:, 1:top] / s[:, :1], floor)
            low = min(low, float(np.nanmin(ratios)))
            lowest[row, col] = float(np.nanmin(ratios))
            for j in range(ratios.shape[1]):
                ax.plot(a["step"][keep], ratios[:, j], color=colors[j], lw=1.2,
                        label=rf"$\sigma_{{{j + 2}}}/\sigma_1$")
            ax.axhline(SMALL_RATIO, color="0.4", ls=":", lw=1)
            ax.set_xscale("log")
            ax.set_yscale("log")
            title = f"Δ{KIND_LABEL[kind]}, scale {scale:g}" + (f" ({note})" if note != "trained" else "")
            ax.set(title=title, xlabel="step" if row == len(scales) - 1 else "",
                   ylabel=r"$\sigma_k/\sigma_1$" if col == 0 else "")
    bottom = max(floor, 10 ** np.floor(np.log10(min(low, 1e-4)))) / 2  # at least 3 decades below 0.1
    axes[0, 0].set_ylim(bottom, 2)
    roomy = max(lowest, key=lowest.get)
    axes[roomy].legend(*axes[0, 0].get_legend_handles_labels(), loc="lower left", ncol=3, fontsize=9,
                       handlelength=1.2, columnspacing=0.8)
    any_result = as_runs(results_by_scale[scales[0]])[0]
    return style.finish(
        fig,
        rf"$\sigma_k/\sigma_1$ of Δ in layer {layer + 1}, head {head + 1}, per init scale "
        f"(dotted: {SMALL_RATIO:g})",
        describe(any_result, profile).rsplit(", init scale", 1)[0],
    )
