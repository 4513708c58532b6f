"""One function per paper figure of the ViT chapters, plus the numbers shown beside them.

Layers are numbered from 1 in titles (the paper's "layers 1, 3, 5" are the
first, third and fifth blocks; array index = layer - 1). Every figure gets a
white background and a title line stating data, profile and key settings
(:func:`describe`). Iteration axes are logarithmic; iteration 0 (where
Δ = 0 and the stable rank is undefined) is left out of them.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from rankbook.analysis import spectra
from rankbook.store.results import Result
from rankbook.figures import style
from rankbook.figures.tables import Table

KIND_LABEL = {"qk": r"$W_K W_Q^\top$", "vo": r"$W_V W_O^\top$"}
KIND_COLOR = {"qk": "tab:blue", "vo": "tab:red"}


def describe(result: Result, profile: str) -> str:
    """One line: data, profile and key settings of a run."""
    c, m = result.config, result.manifest
    data = f"{c['dataset'].upper()} ({m.get('train_images', '?')} train images)"
    return (f"{data}, {profile} profile: ViT d={c['d_model']}, {c['depth']} layers × {c['heads']} heads, "
            f"d_head={c['d_head']}, {c['epochs']} epochs, Adam lr {c['lr']:g}, batch {c['batch_size']}, "
            f"init scale {c['init_scale']:g}, seed {c['seed']}")


def pick_steps(steps: np.ndarray, count: int) -> list[int]:
    """Indices of ``count`` tracked iterations spread on a log scale, excluding 0, always with the last."""
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


# --------------------------------------------------------------------------- Fig. 1a / 11


def spectra_over_training(result: Result, profile: str, heads: Sequence[tuple[int, int]], kinds=("qk", "vo"),
                          n_steps: int = 5):
    """Fig. 1a/11: normalized spectrum at init (red) and of Δ at several iterations (greens), per head.

    ``heads`` are (layer index, head index) pairs; rows are ``kinds``.
    """
    a = result.arrays
    idx = pick_steps(a["step"], n_steps)
    greens = plt.cm.Greens(np.linspace(0.35, 1.0, len(idx)))
    null = spectra.normalized(null_rank(result)["svals"]).numpy()
    fig, axes = style.figure(len(kinds), len(heads))
    for row, kind in enumerate(kinds):
        for col, (layer, head) in enumerate(heads):
            ax = axes[row, col]
            init = spectra.normalized(torch.from_numpy(a[f"init_{kind}"][layer, head])).numpy()
            ax.plot(np.arange(1, len(init) + 1), init, color="red", lw=2, label="init")
            for color, i in zip(greens, idx):
                delta = spectra.normalized(torch.from_numpy(a[f"delta_{kind}"][i, layer, head])).numpy()
                ax.plot(np.arange(1, len(delta) + 1), delta, color=color, label=f"Δ, iter {a['step'][i]}")
            ax.plot(np.arange(1, len(null) + 1), null, color="gray", ls="--", lw=1, label="random, rank 2·d_head")
            ax.set(title=f"{KIND_LABEL[kind]}: layer {layer + 1}, head {head + 1}", xlabel="singular value index",
                   ylabel="normalized singular value")
            ax.set_ylim(0, 1.05)
    axes[0, -1].legend(fontsize=7, loc="upper right")
    return style.finish(fig, "Normalized spectra: initialization (red) vs learned perturbation Δ (green)",
                   describe(result, profile))


# --------------------------------------------------------------------------- Fig. 5


def delta_vs_init(result: Result, profile: str, heads: Sequence[tuple[int, int]], kind: str = "qk"):
    """Fig. 5: singular values of Δ at the end of training against those of the initial product, per head."""
    a = result.arrays
    fig, axes = style.figure(1, len(heads))
    for col, (layer, head) in enumerate(heads):
        ax = axes[0, col]
        init, delta = a[f"init_{kind}"][layer, head], a[f"delta_{kind}"][-1, layer, head]
        ax.semilogy(np.arange(1, len(init) + 1), init, "o-", color="red", ms=3, label="initialization")
        ax.semilogy(np.arange(1, len(delta) + 1), np.maximum(delta, 1e-12), "o-", color="green", ms=3,
                    label=f"Δ after {a['step'][-1]} iterations")
        ax.set(title=f"layer {layer + 1}, head {head + 1}", xlabel="singular value index",
               ylabel="singular value")
    axes[0, 0].legend(fontsize=8)
    return style.finish(fig, f"Spectrum of Δ{KIND_LABEL[kind]} vs initialization (final iteration)",
                   describe(result, profile))


# --------------------------------------------------------------------------- Fig. 12


def stable_rank_through_training(result: Result, profile: str, layers: Sequence[int] | None = None):
    """Fig. 12: stable rank of ΔW_K W_Q^T (blue) and ΔW_V W_O^T (red), mean ± std over a layer's heads."""
    a = result.arrays
    layers = range(result.config["depth"]) if layers is None else layers
    keep = a["step"] > 0
    null = null_rank(result)
    cols = min(3, len(layers))
    fig, axes = style.figure(int(np.ceil(len(layers) / cols)), cols)
    for ax, layer in zip(axes.flat, layers):
        for kind in ("qk", "vo"):
            sr = a[f"stable_rank_delta_{kind}"][keep, layer]  # [points, heads]
            mean, std = np.nanmean(sr, 1), np.nanstd(sr, 1)
            ax.plot(a["step"][keep], mean, color=KIND_COLOR[kind], label=f"Δ{KIND_LABEL[kind]}")
            ax.fill_between(a["step"][keep], mean - std, mean + std, color=KIND_COLOR[kind], alpha=0.2)
            ax.axhline(a[f"stable_rank_init_{kind}"][layer].mean(), color=KIND_COLOR[kind], ls=":", lw=1,
                       label=f"{KIND_LABEL[kind]} at init")
        ax.axhline(null["stable_rank_mean"], color="gray", ls="--", lw=1, label="random, rank 2·d_head")
        ax.set_xscale("log")
        ax.set(title=f"layer {layer + 1}", xlabel="iteration", ylabel="stable rank")
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    return style.finish(fig, "Stable rank through training (mean ± std over heads)", describe(result, profile))


