"""Does the stable rank of Δ rise through training? A verdict computed from the whole curve, per layer.

The paper's Fig. 12 claim is a *trend*: after training starts, the stable
rank of ΔW_K W_Q^T and ΔW_V W_O^T grows gradually. Comparing the last point
with the first says nothing about that, because the first tracked point is
Adam's first step, whose update is close to ``lr·sign(g)`` and has a much
higher stable rank than the gradient direction (the *transient*, measured by
:mod:`rankbook.analysis.transient`); the curve first falls from it and only
then rises.

So, per layer, with ``r_h(t)`` the stable rank of head ``h`` at tracked step
``t`` and ``r(t)`` its mean over heads:

1. *post-transient range*: the tracked steps ``t ≥ after`` (the chapters pass
   the warmup length: while the learning rate ramps up the update is
   dominated by the first, sign-like steps);
2. *minimum*: ``t_min = argmin r(t)`` over that range; the *rise window* is
   ``[t_min, last step]``;
3. Spearman's rank correlation ``ρ`` between step and ``r`` over the rise
   window (over the whole post-transient range, for falls), the relative
   change ``(r(end) - r(t_min)) / r(t_min)``, and, for the spread over heads,
   each head's own ``ρ_h`` over the same window (mean ± std reported).

The verdict is about the layer's curve ``r``, the curve of the paper's
Fig. 12 (thresholds :data:`MIN_RHO`, :data:`MIN_CHANGE`, :data:`MIN_POINTS`):

* ``"rises"``: the rise window holds at least :data:`MIN_POINTS` tracked
  steps, ``ρ ≥`` :data:`MIN_RHO` and ``r`` grew by at least
  :data:`MIN_CHANGE` of its minimum;
* ``"falls"``: over the whole post-transient range ``ρ ≤ -MIN_RHO`` and ``r``
  ends at least :data:`MIN_CHANGE` below its value at the start of the range;
* ``"flat"``: neither.

The heads' ``ρ_h`` say whether the heads agree: a rising layer whose
``ρ_h`` spread is wide has some heads that rise and some that do not.

Why these thresholds. Starting the window at the minimum favours a rise: even
a flat, noisy curve goes up from its lowest point. Both conditions guard
against that: a rank correlation of 0.6 asks that most pairs of points be in
increasing order (not one lucky end point), and a 5% change is above the
point-to-point wobble of the fast runs' head-mean curves. ``tests/test_trend.py``
measures the false-rise rate on flat curves with 2% noise per head (below 5%
of draws) and checks that rising, falling and transient-then-rising curves
get their verdicts.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Sequence

import numpy as np
from scipy import stats

#: smallest mean rank correlation (over heads) between step and stable rank that counts as a trend
MIN_RHO = 0.6
#: smallest relative change of the head-mean stable rank that counts as a rise or a fall
MIN_CHANGE = 0.05
#: fewest tracked steps in the rise window for a "rises" verdict (a rank correlation of 2 points is ±1)
MIN_POINTS = 3
VERDICTS = ("rises", "flat", "falls")


@dataclasses.dataclass(frozen=True)
class LayerTrend:
    """The trend of one layer's stable-rank curve after the transient (see the module doc)."""

    layer: int  # index from 0
    verdict: str
    min_step: int  # where the post-transient minimum of the head mean lies
    end_step: int
    min_value: float  # head mean at min_step
    end_value: float  # head mean at the last step
    change: float  # (end_value - min_value) / min_value
    rho: float  # Spearman ρ(step, head-mean stable rank) over the rise window: the verdict's
    rho_mean: float  # each head's own ρ over the rise window, mean over heads
    rho_std: float  # ... and its std over heads
    points: int  # tracked steps in the rise window

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ; 0 for a constant or too-short series (no order, no trend)."""
    ok = np.isfinite(y)
    if ok.sum() < 2 or np.ptp(y[ok]) == 0:
        return 0.0
    return float(stats.spearmanr(x[ok], y[ok]).statistic)


def _head_rhos(steps: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """ρ of every head (``curves [points, heads]``) against the steps."""
    return np.array([_spearman(steps, curves[:, h]) for h in range(curves.shape[1])])


def layer_trend(
    steps: Sequence[float], curves: np.ndarray, *, after: float = 0, layer: int = 0
) -> LayerTrend:
    """The verdict for one layer: ``curves [points, heads]`` at ``steps``; the transient ends at ``after``.

    Points at step 0 (Δ = 0, stable rank undefined) or with a NaN head mean are ignored.
    """
    steps = np.asarray(steps, dtype=float)
    curves = np.asarray(curves, dtype=float)
    if curves.ndim != 2 or curves.shape[0] != len(steps):
        raise ValueError(f"curves must be [points, heads] with {len(steps)} points, got shape {curves.shape}")
    with warnings.catch_warnings():  # step 0: every head NaN, its mean NaN (dropped below)
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves, axis=1)
    keep = (steps > 0) & (steps >= after) & np.isfinite(mean)
    if keep.sum() < 2:
        raise ValueError(
            f"layer {layer + 1}: fewer than 2 tracked steps after step {after:g}; "
            f"track more points or lower `after`"
        )
    steps, curves, mean = steps[keep], curves[keep], mean[keep]
    i_min = int(np.argmin(mean))
    window = slice(i_min, None)
    rhos = _head_rhos(steps[window], curves[window])
    rho = _spearman(steps[window], mean[window])
    change = float((mean[-1] - mean[i_min]) / mean[i_min])
    verdict = "flat"
    if len(steps) - i_min >= MIN_POINTS and rho >= MIN_RHO and change >= MIN_CHANGE:
        verdict = "rises"
    elif _spearman(steps, mean) <= -MIN_RHO and (mean[0] - mean[-1]) / mean[0] >= MIN_CHANGE:
        verdict = "falls"
    return LayerTrend(
        layer=layer,
        verdict=verdict,
        min_step=int(steps[i_min]),
        end_step=int(steps[-1]),
        min_value=float(mean[i_min]),
        end_value=float(mean[-1]),
        change=change,
        rho=rho,
        rho_mean=float(rhos.mean()),
        rho_std=float(rhos.std()),
        points=len(steps) - i_min,
    )


def trends(steps: Sequence[float], stable_rank: np.ndarray, *, after: float = 0) -> list[LayerTrend]:
    """One :class:`LayerTrend` per layer of ``stable_rank [points, layers, heads]``."""
    stable_rank = np.asarray(stable_rank, dtype=float)
    if stable_rank.ndim != 3:
        raise ValueError(f"stable_rank must be [points, layers, heads], got shape {stable_rank.shape}")
    return [
        layer_trend(steps, stable_rank[:, layer], after=after, layer=layer)
        for layer in range(stable_rank.shape[1])
    ]


def as_list(results) -> list:
    """One run (anything with ``arrays``) or a sequence of runs, as a non-empty list."""
    out = [results] if hasattr(results, "arrays") else list(results)
    if not out:
        raise ValueError("no runs given")
    return out


def pooled(results, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and the stable rank of Δ, every seed's heads side by side: ``[points, layers, heads·seeds]``."""
    rs = as_list(results)
    steps = np.asarray(rs[0].arrays["step"])
    for r in rs[1:]:
        if not np.array_equal(r.arrays["step"], steps):
            raise ValueError(
                f"{r.path} was tracked at other steps than {rs[0].path}: pool runs of one setting"
            )
    return steps, np.concatenate([r.arrays[f"stable_rank_delta_{kind}"] for r in rs], axis=-1)


