"""Chapter 07's figures and tables: attention updates cut to rank r, and rank-r adapters trained from init."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from rankbook.analysis import truncation
from rankbook.figures import style
from rankbook.figures.spectra import describe
from rankbook.figures.tables import Table
from rankbook.store.results import Result

RANK_AXIS = "rank r of every attention update (fused per layer)"


def _rank_axis(ax, ranks: np.ndarray) -> np.ndarray:
    """Log-2 rank axis with rank 0 drawn at 0.5; returns the x positions."""
    x = np.maximum(ranks, 0.5)
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, ["0"] + [str(int(r)) for r in ranks[1:]])
    ax.set_xlabel(RANK_AXIS)
    return x


def rank_sweep(sweep: Mapping[str, np.ndarray], result: Result, profile: str, ylabel: str, name: str):
    """Metric against the rank of every attention update: truncated Δ (green) vs a same-norm null (gray)."""
    fig, axes = style.figure(1, 1, width=6.5, height=4.2)
    ax = axes[0, 0]
    x = _rank_axis(ax, sweep["rank"])
    ax.plot(x, sweep["truncated"], "o-", color="green", label="W₀ + [Δ]_r")
    ax.errorbar(
        x,
        sweep["null"],
        yerr=sweep["null_std"],
        fmt="s--",
        color="gray",
        ms=4,
        capsize=2,
        label="W₀ + random rank r, same norm",
    )
    for frac, linestyle in ((0.95, ":"), (0.99, "-.")):
        r = truncation.recovery_rank(sweep["rank"], sweep["truncated"], frac)
        if r is not None:
            ax.axvline(max(r, 0.5), color="black", ls=linestyle, lw=1, label=f"{frac:.0%} recovered: r={r}")
    ax.set_ylabel(ylabel)
    ax.legend()
    return style.finish(
        fig,
        f"{name}: attention updates cut to rank r vs a random rank-r update of the same norm",
        describe(result, profile),
    )


def sweep_table(name: str, sweep: Mapping[str, np.ndarray], metric: str) -> Table:
    """Rank, metric of the truncated and of the null model, and the fraction of the gain recovered."""
    rec = truncation.recovered_fraction(sweep["truncated"], sweep["truncated"][0], sweep["truncated"][-1])
    rec_null = truncation.recovered_fraction(sweep["null"], sweep["truncated"][0], sweep["truncated"][-1])
    rows = [
        {
            "rank r": int(r),
            f"{metric}, [Δ]_r": float(t),
            f"{metric}, random": float(n),
            "recovered, [Δ]_r": float(a),
            "recovered, random": float(b),
        }
        for r, t, n, a, b in zip(sweep["rank"], sweep["truncated"], sweep["null"], rec, rec_null)
    ]
    return Table(rows, digits=4, title=f"{name}: {metric} with every attention update cut to rank r")


def lora_vs_truncation(
    sweep: Mapping[str, np.ndarray], adapters: Mapping[int, Result], full: Result, profile: str
):
    """Eval loss against rank: the trained model cut to rank r (green), rank-r adapters from init (blue)."""
    fig, axes = style.figure(1, 1, width=6.5, height=4.2)
    ax = axes[0, 0]
    x = _rank_axis(ax, sweep["rank"])
    ax.plot(x, sweep["truncated"], "o-", color="green", label="full training, then W₀ + [Δ]_r")
    ranks = sorted(adapters)
    ax.plot(
        ranks,
        [adapters[r].manifest["final_eval_loss"] for r in ranks],
        "D-",
        color="tab:blue",
        ms=7,
        label="rank-r adapters trained from init (LoRA)",
    )
    ax.axhline(full.manifest["final_eval_loss"], color="black", ls="--", lw=1, label="full training")
    ax.axhline(sweep["truncated"][0], color="gray", ls=":", lw=1, label="attention at init, rest trained")
    ax.set_ylabel("eval loss (nats/token)")
    ax.legend()
    return style.finish(
        fig,
        "Truncating a fully trained update vs training a rank-r adapter (same steps and data)",
        describe(full, profile),
    )


def lora_rows(sweep: Mapping[str, np.ndarray], adapters: Mapping[int, Result], full: Result) -> list[dict]:
    """Per adapter rank: eval loss of the adapter run and of the truncated full run; stable ranks of Δ."""
    ranks = list(sweep["rank"])
    rows = []
    for r in sorted(adapters):
        a = adapters[r].arrays
        cut = float(sweep["truncated"][ranks.index(r)]) if r in ranks else float("nan")
        rows.append(
            {
                "rank r": r,
                "LoRA from init": adapters[r].manifest["final_eval_loss"],
                "full training cut to r": cut,
                "full training": full.manifest["final_eval_loss"],
                "stable rank Δqk (LoRA)": float(np.nanmean(a["stable_rank_delta_qk"][-1])),
                "stable rank Δqk (full)": float(np.nanmean(full.arrays["stable_rank_delta_qk"][-1])),
                "train s": adapters[r].manifest["wall_s"],
            }
        )
    return rows