# --------------------------------------------------------------------------- Fig. 3


def delta_evolution_per_scale(results_by_scale: Mapping[float, Result], profile: str, layer: int, head: int,
                              top: int | None = None):
    """Fig. 3: every singular value of ΔW_K W_Q^T (top row) and ΔW_V W_O^T (bottom) of one head over training,
    one column per init scale."""
    scales = sorted(results_by_scale, reverse=True)
    fig, axes = style.figure(2, len(scales))
    for col, scale in enumerate(scales):
        a = results_by_scale[scale].arrays
        keep = a["step"] > 0
        for row, kind in enumerate(("qk", "vo")):
            ax = axes[row, col]
            svals = a[f"delta_{kind}"][keep, layer, head][:, :top]
            colors = plt.cm.viridis(np.linspace(0, 0.9, svals.shape[1]))
            for j in range(svals.shape[1]):
                ax.plot(a["step"][keep], svals[:, j], color=colors[j], lw=1)
            ax.set_xscale("log")
            ax.set(title=f"Δ{KIND_LABEL[kind]}, init scale {scale:g}", xlabel="iteration", ylabel="singular value")
    any_result = results_by_scale[scales[0]]
    return style.finish(fig, f"Singular values of Δ in layer {layer + 1}, head {head + 1}, per init scale",
                   describe(any_result, profile).rsplit(", init scale", 1)[0])


# --------------------------------------------------------------------------- Fig. 4


