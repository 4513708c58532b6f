"""Does the stable rank of Δ rise through training? A verdict per layer, by a rule fixed before the data.

The paper's Fig. 12 (v1) claim is a *trend*: the stable rank of
ΔW_K W_Q^T and ΔW_V W_O^T grows gradually through training. The rule below
turns a layer's curves ``r_h(t)`` (head ``h``, tracked step ``t``; heads of
several seeds side by side) into "rises", "flat" or "falls". Nothing in it is
chosen by looking at the curve it judges.

*Window.* From :data:`TRANSIENT_STEPS` (step 10) to the last tracked step.
The only reason to leave early steps out is Adam's first-step transient
(:mod:`rankbook.analysis.transient`): the first update is ``≈ -lr·sign(g)``
and has a high stable rank. It lasts about ``1/(1-β1) = 10`` steps, the
memory of Adam's first moment, and chapter 04 measures it on the stored runs
(the layer-mean curves change by 2-10% per tracked step over steps 1-7 and
by under 2% from step 7 to 10). The window does *not* start at the curve's
minimum (a point chosen by the data: any noisy curve rises from its lowest
point) nor at the end of the learning-rate warmup (at paper scale most of
the rise happens within or just after it).

*Statistics*, with ``x = log t`` and the window ``[x0, x1]``:

1. effect size: ``S`` and ``E``, the head-mean stable rank averaged over the
   tracked steps in the first and the last :data:`FRACTION` (a quarter) of
   the window in log step; ``change = E/S - 1``;
2. drift: ``z = log(E/S) / w``, where ``w`` is how far a driftless random
   walk whose steps are the curve's own point-to-point steps (their RMS over
   heads and points, in log) would wander between the same two averages,
   over the heads' mean; a curve that only wanders has ``|z|`` of about 1;
3. Spearman's ``ρ`` between ``log t`` and the head-mean curve over the
   window, with its one-sided p-value (Student's t, ``n - 2`` degrees);
4. head agreement: every head's own ``e_h > s_h`` (its own start and end
   averages); ``k`` of ``n`` heads (heads × seeds) rise; one-sided sign-test
   p-value ``P(Binomial(n, 1/2) ≥ k)`` (for falls, the falling heads).

*Verdict.* ``"rises"`` when all four hold: ``change ≥`` :data:`MIN_CHANGE`
(10%), ``z ≥`` :data:`MIN_DRIFT_Z` (1.645), ρ's ``p ≤`` :data:`MAX_RHO_P`
(0.05) and the sign test's ``p ≤`` :data:`MAX_SIGN_P` (1/16); ``"falls"``
the mirror image (``E/S ≤ 1/1.1``, ``z ≤ -1.645``, ...); else ``"flat"``.
With 4 heads the smallest sign-test p is 1/16, so a 4-head layer rises only
when all four heads do; with 8 heads 7 must, with 24 (8 heads × 3 seeds) 17.

*Calibration.* ``benchmarks/trend_calibration.py`` (pinned by
``tests/test_trend.py``) measures the rate of false "rises" and false
"falls" on driftless curves on every tier's own step grid and head count:
iid noise of 2, 5 and 10% per head and point, random walks of 2, 5 and 10%
per tracked point and head, and the stored runs' own curves with their time
order shuffled (one permutation for all heads of a layer, so that the heads
still move together). The thresholds keep every rate ≤ 5%. The amplitudes
bracket the measured spread: two runs of the same code that differ only in
floating-point rounding differ by a median 3-9% per head; the benchmark
prints the seed-to-seed spread of the stored reference seeds beside them.

*Shape.* One word hides a dip then a rise, or a rise that stops early in log
time. :func:`describe_shape` names the shape from the same window (``shape``)
and writes it out with its numbers (``shape_words``); the chapters state it.

:func:`legacy_layer_trend` is the rule this one replaced (from the minimum
after the warmup; ρ ≥ 0.6, ≥ 5%, ≥ 3 points), kept only so that the results
page can count what changed.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Sequence

import numpy as np
from scipy import stats

#: end of Adam's first-step transient: the window starts at the first tracked step ≥ this (1/(1-β1))
TRANSIENT_STEPS = 10
#: share of the window (in log step) averaged for its start and its end values
FRACTION = 0.25
#: smallest relative change of the head mean (end vs start of the window) that counts as a rise
MIN_CHANGE = 0.10
#: largest one-sided p-value of Spearman's test of ρ(log step, head mean) > 0 (< 0 for a fall)
MAX_RHO_P = 0.05
#: smallest drift z: the change of the head mean over the window in units of what a random walk with the
#: curve's own point-to-point steps (RMS over heads and points) would wander between the same averages
MIN_DRIFT_Z = 1.645
#: largest one-sided sign-test p-value over heads (and seeds) for the heads to agree: 1/16, the smallest
#: 4 heads allow (all four agree); 8 heads need 7, 24 need 17
MAX_SIGN_P = 0.0625
VERDICTS = ("rises", "flat", "falls")
# the replaced rule's thresholds (legacy_layer_trend)
LEGACY_MIN_RHO, LEGACY_MIN_CHANGE, LEGACY_MIN_POINTS = 0.6, 0.05, 3
#: kept for callers of the old module: fewest tracked steps a window needs
MIN_POINTS = 3


@dataclasses.dataclass(frozen=True)
class LayerTrend:
    """The trend of one layer's stable-rank curve over the verdict's window (see the module doc)."""

    layer: int  # index from 0
    verdict: str
    window_start: int  # first tracked step of the window
    end_step: int
    start_value: float  # S: head mean averaged over the first FRACTION of the window (log step)
    end_value: float  # E: ... over the last FRACTION
    change: float  # E / S - 1
    drift_z: float  # log(E/S) over what a random walk with the curve's own steps would wander
    rho: float  # Spearman ρ(log step, head mean) over the window
    rho_p: float  # its one-sided p-value in the verdict's direction (for "flat": the smaller one)
    heads: int  # heads (× seeds) in the test
    heads_up: int  # heads whose own end average exceeds their start average
    sign_p: float  # one-sided sign-test p for the verdict's direction (for "flat": the smaller one)
    min_step: int  # where the head mean is lowest inside the window
    min_value: float
    max_step: int  # ... and highest
    max_value: float
    rho_mean: float  # each head's own ρ over the window, mean over heads
    rho_std: float  # ... and its std over heads
    points: int  # tracked steps in the window
    shape: str  # e.g. "rises", "dips then rises", "rises then plateaus" (describe_shape)
    shape_words: str  # the shape with its numbers, for prose
    judged: bool = True  # False: fewer than MIN_POINTS tracked steps in the window (verdict "flat", unjudged)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- the vectorized core


def window_mask(steps: np.ndarray, start: float = TRANSIENT_STEPS) -> np.ndarray:
    """The tracked steps the verdict looks at: ``t ≥ start`` (and ``t > 0``)."""
    steps = np.asarray(steps, dtype=float)
    return (steps > 0) & (steps >= start)


def fractions(steps: np.ndarray, fraction: float = FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the window's first and last ``fraction`` in log step (each holds at least one point)."""
    x = np.log(np.asarray(steps, dtype=float))
    span = x[-1] - x[0]
    first = x <= x[0] + fraction * span + 1e-12
    last = x >= x[-1] - fraction * span - 1e-12
    return first, last


