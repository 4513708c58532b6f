"""The command's figure: per-layer stable rank of Δ (mean ± std over heads) and every head's spectrum."""

from __future__ import annotations

import numpy as np

from rankbook.figures import style
from rankbook.figures.spectra import KIND_COLOR, KIND_LABEL
from rankbook.inspect.compare import KINDS, Comparison


def update_figure(result: Comparison, data: str, title: str = "Per-head rank of the update"):
    """Left: stable rank of ΔW_K W_Q^T and ΔW_V W_O^T per layer, mean ± std over heads, with the null
    baseline (dotted). Middle and right: every head's normalized spectrum σ_i/σ_1 of Δ (qk, vo), one line a
    head, darker for deeper layers. ``data`` names the two checkpoints (the subtitle)."""
    fig, axes = style.figure(1, 3, width=2.3, height=2.2)
    ax = axes[0, 0]
    table = result.layer_table()
    layers = np.array([row["layer"] for row in table])
    for kind in KINDS:
        mean = np.array([row[f"{kind}_mean"] for row in table])
        std = np.array([row[f"{kind}_std"] for row in table])
        ax.errorbar(
            layers,
            mean,
            yerr=std,
            color=KIND_COLOR[kind],
            marker="o",
            ms=3,
            capsize=2,
            label=f"Δ{KIND_LABEL[kind]}",
        )
    for ref in result.null.values():
        ax.axhline(ref["stable_rank_mean"], color="0.4", ls=":", lw=1.2, label="random")
    ax.set(xlabel="layer", ylabel="stable rank of Δ", ylim=(0, None))
    ax.set_xticks(layers)
    ax.legend(loc="center right")
    n = max(len(table) - 1, 1)
    for ax, kind in zip(axes[0, 1:], KINDS):
        for head in result.heads:
            if head["kind"] != kind or head["stable_rank"] is None:
                continue
            s = np.asarray(head["singular_values"])
            ax.semilogy(
                np.arange(1, len(s) + 1),
                np.maximum(s / s[0], 1e-8),
                color=KIND_COLOR[kind],
                alpha=0.25 + 0.6 * head["layer"] / n,
                lw=0.9,
            )
        ax.set(
            xlabel="index i", ylabel=r"$\sigma_i / \sigma_1$", title=f"Δ{KIND_LABEL[kind]}, every head",
            ylim=(1e-4, 1.5),
        )
    s = result.shape
    subtitle = (
        f"{data}; {s['layers']} layers × {s['heads']} heads, d_model {s['d_model']}, d_head "
        f"{s['d_head']}; error bars: std over heads"
    )
    return style.finish(fig, title, subtitle)