def stable_rank_per_scale(results_by_scale: Mapping[float, Result], profile: str, layers: Sequence[int] = (0, 2, 4),
                          kind: str = "qk"):
    """Fig. 4: final stable rank of ΔW_K W_Q^T per init scale at the given layers, mean ± std over heads."""
    scales = sorted(results_by_scale)
    fig, axes = style.figure(1, 1, width=5.5, height=4)
    ax = axes[0, 0]
    width = 0.8 / len(layers)
    for k, layer in enumerate(layers):
        sr = np.array([results_by_scale[s].arrays[f"stable_rank_delta_{kind}"][-1, layer] for s in scales])
        ax.bar(np.arange(len(scales)) + (k - (len(layers) - 1) / 2) * width, np.nanmean(sr, 1), width,
               yerr=np.nanstd(sr, 1),
               capsize=3, label=f"layer {layer + 1}")
    null = null_rank(results_by_scale[scales[0]])
    ax.axhline(null["stable_rank_mean"], color="gray", ls="--", lw=1, label="random, rank 2·d_head")
    ax.set_xticks(np.arange(len(scales)), [f"{s:g}" for s in scales])
    ax.set(xlabel="init scale (1 = default)", ylabel=f"stable rank of Δ{KIND_LABEL[kind]}")
    ax.legend(fontsize=8)
    any_result = results_by_scale[scales[0]]
    return style.finish(fig, f"Stable rank of Δ{KIND_LABEL[kind]} after training, per init scale (mean ± std over heads)",
                   describe(any_result, profile).rsplit(", init scale", 1)[0])


# --------------------------------------------------------------------------- numbers beside the figures


def stable_rank_summary(result: Result, step_index: int = -1) -> list[dict]:
    """Per layer: stable rank (mean ± std over heads) of Δ and of the initial product, for qk and vo."""
    a = result.arrays
    null = null_rank(result)
    rows = []
    for layer in range(result.config["depth"]):
        row = {"layer": layer + 1}
        for kind in ("qk", "vo"):
            sr = a[f"stable_rank_delta_{kind}"][step_index, layer]
            row[f"Δ{kind} mean"] = float(np.nanmean(sr))  # NaN: a head whose Δ is exactly 0
            row[f"Δ{kind} std"] = float(np.nanstd(sr))
            row[f"init {kind} mean"] = float(np.mean(a[f"stable_rank_init_{kind}"][layer]))
        row["random rank-2·d_head"] = null["stable_rank_mean"]
        rows.append(row)
    return rows


def stable_rank_table(result: Result, step_index: int = -1) -> Table:
    step = int(result.arrays["step"][step_index])
    return Table(stable_rank_summary(result, step_index), digits=3,
                 title=f"Stable rank at iteration {step} (mean and std over {result.config['heads']} heads)")


def layer_stable_ranks(result: Result, kind: str, step_index: int = -1) -> np.ndarray:
    """Stable rank of Δ per layer, averaged over heads, at one tracked iteration: ``[layers]``."""
    return np.nanmean(result.arrays[f"stable_rank_delta_{kind}"][step_index], axis=-1)


def run_summary(result: Result) -> dict:
    """The key numbers of one run, for a chapter's JSON summary."""
    a, m = result.arrays, result.manifest
    return {"config_key": m["key"], "path": str(result.path), "device": m["device"], "wall_s": m["wall_s"],
            "final_test_acc": m.get("final_test_acc"), "final_iteration": int(a["step"][-1]),
            "stable_rank_per_layer": stable_rank_summary(result),
            "null_reference_rank_2dhead": null_rank(result)["stable_rank_mean"]}


def seeds_table(results_per_seed: Sequence[Result], kind: str = "qk") -> Table:
    """Per layer: final stable rank of Δ (mean over heads), mean ± std over seeds, and test accuracy."""
    per_seed = np.array([layer_stable_ranks(r, kind) for r in results_per_seed])  # [seeds, layers]
    acc = np.array([r.manifest.get("final_test_acc", np.nan) for r in results_per_seed])
    rows = [{"layer": layer + 1, f"Δ{kind} stable rank (mean over seeds)": float(per_seed[:, layer].mean()),
             "std over seeds": float(per_seed[:, layer].std())} for layer in range(per_seed.shape[1])]
    return Table(rows, digits=3, title=f"{len(results_per_seed)} seed(s); test accuracy "
                                       f"{acc.mean():.3f} ± {acc.std():.3f}")