def _ranks(y: np.ndarray) -> np.ndarray:
    return stats.rankdata(y, axis=-1)


def _spearman_rows(y: np.ndarray) -> np.ndarray:
    """Spearman ρ between position (steps increase) and every row of ``y [..., points]``; 0 if constant."""
    n = y.shape[-1]
    ry = _ranks(y)
    rx = np.arange(1, n + 1, dtype=float)
    ry = ry - ry.mean(-1, keepdims=True)
    rx = rx - rx.mean()
    den = np.sqrt((ry**2).sum(-1) * (rx**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ry * rx).sum(-1) / den
    return np.where(den > 0, rho, 0.0)


def rho_p(rho: np.ndarray, n: int) -> np.ndarray:
    """One-sided p-value of Spearman's test of ρ > 0 over ``n`` points (Student's t with n - 2 degrees)."""
    rho = np.clip(np.asarray(rho, dtype=float), -0.999999, 0.999999)
    return stats.t.sf(rho * np.sqrt((n - 2) / (1 - rho**2)), n - 2)


def sign_p(k: np.ndarray, n: int) -> np.ndarray:
    """One-sided sign-test p-value: ``P(Binomial(n, 1/2) ≥ k)``."""
    return stats.binom.sf(np.asarray(k) - 1, n, 0.5)


def walk_variance(first: np.ndarray, last: np.ndarray) -> float:
    """Var(mean of X over ``last`` - mean over ``first``) for a random walk X with unit steps per point."""
    i = np.arange(len(first), dtype=float)
    cov = np.minimum(i[:, None], i[None, :])  # Cov(X_i, X_j) for X_0 = 0
    w = last / last.sum() - first / first.sum()
    return float(w @ cov @ w)


def statistics(steps: np.ndarray, curves: np.ndarray) -> dict[str, np.ndarray]:
    """The rule's statistics for ``curves [..., points, heads]`` at window ``steps`` (already cut, finite).

    Returns arrays over the leading dimensions: ``log_ratio`` (log E/S), ``rho``, ``up`` (heads rising),
    ``heads``, ``start``, ``end``. Vectorized, so that the calibration runs thousands of layers at once.
    """
    curves = np.asarray(curves, dtype=float)
    first, last = fractions(steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_start = np.nanmean(curves[..., first, :], axis=-2)  # [..., heads]
        per_end = np.nanmean(curves[..., last, :], axis=-2)
        mean = np.nanmean(curves, axis=-1)  # [..., points]
    start, end = np.nanmean(per_start, -1), np.nanmean(per_end, -1)
    log_ratio = np.log(end / start)
    steps_rms = np.sqrt(np.nanmean(np.diff(np.log(curves), axis=-2) ** 2, axis=(-2, -1)))
    wander = steps_rms * np.sqrt(walk_variance(first, last) / curves.shape[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        drift_z = np.where(wander > 0, log_ratio / wander, np.sign(log_ratio) * np.inf)
    up = (per_end > per_start).sum(-1)
    down = (per_end < per_start).sum(-1)
    return {
        "log_ratio": log_ratio,
        "drift_z": drift_z,
        "rho": _spearman_rows(mean),
        "up": up,
        "down": down,
        "heads": np.full(up.shape, curves.shape[-1]),
        "points": curves.shape[-2],
        "start": start,
        "end": end,
    }


def decide(st: dict[str, np.ndarray], n_heads: int, **thresholds) -> np.ndarray:
    """Verdicts (array of "rises" / "flat" / "falls") from :func:`statistics`; thresholds as keywords."""
    min_change = thresholds.get("min_change", MIN_CHANGE)
    max_rho_p = thresholds.get("max_rho_p", MAX_RHO_P)
    max_p = thresholds.get("max_sign_p", MAX_SIGN_P) + 1e-12
    min_z = thresholds.get("min_drift_z", MIN_DRIFT_Z)
    eff = np.log1p(min_change)
    n = st["points"]
    lr, z, rho = st["log_ratio"], st["drift_z"], st["rho"]
    rises = (lr >= eff) & (z >= min_z) & (rho_p(rho, n) <= max_rho_p) & (sign_p(st["up"], n_heads) <= max_p)
    falls = (
        (lr <= -eff) & (z <= -min_z) & (rho_p(-rho, n) <= max_rho_p) & (sign_p(st["down"], n_heads) <= max_p)
    )
    return np.where(rises, "rises", np.where(falls, "falls", "flat"))


# --------------------------------------------------------------------------- shapes


def describe_shape(steps: np.ndarray, mean: np.ndarray, min_change: float = MIN_CHANGE) -> tuple[str, str]:
    """The shape of a layer's head-mean curve over the window, as a label and as words with its numbers.

    ``S``/``E`` as in the rule; the curve *dips* when its lowest point inside the window lies at least
    ``min_change`` below both ``S`` and ``E``, *peaks* when its highest lies that far above both; a rise
    *plateaus* when 90% of ``E - S`` is reached in the first two thirds of the window (log step) and the
    curve stays above that 90% mark afterwards.
    """
    steps, mean = np.asarray(steps, dtype=float), np.asarray(mean, dtype=float)
    first, last = fractions(steps)
    s, e = float(mean[first].mean()), float(mean[last].mean())
    i_lo, i_hi = int(np.argmin(mean)), int(np.argmax(mean))
    lo, hi = float(mean[i_lo]), float(mean[i_hi])
    x = np.log(steps)
    pos = (x - x[0]) / max(x[-1] - x[0], 1e-12)
    inner = (pos > FRACTION) & (pos < 1 - FRACTION)
    dips = inner[i_lo] and lo <= min(s, e) * (1 - min_change)
    peaks = inner[i_hi] and hi >= max(s, e) * (1 + min_change)
    direction = "rises" if e >= s * (1 + min_change) else "falls" if e <= s / (1 + min_change) else "level"
    events = []
    if dips:
        events.append((i_lo, f"dips to {lo:.2f} at step {int(steps[i_lo]):,}", "dips"))
    if peaks:
        events.append((i_hi, f"peaks at {hi:.2f} at step {int(steps[i_hi]):,}", "peaks"))
    events.sort()
    ending = {"rises": f"rises to {e:.2f}", "falls": f"falls to {e:.2f}", "level": f"ends level at {e:.2f}"}
    labels = [label for _, _, label in events] + [direction]
    # after a dip the curve climbs back, after a peak it comes down: "dips then falls" would hide that the
    # last stretch goes the other way, so the ending says where it went from the extremum
    last = events[-1][2] if events else ""
    if (last, direction) == ("dips", "falls"):
        ending["falls"], labels[-1] = f"climbs back to {e:.2f}, below its start,", "climbs back"
    elif (last, direction) == ("peaks", "rises"):
        ending["rises"], labels[-1] = f"comes back down to {e:.2f}, above its start,", "comes back down"
    parts = [text for _, text, _ in events] + [ending[direction]]
    if labels[-1] == "rises":
        stays = np.array([np.all(mean[i:] >= s + 0.9 * (e - s)) for i in range(len(mean))])
        i90 = int(np.argmax(stays))  # the last point always stays (E is within the last quarter's average)
        if stays.any() and pos[i90] <= 2 / 3:
            parts[-1] += (
                f" at the end, 90% of that rise reached by step {int(steps[i90]):,} (a plateau after)"
            )
            labels.append("plateaus")
        else:
            parts[-1] += " at the end"
    else:
        parts[-1] += " at the end"
    words = f"from {s:.2f} at the window's start, " + ", then ".join(parts)
    if len(labels) == 1:
        shape = {"rises": "rises", "falls": "falls", "level": "flat"}[direction]
    else:
        shape = " then ".join("ends level" if x == "level" else x for x in labels)
        if labels[-1] in ("climbs back", "comes back down"):
            shape += " (below its start)" if direction == "falls" else " (above its start)"
    return shape, words


# --------------------------------------------------------------------------- one layer


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ; 0 for a constant or too-short series (no order, no trend)."""
    ok = np.isfinite(y)
    if ok.sum() < 2 or np.ptp(y[ok]) == 0:
        return 0.0
    return float(stats.spearmanr(x[ok], y[ok]).statistic)


def layer_trend(
    steps: Sequence[float],
    curves: np.ndarray,
    *,
    after: float = TRANSIENT_STEPS,
    layer: int = 0,
    min_change: float = MIN_CHANGE,
    max_rho_p: float = MAX_RHO_P,
    max_sign_p: float = MAX_SIGN_P,
    min_drift_z: float = MIN_DRIFT_Z,
) -> LayerTrend:
    """The verdict for one layer: ``curves [points, heads]`` (heads × seeds side by side) at ``steps``.

    The window starts at the first tracked step ``≥ after`` (default: the end of Adam's transient,
    :data:`TRANSIENT_STEPS`; pass no data-chosen value). Points at step 0 (Δ = 0) or with a NaN head mean
    are ignored.
    """
    steps = np.asarray(steps, dtype=float)
    curves = np.asarray(curves, dtype=float)
    if curves.ndim != 2 or curves.shape[0] != len(steps):
        raise ValueError(f"curves must be [points, heads] with {len(steps)} points, got shape {curves.shape}")
    with warnings.catch_warnings():  # step 0: every head NaN, its mean NaN (dropped below)
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves, axis=1)
    keep = window_mask(steps, after) & np.isfinite(mean)
    if keep.sum() < MIN_POINTS:  # a run too short to judge: "flat", not judged (claims say it cannot show it)
        last = int(steps[np.isfinite(mean)][-1]) if np.isfinite(mean).any() else 0
        nan = float("nan")
        return LayerTrend(
            layer=layer,
            verdict="flat",
            window_start=int(after),
            end_step=last,
            start_value=nan,
            end_value=nan,
            change=nan,
            drift_z=nan,
            rho=nan,
            rho_p=nan,
            heads=curves.shape[1],
            heads_up=0,
            sign_p=nan,
            min_step=last,
            min_value=nan,
            max_step=last,
            max_value=nan,
            rho_mean=nan,
            rho_std=nan,
            points=int(keep.sum()),
            shape="too short to judge",
            shape_words=f"only {int(keep.sum())} tracked step(s) from step {after:g} on: too few to judge "
            f"(the rule needs {MIN_POINTS})",
            judged=False,
        )
    steps, curves, mean = steps[keep], curves[keep], mean[keep]
    st = statistics(steps, curves)
    n = curves.shape[1]
    verdict = str(
        decide(
            st, n, min_change=min_change, max_rho_p=max_rho_p, max_sign_p=max_sign_p, min_drift_z=min_drift_z
        )
    )
    p_up, p_down = float(sign_p(st["up"], n)), float(sign_p(st["down"], n))
    p = p_up if verdict == "rises" else p_down if verdict == "falls" else min(p_up, p_down)
    rp_up, rp_down = float(rho_p(st["rho"], len(steps))), float(rho_p(-st["rho"], len(steps)))
    rp = rp_up if verdict == "rises" else rp_down if verdict == "falls" else min(rp_up, rp_down)
    rhos = np.array([_spearman(steps, curves[:, h]) for h in range(n)])
    shape, words = describe_shape(steps, mean, min_change)
    i_lo, i_hi = int(np.argmin(mean)), int(np.argmax(mean))
    return LayerTrend(
        layer=layer,
        verdict=verdict,
        window_start=int(steps[0]),
        end_step=int(steps[-1]),
        start_value=float(st["start"]),
        end_value=float(st["end"]),
        change=float(np.expm1(st["log_ratio"])),
        drift_z=float(st["drift_z"]),
        rho=float(st["rho"]),
        rho_p=rp,
        heads=n,
        heads_up=int(st["up"]),
        sign_p=p,
        min_step=int(steps[i_lo]),
        min_value=float(mean[i_lo]),
        max_step=int(steps[i_hi]),
        max_value=float(mean[i_hi]),
        rho_mean=float(rhos.mean()),
        rho_std=float(rhos.std()),
        points=len(steps),
        shape=shape,
        shape_words=words,
    )


def legacy_layer_trend(steps: Sequence[float], curves: np.ndarray, *, after: float = 0) -> str:
    """The replaced rule's verdict (window from the head mean's minimum after ``after``, the warmup; ρ ≥ 0.6,
    ≥ 5% rise, ≥ 3 points; falls over the whole range), for counting what the new rule changed."""
    steps, curves = np.asarray(steps, dtype=float), np.asarray(curves, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves, axis=1)
    keep = (steps > 0) & (steps >= after) & np.isfinite(mean)
    steps, mean = steps[keep], mean[keep]
    i_min = int(np.argmin(mean))
    rho = _spearman(steps[i_min:], mean[i_min:])
    change = (mean[-1] - mean[i_min]) / mean[i_min]
    if len(steps) - i_min >= LEGACY_MIN_POINTS and rho >= LEGACY_MIN_RHO and change >= LEGACY_MIN_CHANGE:
        return "rises"
    if _spearman(steps, mean) <= -LEGACY_MIN_RHO and (mean[0] - mean[-1]) / mean[0] >= LEGACY_MIN_CHANGE:
        return "falls"
    return "flat"


# --------------------------------------------------------------------------- runs


def trends(
    steps: Sequence[float], stable_rank: np.ndarray, *, after: float = TRANSIENT_STEPS, **thresholds
) -> list[LayerTrend]:
    """One :class:`LayerTrend` per layer of ``stable_rank [points, layers, heads]``."""
    stable_rank = np.asarray(stable_rank, dtype=float)
    if stable_rank.ndim != 3:
        raise ValueError(f"stable_rank must be [points, layers, heads], got shape {stable_rank.shape}")
    return [
        layer_trend(steps, stable_rank[:, layer], after=after, layer=layer, **thresholds)
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
    """Per-layer trends of one run's (or seeds' pooled) ``stable_rank_delta_{kind}`` over the window."""
    steps, sr = pooled(as_list(results), kind)
    return trends(steps, sr)


def legacy_run_trends(results, kind: str) -> list[str]:
    """The replaced rule's per-layer verdicts (window from the minimum after the warmup)."""
    rs = as_list(results)
    steps, sr = pooled(rs, kind)
    return [
        legacy_layer_trend(steps, sr[:, layer], after=warmup_steps(rs[0])) for layer in range(sr.shape[1])
    ]


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
    verdicts = [t if isinstance(t, str) else t.verdict for t in layer_trends]
    counts = {v: verdicts.count(v) for v in VERDICTS}
    best = max(counts, key=counts.get)
    return best if counts[best] * 2 > len(verdicts) else "mixed"


def count(layer_trends: Sequence[LayerTrend], verdict: str = "rises") -> str:
    """E.g. ``"4 of 6 layers"``."""
    verdicts = [t if isinstance(t, str) else t.verdict for t in layer_trends]
    return f"{verdicts.count(verdict)} of {len(verdicts)} layers"


def rule_text() -> str:
    """The rule in one sentence with its thresholds, for pages that state it."""
    return (
        f"window from step {TRANSIENT_STEPS} (the end of Adam's first-step transient) to the last tracked "
        f"step; 'rises' needs all of: the head mean over the last {FRACTION:.0%} of the window (in log step) "
        f"at least {MIN_CHANGE:.0%} above its mean over the first {FRACTION:.0%}; that change at least "
        f"{MIN_DRIFT_Z} times what a driftless random walk with the curve's own point-to-point steps would "
        f"wander; Spearman's ρ(log step, head mean) > 0 at one-sided p ≤ {MAX_RHO_P}; and the heads "
        f"(× seeds) agreeing by a one-sided sign test at p ≤ 1/16 (all of 4 heads, 7 of 8, 17 of 24); "
        f"'falls' is the mirror image; anything else is 'flat'"
    )
