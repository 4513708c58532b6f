"""Stable rank of Δ: through training (Fig. 12, v1) with its trend verdict, per init scale (Fig. 4), tables.

Every function takes one run or several runs of the same settings (seeds):
the curves pool the heads of all seeds, so a band is mean ± std over heads
(and seeds). The trend verdicts come from :mod:`rankbook.analysis.trend`; the
per-scale statuses from :mod:`rankbook.analysis.scales`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from rankbook.analysis import report, trend
from rankbook.figures import style
from rankbook.figures.spectra import KIND_COLOR, KIND_LABEL, describe, null_rank, pick_steps
from rankbook.figures.tables import Table
from rankbook.store.results import Result

KINDS = ("qk", "vo")


def band(
    results: Result | Sequence[Result], kind: str, layer: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tracked steps (> 0) and the stable rank of Δ at ``layer``: mean and std over heads (and seeds)."""
    steps, sr = trend.pooled(results, kind)
    keep = steps > 0
    return steps[keep], np.nanmean(sr[keep, layer], 1), np.nanstd(sr[keep, layer], 1)


def through_training(
    results: Result | Sequence[Result],
    profile: str,
    layers: Sequence[int] | None = None,
    metric: str | None = None,
    label: str = "",
):
    """Fig. 12 (v1): stable rank of ΔW_K W_Q^T (blue) and ΔW_V W_O^T (red) through training, mean ± std over
    heads (and seeds), with the trend verdict's window.

    Gray: the steps before :data:`rankbook.analysis.trend.TRANSIENT_STEPS`, Adam's first-step transient,
    left out of the verdict; dotted vertical line: the end of the learning-rate warmup (inside the window).
    Thick segments: the head mean averaged over the window's first and last quarter (log step), the values
    the verdict compares; each panel's title gives the layer's verdicts. ``metric`` (e.g. ``"test_acc"``)
    adds a panel with that curve. The legend fills the grid's empty cells and states the stable ranks of the
    products at initialization and of a random matrix, above the axes (:func:`stable_rank_table`).
    ``label`` prefixes the title.
    """
    rs = trend.as_list(results)
    first = rs[0]
    layers = list(range(first.config["depth"])) if layers is None else list(layers)
    verdicts = {kind: trend.run_trends(rs, kind) for kind in KINDS}
    warm = trend.warmup_steps(first)
    content = len(layers) + (metric is not None)
    cols = min(3, content + 1)
    rows = int(np.ceil((content + 1) / cols))
    fig, axes = style.figure(rows, cols, height=2.6)
    flat = list(axes.flat)
    for ax, layer in zip(flat, layers):
        for kind in KINDS:
            steps, mean, std = band(rs, kind, layer)
            t = verdicts[kind][layer]
            ax.plot(steps, mean, color=KIND_COLOR[kind], label=f"Δ{KIND_LABEL[kind]}, mean ± std")
            ax.fill_between(steps, mean - std, mean + std, color=KIND_COLOR[kind], alpha=0.2)
            window = steps[trend.window_mask(steps)].astype(float)
            if not t.judged:  # too short a run: no window to mark
                continue
            head, tail = trend.fractions(window)
            for part, value in ((head, t.start_value), (tail, t.end_value)):
                ax.plot(
                    window[part][[0, -1]],
                    [value, value],
                    color=KIND_COLOR[kind],
                    lw=3,
                    alpha=0.7,
                    solid_capstyle="butt",
                    label="window's first and last quarter: mean the verdict compares",
                )
        ax.axvspan(
            1,
            trend.TRANSIENT_STEPS,
            color="0.8",
            alpha=0.6,
            lw=0,
            label=f"steps < {trend.TRANSIENT_STEPS}: Adam's first-step transient, left out",
        )
        ax.axvline(warm, color="0.4", ls=":", lw=1, label=f"end of the lr warmup (step {warm:,})")
        ax.set_xscale("log")
        verdict = ", ".join(f"{k} {verdicts[k][layer].verdict}" for k in KINDS)
        ax.set(title=f"layer {layer + 1}: {verdict}", xlabel="step", ylabel="stable rank")
    if metric is not None:
        ax = flat[len(layers)]
        for r in rs:
            keep = r.arrays["step"] > 0
            ax.plot(r.arrays["step"][keep], r.arrays[metric][keep], color="black", lw=1)
        ax.set_xscale("log")
        ax.set(title=metric.replace("_", " "), xlabel="step", ylabel=metric.replace("_", " "))
    empty = flat[content:]
    for ax in empty:
        ax.axis("off")
    handles, labels = flat[0].get_legend_handles_labels()
    keep = {}
    for h, lab in zip(handles, labels):
        keep.setdefault(lab, h)
    null = null_rank(first)["stable_rank_mean"]
    init = {k: float(np.mean([r.arrays[f"stable_rank_init_{k}"] for r in rs])) for k in KINDS}
    scale = (
        f"off the axes: at init {KIND_LABEL['qk']} {init['qk']:.1f}, {KIND_LABEL['vo']} {init['vo']:.1f};"
        f" random, rank 2·d_head: {null:.1f}"
    )
    keep[scale] = Line2D([], [], ls="none")
    seeds = f", {len(rs)} seeds" if len(rs) > 1 else ""
    title = f"{label}Stable rank of Δ through training (mean ± std over heads{seeds})"
    style.finish(fig, title, describe(first, profile))
    # the legend sits in the middle of the empty cells (no gap below the panels)
    boxes = [ax.get_position() for ax in empty]
    x0, x1 = min(b.x0 for b in boxes), max(b.x1 for b in boxes)
    y0, y1 = min(b.y0 for b in boxes), max(b.y1 for b in boxes)
    fig.legend(
        list(keep.values()),
        [style.wrap(k, (x1 - x0) * fig.get_size_inches()[0] * 0.9, style.RC["legend.fontsize"])
         for k in keep],
        loc="center",
        bbox_to_anchor=((x0 + x1) / 2, (y0 + y1) / 2),
        frameon=False,
    )
    return fig