def run_trends(results, kind: str) -> list[LayerTrend]:
    """Per-layer trends of one run's (or seeds' pooled) ``stable_rank_delta_{kind}``, after the warmup."""
    rs = as_list(results)
    steps, sr = pooled(rs, kind)
    return trends(steps, sr, after=warmup_steps(rs[0]))


def warmup_steps(result) -> int:
    """A run's warmup length in steps: from its config (LM ``warmup_steps``; ViT ``warmup_epochs`` times the
    manifest's ``steps_per_epoch``), else the tracked step where its ``lr`` array peaks."""
    c, m = result.config, result.manifest
    if "warmup_steps" in c:
        return int(c["warmup_steps"])
    if "warmup_epochs" in c and "steps_per_epoch" in m:
        return int(c["warmup_epochs"] * m["steps_per_epoch"])
    lr, steps = np.asarray(result.arrays["lr"]), np.asarray(result.arrays["step"])
    return int(steps[int(np.argmax(lr))])


def overall(layer_trends: Sequence[LayerTrend]) -> str:
    """The run's verdict: a verdict shared by more than half of the layers, else ``"mixed"``."""
    counts = {v: sum(t.verdict == v for t in layer_trends) for v in VERDICTS}
    best = max(counts, key=counts.get)
    return best if counts[best] * 2 > len(layer_trends) else "mixed"


def count(layer_trends: Sequence[LayerTrend], verdict: str = "rises") -> str:
    """E.g. ``"4 of 6 layers"``."""
    return f"{sum(t.verdict == verdict for t in layer_trends)} of {len(layer_trends)} layers"
