"""Chapter 05's per-scale figure (the paper's Fig. 4, v1 numbering), with seeds and statuses.

The Fig. 3 analogue (``σ_k/σ_1`` of one head through training, per scale) is
:func:`rankbook.figures.spectra.delta_evolution_per_scale`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from rankbook.analysis import scales as analysis
from rankbook.figures import style
from rankbook.figures.spectra import KIND_LABEL, describe, null_rank
from rankbook.store.results import Result


def per_scale(
    results_by_scale: Mapping[float, Result | Sequence[Result]],
    profile: str,
    layers: Sequence[int] = (0, 2, 4),
    kind: str = "qk",
    status: Mapping[float, str] | None = None,
):
    """Fig. 4 (v1): final stable rank of Δ per init scale (largest first) at ``layers``.

    Bars: mean ± std over the heads of every stored seed; black dots: each seed's head mean (when a scale
    has more than one seed). A scale whose ``status`` is not "trained" (did not train, collapsed, partly
    aligned) is hatched and named under its tick, with the number of seeds. The stable rank of a random
    matrix of Δ's shape and rank is drawn only when it fits the bars' range; otherwise its value is in the
    legend, so the bars keep the height of the axes.
    """
    scales = sorted(results_by_scale, reverse=True)
    status = dict(status or {})
    fig, axes = style.figure(1, 1, width=6.5, height=3.6)
    ax = axes[0, 0]
    width = 0.8 / len(layers)
    colors = [f"C{k}" for k in range(len(layers))]
    handles, top = [], 0.0
    for k, layer in enumerate(layers):
        pooled = [analysis.final_stable_ranks(results_by_scale[s], layer, kind) for s in scales]
        x = np.arange(len(scales)) + (k - (len(layers) - 1) / 2) * width
        means = np.array([np.nanmean(p[0]) for p in pooled])
        stds = np.array([np.nanstd(p[0]) for p in pooled])
        bars = ax.bar(x, means, width, yerr=stds, capsize=3, color=colors[k])
        top = max(top, float(np.nanmax(means + stds)))
        handles.append(Patch(color=colors[k], label=f"layer {layer + 1}"))
        for bar, s, xi, (_, seed_means) in zip(bars, scales, x, pooled):
            if status.get(s, "trained") not in analysis.COMPARABLE:
                bar.set_hatch("//")
                bar.set_alpha(0.5)
            if len(seed_means) > 1:
                ax.plot(np.full(len(seed_means), xi), seed_means, "o", color="black", ms=3, zorder=3)
                top = max(top, float(np.nanmax(seed_means)))
    if any(len(analysis.as_runs(results_by_scale[s])) > 1 for s in scales):
        handles.append(Line2D([], [], marker="o", ls="", color="black", ms=3, label="one seed's head mean"))
    null = null_rank(analysis.as_runs(results_by_scale[scales[0]])[0])["stable_rank_mean"]
    name = r"random, rank $2 d_\mathrm{head}$"
    if null <= 1.25 * top:
        handles.append(ax.axhline(null, color="gray", ls="--", lw=1, label=name))
        top = max(top, null)
    else:
        handles.append(Patch(color="none", label=f"{name}: {null:.1f} (off the axis)"))
    seeds = analysis.seeds_per_scale(results_by_scale)
    names = [
        f"{s:g}\n{seeds[s]} seed{'s' if seeds[s] != 1 else ''}"
        + (f"\n({status[s]})" if status.get(s, "trained") != "trained" else "")
        for s in scales
    ]
    ax.set_xticks(np.arange(len(scales)), names)
    ax.set_ylim(0, 1.3 * top)
    ax.set(xlabel="init scale (1 = default)", ylabel=f"stable rank of Δ{KIND_LABEL[kind]}")
    ax.legend(handles=handles, loc="upper right", fontsize=9)
    first = analysis.as_runs(results_by_scale[scales[0]])[0]
    return style.finish(
        fig,
        f"Stable rank of Δ{KIND_LABEL[kind]} after training, per init scale (mean ± std over heads × seeds)",
        describe(first, profile).rsplit(", init scale", 1)[0].rsplit(", seed", 1)[0],
    )