def per_scale(
    results_by_scale: Mapping[float, Result | Sequence[Result]],
    profile: str,
    layers: Sequence[int] = (0, 2, 4),
    kind: str = "qk",
    status: Mapping[float, str] | None = None,
):
    """Fig. 4: final stable rank of Δ per init scale at ``layers``, mean ± std over heads (and seeds).

    ``status`` (from :func:`rankbook.analysis.scales.diagnostics_rows`) hatches the bars of scales that
    did not train or collapsed and names it under the scale.
    """
    scales = sorted(results_by_scale)
    fig, axes = style.figure(1, 1, width=6.5, height=4)
    ax = axes[0, 0]
    width = 0.8 / len(layers)
    handles = []
    for k, layer in enumerate(layers):
        sr = [trend.pooled(results_by_scale[s], kind)[1][-1, layer] for s in scales]
        x = np.arange(len(scales)) + (k - (len(layers) - 1) / 2) * width
        bars = ax.bar(
            x,
            [np.nanmean(v) for v in sr],
            width,
            yerr=[np.nanstd(v) for v in sr],
            capsize=3,
        )
        handles.append(Patch(color=bars[0].get_facecolor(), label=f"layer {layer + 1}"))  # unhatched
        for bar, s in zip(bars, scales):
            if status and status.get(s, "trained") in ("did not train", "collapsed"):
                bar.set_hatch("//")
                bar.set_alpha(0.5)
    null = null_rank(trend.as_list(results_by_scale[scales[0]])[0])["stable_rank_mean"]
    handles.append(ax.axhline(null, color="gray", ls="--", lw=1, label="random, rank 2·d_head"))
    names = [
        f"{s:g}" + (f"\n({status[s]})" if status and status.get(s, "trained") != "trained" else "")
        for s in scales
    ]
    ax.set_xticks(np.arange(len(scales)), names)
    ax.set(xlabel="init scale (1 = default)", ylabel=f"stable rank of Δ{KIND_LABEL[kind]}")
    ax.legend(handles=handles)
    first = trend.as_list(results_by_scale[scales[0]])[0]
    return style.finish(
        fig,
        f"Stable rank of Δ{KIND_LABEL[kind]} after training, per init scale",
        describe(first, profile).rsplit(", init scale", 1)[0],
    )


# --------------------------------------------------------------------------- tables


def stable_rank_table(
    results: Result | Sequence[Result], layers: Sequence[int] | None = None, step_index: int = -1
) -> Table:
    """Per layer: stable rank of Δ (mean, std over heads and seeds), of the initial product, of the null."""
    rs = trend.as_list(results)
    layers = range(rs[0].config["depth"]) if layers is None else layers
    null = null_rank(rs[0])["stable_rank_mean"]
    rows = []
    for layer in layers:
        row = {"layer": layer + 1}
        for kind in KINDS:
            sr = trend.pooled(rs, kind)[1][step_index, layer]
            row[f"Δ{kind} mean"], row[f"Δ{kind} std"] = float(np.nanmean(sr)), float(np.nanstd(sr))
            row[f"init {kind}"] = float(np.mean([r.arrays[f"stable_rank_init_{kind}"][layer] for r in rs]))
        row["random rank 2·d_head"] = null
        rows.append(row)
    step = int(rs[0].arrays["step"][step_index])
    return Table(
        rows,
        digits=3,
        title=f"Stable rank at step {step} (mean and std over heads{' and seeds' if len(rs) > 1 else ''})",
    )


