"""Chapter 07's figures and tables: attention updates cut to rank r, rank-r adapters trained from init, and
the per-head against fused per-layer ranks of the trained updates."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from rankbook.analysis import truncation
from rankbook.figures import style
from rankbook.figures.spectra import describe
from rankbook.figures.tables import Table
from rankbook.store.results import Result

RANK_AXIS = r"rank $r$ of every attention update (fused per layer)"


def _rank_axis(ax, ranks: np.ndarray) -> np.ndarray:
    """Log-2 rank axis with rank 0 drawn at 0.5; returns the x positions."""
    x = np.maximum(ranks, 0.5)
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, ["0"] + [str(int(r)) for r in ranks[1:]])
    ax.set_xlabel(RANK_AXIS)
    return x


def _legend_below(ax, ncol: int = 2) -> None:
    """The legend under the axes (below the x label), so that it never covers a curve."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=ncol, frameon=False)


def rank_sweep(sweep: Mapping[str, np.ndarray], result: Result, profile: str, ylabel: str, name: str):
    """Metric against the rank of every attention update: truncated Δ (green) vs a same-norm null (gray)."""
    fig, axes = style.figure(1, 1, width=6.5, height=4.8)
    ax = axes[0, 0]
    x = _rank_axis(ax, sweep["rank"])
    ax.plot(x, sweep["truncated"], "o-", color="green", label=r"$W_0 + [\Delta]_r$")
    ax.errorbar(
        x,
        sweep["null"],
        yerr=sweep["null_std"],
        fmt="s--",
        color="gray",
        ms=4,
        capsize=2,
        label=r"$W_0$ + random rank $r$, same norm",
    )
    for frac, linestyle in ((0.95, ":"), (0.99, "-.")):
        r = truncation.recovery_rank(sweep["rank"], sweep["truncated"], frac)
        if r is not None:
            ax.axvline(max(r, 0.5), color="black", ls=linestyle, lw=1, label=f"{frac:.0%} recovered: r={r}")
    ax.set_ylabel(ylabel)
    _legend_below(ax)
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
    sweep: Mapping[str, np.ndarray], lora_losses: Mapping[int, float], full_loss: float, full: Result,
    profile: str,
):
    """Test loss against rank: the trained model cut to rank r (green), rank-r adapters from init (blue).

    ``lora_losses`` and ``full_loss`` are on the sweep's test windows (each run's stored ``derived``).
    """
    fig, axes = style.figure(1, 1, width=6.5, height=4.8)
    ax = axes[0, 0]
    x = _rank_axis(ax, sweep["rank"])
    ax.plot(x, sweep["truncated"], "o-", color="green", label=r"full training, then $W_0 + [\Delta]_r$")
    ranks = sorted(lora_losses)
    ax.plot(ranks, [lora_losses[r] for r in ranks], "D-", color="tab:blue", ms=7,
            label=r"rank-$r$ adapters trained from init (LoRA)")
    ax.axhline(full_loss, color="black", ls="--", lw=1, label="full training")
    ax.axhline(sweep["truncated"][0], color="gray", ls=":", lw=1, label="attention at init, rest trained")
    ax.set_ylabel("test loss (nats/token)")
    _legend_below(ax)
    return style.finish(
        fig,
        "Truncating a fully trained update vs training a rank-r adapter (same steps and data)",
        describe(full, profile),
    )


def lora_rows(
    sweep: Mapping[str, np.ndarray], adapters: Mapping[int, Result], full: Result, derived_of
) -> list[dict]:
    """Per adapter rank: test-window loss of the adapter run and of the truncated full run; stable ranks.

    ``derived_of(result)`` gives a run's stored numbers (:func:`rankbook.training.lm.derived`).
    """
    ranks = list(sweep["rank"])
    full_loss = derived_of(full)["test_window_loss"]
    rows = []
    for r in sorted(adapters):
        a = adapters[r].arrays
        cut = float(sweep["truncated"][ranks.index(r)]) if r in ranks else float("nan")
        rows.append(
            {
                "rank r": r,
                "LoRA from init": derived_of(adapters[r])["test_window_loss"],
                "full training cut to r": cut,
                "full training": full_loss,
                "stable rank Δqk (LoRA)": float(np.nanmean(a["stable_rank_delta_qk"][-1])),
                "stable rank Δqk (full)": float(np.nanmean(full.arrays["stable_rank_delta_qk"][-1])),
                "train s": adapters[r].manifest["wall_s"],
            }
        )
    return rows


def rank_rows(result: Result, ranks: Mapping[str, Any], sweep: Mapping[str, np.ndarray]) -> list[dict]:
    """Per layer: the per-head stable rank of ΔW_K W_Q^T (chapter 06's measure) beside the ranks of the fused
    per-layer update of W_Q that the sweep cuts, and the sweep's 95%-recovery rank (one for all layers).

    ``ranks`` is a run's stored :func:`rankbook.analysis.truncation.rank_profile`.
    """
    r95 = truncation.recovery_rank(sweep["rank"], sweep["truncated"], 0.95)
    product = np.asarray(result.arrays["stable_rank_delta_qk"][-1])  # [layers, heads]
    rows = []
    for layer in range(product.shape[0]):
        q = {k: v[layer] for k, v in ranks["q"].items()}
        rows.append({
            "layer": layer + 1,
            "ΔW_K W_Q^T per head: stable rank": float(np.nanmean(product[layer])),
            "ΔW_Q per head: stable rank": q["head_stable_rank"],
            "ΔW_Q per head: 95% energy rank": q["head_energy95"],
            "heads' top directions fused: stable rank": q["tops_stable_rank"],
            "ΔW_Q fused: stable rank": q["fused_stable_rank"],
            "ΔW_Q fused: 95% energy rank": int(q["fused_energy95"]),
            "sweep: 95% of the loss gain at r": r95 if r95 is not None else "never",
            "full rank": ranks["full_rank"],
        })
    return rows


def rank_numbers(rows: list[dict]) -> dict[str, str]:
    """Chapter 07's glued text of :func:`rank_rows`: each column's range over layers."""
    def span(key: str, fmt: str = "{:.1f}") -> str:
        vals = [float(r[key]) for r in rows]
        lo, hi = min(vals), max(vals)
        return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"

    return {
        "product": span("ΔW_K W_Q^T per head: stable rank"),
        "head": span("ΔW_Q per head: stable rank"),
        "head95": span("ΔW_Q per head: 95% energy rank"),
        "tops": span("heads' top directions fused: stable rank"),
        "fused": span("ΔW_Q fused: stable rank"),
        "fused95": span("ΔW_Q fused: 95% energy rank", "{:.0f}"),
        "r95": str(rows[0]["sweep: 95% of the loss gain at r"]),
        "full": str(rows[0]["full rank"]),
    }
