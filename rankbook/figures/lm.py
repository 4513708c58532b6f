"""Figures and numbers of the language-model chapter (06) and the LoRA chapter (07).

Built on :mod:`rankbook.figures.spectra` (figure frame, white background, title line,
log-spaced iteration picking, the rank-2·d_head null reference); only the
title line (:func:`describe`) and the LM/LoRA figures are new. Layers are
numbered from 1 in titles.
"""
from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from rankbook.analysis import lora
from rankbook.figures import spectra as plots
from rankbook.figures import style
from rankbook.analysis import spectra
from rankbook.store.results import Result
from rankbook.figures.tables import Table

EVAL_LOSS = "eval_loss"


def describe(result: Result, profile: str) -> str:
    """One line: text, profile and key settings of an LM run."""
    c = result.config
    return (f"{c['corpus']} (train: {c['train_split']}, eval: {c['eval_split']}; {c['tokenizer']} tokens), "
            f"{profile} profile: GPT d={c['d_model']}, {c['depth']} layers × {c['heads']} heads, "
            f"d_head={c['d_head']}, context {c['context']}, {c['steps']} steps, Adam lr {c['lr']:g}, "
            f"batch {c['batch_size']}, seed {c['seed']}")


def layer_band(result: Result, kind: str, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tracked steps (> 0) and the stable rank of Δ at ``layer``: mean and std over its heads."""
    a = result.arrays
    keep = a["step"] > 0
    sr = a[f"stable_rank_delta_{kind}"][keep, layer]
    return a["step"][keep], np.nanmean(sr, 1), np.nanstd(sr, 1)


def stable_rank_and_loss(result: Result, profile: str, layers: Sequence[int]):
    """Stable rank of ΔW_K W_Q^T and ΔW_V W_O^T (mean ± std over heads) per layer, and the eval loss, vs step."""
    a = result.arrays
    null = plots.null_rank(result)
    fig, axes = style.figure(1, len(layers) + 1)
    for ax, layer in zip(axes[0], layers):
        for kind in ("qk", "vo"):
            steps, mean, std = layer_band(result, kind, layer)
            ax.plot(steps, mean, color=plots.KIND_COLOR[kind], label=f"Δ{plots.KIND_LABEL[kind]}")
            ax.fill_between(steps, mean - std, mean + std, color=plots.KIND_COLOR[kind], alpha=0.2)
            ax.axhline(a[f"stable_rank_init_{kind}"][layer].mean(), color=plots.KIND_COLOR[kind], ls=":", lw=1,
                       label=f"{plots.KIND_LABEL[kind]} at init")
        ax.axhline(null["stable_rank_mean"], color="gray", ls="--", lw=1, label="random, rank 2·d_head")
        ax.set_xscale("log")
        ax.set(title=f"layer {layer + 1}", xlabel="step", ylabel="stable rank")
    axes[0, 0].legend(fontsize=7)
    ax = axes[0, -1]
    keep = a["step"] > 0
    ax.plot(a["step"][keep], a[EVAL_LOSS][keep], "o-", ms=3, color="black", label="eval (held-out split)")
    ax.plot(a["step"][keep], a["train_loss"][keep], color="gray", lw=1, label="train (mean since last point)")
    ax.set_xscale("log")
    ax.set(title="loss (nats/token)", xlabel="step", ylabel="cross-entropy")
    ax.legend(fontsize=7)
    return style.finish(fig, "Stable rank of the attention perturbations (mean ± std over heads) and loss",
                         describe(result, profile))


def spectra_init_vs_delta(result: Result, profile: str, layers: Sequence[int], n_steps: int = 4):
    """Normalized spectra, averaged over a layer's heads: product at init (red), Δ at several steps (greens)."""
    a = result.arrays
    idx = plots.pick_steps(a["step"], n_steps)
    greens = plt.cm.Greens(np.linspace(0.35, 1.0, len(idx)))
    null = spectra.normalized(plots.null_rank(result)["svals"]).numpy()
    fig, axes = style.figure(2, len(layers))
    for row, kind in enumerate(("qk", "vo")):
        for col, layer in enumerate(layers):
            ax = axes[row, col]
            init = np.nanmean(spectra.normalized(torch.from_numpy(a[f"init_{kind}"][layer])).numpy(), 0)
            ax.plot(np.arange(1, len(init) + 1), init, color="red", lw=2, label="init")
            for color, i in zip(greens, idx):
                delta = np.nanmean(spectra.normalized(torch.from_numpy(a[f"delta_{kind}"][i, layer])).numpy(), 0)
                ax.plot(np.arange(1, len(delta) + 1), delta, color=color, label=f"Δ, step {a['step'][i]}")
            ax.plot(np.arange(1, len(null) + 1), null, color="gray", ls="--", lw=1, label="random, rank 2·d_head")
            ax.set(title=f"{plots.KIND_LABEL[kind]}: layer {layer + 1} (mean over heads)",
                   xlabel="singular value index", ylabel="normalized singular value")
            ax.set_ylim(0, 1.05)
    axes[0, -1].legend(fontsize=7, loc="upper right")
    return style.finish(fig, "Normalized spectra: initialization (red) vs learned perturbation Δ (green)",
                         describe(result, profile))


def stable_rank_rows(result: Result, layers: Sequence[int], step_index: int = -1) -> list[dict]:
    """Per layer: stable rank of Δ (mean, std over heads), of the initial product, and of the null."""
    a = result.arrays
    null = plots.null_rank(result)["stable_rank_mean"]
    rows = []
    for layer in layers:
        row = {"layer": layer + 1}
        for kind in ("qk", "vo"):
            sr = a[f"stable_rank_delta_{kind}"][step_index, layer]
            row[f"Δ{kind} mean"], row[f"Δ{kind} std"] = float(np.nanmean(sr)), float(np.nanstd(sr))
            row[f"init {kind}"] = float(np.mean(a[f"stable_rank_init_{kind}"][layer]))
        row["random rank-2·d_head"] = null
        rows.append(row)
    return rows


def stable_rank_table(result: Result, layers: Sequence[int], step_index: int = -1) -> Table:
    step = int(result.arrays["step"][step_index])
    return Table(stable_rank_rows(result, layers, step_index), digits=3,
                 title=f"Stable rank at step {step} (mean and std over {result.config['heads']} heads)")


# --------------------------------------------------------------------------- chapter 07


def recovery_ranks(sweep: Mapping[str, np.ndarray], fractions: Sequence[float] = (0.95, 0.99)) -> dict[float, int | None]:
    """The smallest swept rank recovering each fraction of the full model's gain over rank 0."""
    return {f: lora.recovery_rank(sweep["rank"], sweep["truncated"], f) for f in fractions}


def rank_sweep_figure(sweeps: Mapping[str, Mapping[str, np.ndarray]], ylabels: Mapping[str, str],
                      subtitles: Mapping[str, str], title: str):
    """Metric against the rank of every attention update: truncated Δ (green) vs random same-norm null (gray)."""
    fig, axes = style.figure(1, len(sweeps), width=6.0, height=4.6)
    for ax, (name, sw) in zip(axes[0], sweeps.items()):
        x = np.maximum(sw["rank"], 0.5)  # rank 0 drawn at 0.5 on the log axis
        ax.plot(x, sw["truncated"], "o-", color="green", label="W₀ + [Δ]_r")
        ax.errorbar(x, sw["null"], yerr=sw["null_std"], fmt="s--", color="gray", ms=4, capsize=2,
                    label="W₀ + random rank r, same norm")
        for frac, linestyle in ((0.95, ":"), (0.99, "-.")):
            r = lora.recovery_rank(sw["rank"], sw["truncated"], frac)
            if r is not None:
                ax.axvline(max(r, 0.5), color="black", ls=linestyle, lw=1, label=f"{frac:.0%} recovered: r={r}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, ["0"] + [str(int(r)) for r in sw["rank"][1:]])
        ax.set(title=f"{name}\n" + textwrap.fill(subtitles[name], 80), xlabel="rank r of every attention update (fused per layer)",
               ylabel=ylabels[name])
        ax.title.set_fontsize(8)
        ax.legend(fontsize=7)
    fig.patch.set_facecolor("white")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def sweep_table(name: str, sweep: Mapping[str, np.ndarray], metric: str) -> Table:
    """Rank, metric of the truncated and of the null model, and the fraction of the gain recovered."""
    rec = lora.recovered_fraction(sweep["truncated"], sweep["truncated"][0], sweep["truncated"][-1])
    rec_null = lora.recovered_fraction(sweep["null"], sweep["truncated"][0], sweep["truncated"][-1])
    rows = [{"rank r": int(r), f"{metric}, [Δ]_r": float(t), f"{metric}, random": float(n),
             "recovered, [Δ]_r": float(a), "recovered, random": float(b)}
            for r, t, n, a, b in zip(sweep["rank"], sweep["truncated"], sweep["null"], rec, rec_null)]
    return Table(rows, digits=4, title=f"{name}: {metric} with every attention update cut to rank r")


def lora_vs_truncation(sweep: Mapping[str, np.ndarray], adapters: Mapping[int, Result], full: Result,
                       profile: str):
    """Eval loss against rank: the trained model cut to rank r (green) and rank-r adapters trained from init (blue)."""
    fig, axes = style.figure(1, 1, width=6.5, height=4.6)
    ax = axes[0, 0]
    x = np.maximum(sweep["rank"], 0.5)
    ax.plot(x, sweep["truncated"], "o-", color="green", label="full training, then W₀ + [Δ]_r")
    ranks = sorted(adapters)
    ax.plot(ranks, [adapters[r].manifest["final_eval_loss"] for r in ranks], "D-", color="tab:blue", ms=7,
            label="rank-r adapters trained from init (LoRA)")
    ax.axhline(full.manifest["final_eval_loss"], color="black", ls="--", lw=1, label="full training")
    ax.axhline(sweep["truncated"][0], color="gray", ls=":", lw=1, label="attention at init, rest trained")
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, ["0"] + [str(int(r)) for r in sweep["rank"][1:]])
    ax.set(xlabel="rank r of every attention update (fused per layer)", ylabel="eval loss (nats/token)")
    ax.legend(fontsize=8)
    return style.finish(fig, "Truncating a fully trained update vs training a rank-r adapter (same steps and data)",
                         textwrap.fill(describe(full, profile), 110))


def lora_table(sweep: Mapping[str, np.ndarray], adapters: Mapping[int, Result], full: Result) -> Table:
    """Per adapter rank: eval loss of the adapter run, of the truncated full run, and the stable ranks of Δ."""
    ranks = list(sweep["rank"])
    rows = []
    for r in sorted(adapters):
        a = adapters[r].arrays
        rows.append({"rank r": r, "LoRA from init": adapters[r].manifest["final_eval_loss"],
                     "full training cut to r": float(sweep["truncated"][ranks.index(r)]) if r in ranks else float("nan"),
                     "full training": full.manifest["final_eval_loss"],
                     "stable rank ΔW_KW_Q^T (LoRA)": float(np.nanmean(a["stable_rank_delta_qk"][-1])),
                     "stable rank ΔW_KW_Q^T (full)": float(np.nanmean(full.arrays["stable_rank_delta_qk"][-1])),
                     "train s": adapters[r].manifest["wall_s"]})
    return Table(rows, digits=4, title="LoRA adapters trained from initialization vs truncating full training")