def trend_table(results: Result | Sequence[Result]) -> Table:
    """Per layer and product: the trend rule's numbers over its window (start, lowest point, end, change,
    drift z, ρ, heads rising), the verdict and the curve's shape."""
    rs = trend.as_list(results)
    rows = []
    for kind in KINDS:
        for t in trend.run_trends(rs, kind):
            rows.append(
                {
                    "product": report.NAMES[kind],  # typeset on the site by tables.typeset
                    "layer": t.layer + 1,
                    f"start (steps {t.window_start}+)": t.start_value,
                    "lowest": t.min_value,
                    "at step": t.min_step,
                    "end": t.end_value,
                    "change": f"{t.change:+.0%}",
                    "drift z": f"{t.drift_z:.1f}",
                    "ρ (p)": f"{t.rho:.2f} ({t.rho_p:.2g})",
                    "heads rising": f"{t.heads_up}/{t.heads}",
                    "verdict": t.verdict,
                    "shape": t.shape,
                }
            )
    return Table(
        rows,
        digits=3,
        title=f"Trend of the stable rank from step {trend.TRANSIENT_STEPS} to the end, "
        f"per layer (the calibrated rule of rankbook.analysis.trend)",
    )


def curve_table(results: Result | Sequence[Result], kind: str, count: int = 7) -> Table:
    """Stable rank of Δ (mean over heads and seeds) per layer at ``count`` log-spaced tracked steps."""
    steps, sr = trend.pooled(results, kind)
    idx = pick_steps(steps, count)
    rows = [
        {"layer": layer + 1, **{f"step {int(steps[i])}": float(np.nanmean(sr[i, layer])) for i in idx}}
        for layer in range(sr.shape[1])
    ]
    return Table(rows, digits=3, title=f"Stable rank of Δ{kind} at a few steps (mean over heads)")


def seeds_table(by_tier: Mapping[str, Sequence[Result]], kind: str = "qk") -> Table:
    """Per tier and layer: final stable rank of Δ (mean over heads), mean ± std over seeds; test accuracy."""
    rows = []
    for tier, rs in by_tier.items():
        if not rs:
            continue
        per_seed = np.array([np.nanmean(r.arrays[f"stable_rank_delta_{kind}"][-1], -1) for r in rs])
        acc = np.array([r.manifest.get("final_test_acc", np.nan) for r in rs])
        rows += [
            {
                "tier": tier,
                "layer": layer + 1,
                "seeds": len(rs),
                f"Δ{kind} stable rank, mean over seeds": float(per_seed[:, layer].mean()),
                "std over seeds": float(per_seed[:, layer].std()),
                "test accuracy": f"{acc.mean():.3f} ± {acc.std():.3f}",
            }
            for layer in range(per_seed.shape[1])
        ]
    return Table(rows, digits=3, title=f"Final stable rank of Δ{kind} per seed, by tier")


def note(title: str, text: str):
    """A small figure holding only ``text`` (so that a glued figure always exists)."""
    fig, axes = style.figure(1, 1, width=6.5, height=1.6)
    axes[0, 0].set_axis_off()
    axes[0, 0].text(0.5, 0.5, text, ha="center", va="center", transform=axes[0, 0].transAxes)
    return style.finish(fig, title)


def not_stored(tier: str, what: str):
    """A note saying that ``tier``'s run of ``what`` is not stored."""
    return note(
        f"{tier} tier: not stored",
        f"No stored {tier} run of {what} for this code and data.\n"
        f"Make it with `python -m rankbook run --profile {tier}` and commit results/.",
    )


def stored_figure(stored: Mapping[str, Sequence[Result]], tier: str, what: str, metric: str | None = None):
    """:func:`through_training` of ``tier``'s stored runs; a note when none is stored, or when ``tier`` is
    the live run (a chapter's ``stored`` leaves out the profile it runs)."""
    if tier not in stored:
        return note(
            f"{tier} tier: this page's run", f"The {tier} run of {what} is this page's own run (above)."
        )
    rs = stored[tier]
    if not rs:
        return not_stored(tier, what)
    return through_training(rs, tier, metric=metric, label=f"Stored {tier} run: ")
