"""Chapter 05's init-scale analysis: diagnostics per scale, tests over heads and seeds, the verdict.

A stable rank near 1 after training is what the paper predicts at small init
scales (Fig. 4, v1 numbering), but it is also what a degenerate solution looks
like: every head of a layer moving along the same single direction, by far
more than its initial size, while the model barely learns. The paper's claim
is about the first; so beside the stable rank each scale gets

* **test accuracy** (and whether it is above chance);
* **relative change** ``‖Δ‖_F / ‖W(0)‖_F`` of each head's ``W_K W_Q^T``
  (``W_V W_O^T``): a perturbation hundreds of times the initial product is no
  longer a perturbation of it;
* **head alignment**: the mean ``|cos|`` between the top singular vectors of
  Δ of different heads of a layer (left and right vectors, averaged). Heads
  learning different directions give about ``sqrt(2 / (π d_model))``, the
  value for independent random directions, computed for each run's own width
  (:func:`random_alignment`: 0.100 at width 64, 0.071 at 128); heads that all
  learned one direction give ``≈ 1``;
* ``σ2/σ1``, the second singular value of Δ relative to the first.

Status of a scale (:func:`status`): ``"did not train"`` when the accuracy is
below :data:`TRAINED_OVER_CHANCE` times chance (for CIFAR-10, 0.15: 1.5× the
0.10 of guessing); ``"collapsed"`` when the head alignment, averaged over
layers and seeds, is at least :data:`ALIGNED` (0.9); ``"partly aligned"`` from
:data:`PARTLY_ALIGNED` (0.5, an angle of 60° on average: the heads mostly share
their direction); ``"trained"`` otherwise. **Only "trained" scales count
toward the claim** (:data:`COMPARABLE`); the others are named with why.

The claim "smaller init scale, lower stable rank" is checked per layer
(:func:`layer_tests`, :func:`ordering`, :func:`lower_rank_claim`):

* **default init against each smaller scale**: one-sided Mann-Whitney U over
  the final stable ranks of the heads of every stored seed (heads × seeds
  pooled per scale), and an exact one-sided permutation test over the seeds'
  head means (the seeds are the independent repeats; with ``n`` and ``m``
  seeds its smallest possible p is ``1 / C(n + m, n)``, so it says how much
  the seeds alone can show). Significant: the heads × seeds p below
  :data:`ALPHA` divided by the number of tests (Bonferroni over layers ×
  scales);
* **ordering**: among the trained scales, the mean stable rank must not rise
  as the scale falls, in every layer; each reversal is reported with its
  two-sided Mann-Whitney p;
* **seeds**: every trained scale needs :data:`MIN_SEEDS` stored seeds.

Verdict (the book's vocabulary, :data:`rankbook.analysis.claims.VOCABULARY`):
**cannot be shown by this tier's runs** when fewer than two scales are stored,
or fewer than two (the default among them) trained without collapse or
partial alignment; **shown** when every layer's default-vs-small test is
significant, the ordering is monotone in every layer and every trained scale
has enough seeds; **contradicted** when in most layers the default init is
significantly *below* a trained smaller scale; **partly shown** when some
default-vs-small test is significant but a condition of "shown" fails (each
failing one is named); **not shown at this scale** otherwise.

The paper's Fig. 3 (v1): :func:`ratio_curves` and :func:`plateau` give the
median over heads (and seeds) of ``σ_k/σ_1`` of one layer through training,
and the stretch of steps where ``σ2/σ1`` stays below :data:`SMALL_RATIO`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy import stats

from rankbook.analysis import claims

#: mean |cos| between heads' top singular vectors (averaged over layers) from which heads count as collapsed
ALIGNED = 0.9
#: from this mean |cos| on, heads count as partly aligned (named, and left out of the claim)
PARTLY_ALIGNED = 0.5
#: statuses whose stable rank enters the lower-rank comparison
COMPARABLE = ("trained",)
#: accuracy must exceed this multiple of chance (1 / classes) for a run to count as trained
TRAINED_OVER_CHANCE = 1.5
#: family-wise significance level of the per-layer tests (Bonferroni over layers × scales)
ALPHA = 0.05
#: stored seeds every trained scale needs for "shown"
MIN_SEEDS = 3
#: σ_k/σ_1 below this counts as "not yet learned" in the Fig. 3 analogue's plateau
SMALL_RATIO = 0.01

#: the book's verdicts (:data:`rankbook.analysis.claims.VOCABULARY`, defined on the results page)
SHOWN, PARTLY, NOT_SHOWN, CONTRADICTED, CANNOT = (
    claims.SHOWN, claims.PARTLY, claims.NOT_SHOWN, claims.CONTRADICTED, claims.CANNOT)


def as_runs(results) -> list:
    """One run (anything with ``arrays``) or a sequence of runs (seeds of one setting), as a list."""
    out = [results] if hasattr(results, "arrays") else list(results)
    if not out:
        raise ValueError("no runs given for an init scale")
    return out


def relative_change(result, kind: str = "qk", step_index: int = -1) -> np.ndarray:
    """``‖Δ‖_F / ‖W(0)‖_F`` of every head's product at one tracked step: ``[layers, heads]``.

    Both norms come from the recorded singular values (``‖A‖_F² = Σ σ_i²``).
    """
    a = result.arrays
    delta = np.sqrt((a[f"delta_{kind}"][step_index].astype(float) ** 2).sum(-1))
    init = np.sqrt((a[f"init_{kind}"].astype(float) ** 2).sum(-1))
    return delta / init


def pairwise_alignment(vectors: np.ndarray) -> np.ndarray:
    """Mean ``|cos|`` over the pairs of heads of each layer: ``vectors [layers, heads, d]`` → ``[layers]``."""
    v = np.asarray(vectors, dtype=float)
    if v.ndim != 3 or v.shape[1] < 2:
        raise ValueError(f"need [layers, heads >= 2, d] vectors, got shape {v.shape}")
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    cos = np.abs(np.einsum("lhd,lgd->lhg", v, v))
    upper = np.triu_indices(v.shape[1], k=1)
    return cos[:, upper[0], upper[1]].mean(-1)


def head_alignment(result, kind: str = "qk") -> np.ndarray:
    """Per layer: mean ``|cos|`` between the heads' top singular vectors of Δ at the end (left/right mean).

    Needs the run's ``top_left_{kind}`` / ``top_right_{kind}`` arrays (recorded from training version 2).
    """
    a = result.arrays
    missing = [k for k in (f"top_left_{kind}", f"top_right_{kind}") if k not in a]
    if missing:
        raise KeyError(
            f"{result.path}: no {', '.join(missing)} (recorded from training version 2 on); "
            f"train the run again with the current code to get head alignments"
        )
    return 0.5 * (pairwise_alignment(a[f"top_left_{kind}"]) + pairwise_alignment(a[f"top_right_{kind}"]))


def random_alignment(d: int) -> float:
    """Expected ``|cos|`` between two independent random directions in ``R^d`` (≈ ``sqrt(2 / (π d))``)."""
    return float(math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi))


def run_random_alignment(result, kind: str = "qk") -> float:
    """:func:`random_alignment` for the length of this run's top singular vectors (its width ``d_model``)."""
    a = result.arrays
    key = f"top_left_{kind}"
    d = a[key].shape[-1] if key in a else result.config["d_model"]
    return random_alignment(int(d))


def second_to_first(result, kind: str = "qk", step_index: int = -1) -> np.ndarray:
    """``σ2/σ1`` of every head's Δ at one tracked step: ``[layers, heads]``."""
    s = result.arrays[f"delta_{kind}"][step_index].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s[..., 1] / s[..., 0]


def status(accuracy: float, classes: int, alignment: float) -> str:
    """``"did not train"``, ``"collapsed"``, ``"partly aligned"`` or ``"trained"`` (see the module)."""
    if accuracy < TRAINED_OVER_CHANCE / classes:
        return "did not train"
    if alignment >= ALIGNED:
        return "collapsed"
    return "partly aligned" if alignment >= PARTLY_ALIGNED else "trained"


def final_stable_ranks(results, layer: int, kind: str = "qk") -> tuple[np.ndarray, np.ndarray]:
    """Final stable rank of Δ at ``layer``: every head of every seed (pooled), and each seed's head mean."""
    per_seed = [np.asarray(r.arrays[f"stable_rank_delta_{kind}"][-1][layer], float) for r in as_runs(results)]
    return np.concatenate(per_seed), np.array([np.nanmean(x) for x in per_seed])


def diagnose(results, kind: str = "qk", layers: Sequence[int] | None = None) -> dict[str, Any]:
    """The diagnostics of one init scale, averaged over its seeds' runs and the given layers (default all)."""
    rs = as_runs(results)
    first = rs[0]
    layers = list(range(first.config["depth"])) if layers is None else list(layers)
    acc = float(np.mean([r.manifest["final_test_acc"] for r in rs]))
    sr = np.array([r.arrays[f"stable_rank_delta_{kind}"][-1][layers] for r in rs])  # [seeds, layers, heads]
    align = float(np.mean([head_alignment(r, kind)[layers].mean() for r in rs]))
    classes = int(first.manifest.get("classes", 10))
    seed_means = np.nanmean(sr, axis=(1, 2))
    return {
        "seeds": len(rs),
        "accuracy": acc,
        "stable rank": float(np.nanmean(sr)),
        "std over heads": float(np.nanstd(sr, axis=-1).mean()),
        "std over seeds": float(np.std(seed_means, ddof=1)) if len(rs) > 1 else float("nan"),
        "‖Δ‖/‖W(0)‖": float(np.mean([relative_change(r, kind)[layers].mean() for r in rs])),
        "head alignment": align,
        "random |cos|": run_random_alignment(first, kind),
        "σ2/σ1": float(np.nanmean([second_to_first(r, kind)[layers] for r in rs])),
        "status": status(acc, classes, align),
    }


def diagnostics_rows(
    results_by_scale: Mapping[float, Any], kind: str = "qk", layers: Sequence[int] | None = None
) -> list[dict]:
    """One row per init scale (largest first): the scale, then :func:`diagnose`'s columns."""
    return [
        {"init scale": scale, **diagnose(results_by_scale[scale], kind, layers)}
        for scale in sorted(results_by_scale, reverse=True)
    ]


def statuses(rows: Sequence[Mapping]) -> dict[float, str]:
    """``{scale: status}`` from :func:`diagnostics_rows`."""
    return {r["init scale"]: r["status"] for r in rows}


def seed_permutation_p(greater: Sequence[float], smaller: Sequence[float]) -> float:
    """Exact one-sided permutation p that ``greater``'s mean exceeds ``smaller``'s (labels exchanged).

    Enumerates every split of the pooled values into groups of the two sizes; the smallest possible p is
    ``1 / C(n + m, n)``.
    """
    a, b = np.asarray(greater, float), np.asarray(smaller, float)
    pooled = np.concatenate([a, b])
    observed = a.mean() - b.mean()
    n, count, hits = len(a), 0, 0
    for idx in itertools.combinations(range(len(pooled)), n):
        mask = np.zeros(len(pooled), bool)
        mask[list(idx)] = True
        count += 1
        hits += pooled[mask].mean() - pooled[~mask].mean() >= observed - 1e-12
    return float(hits / count)


def permutation_floor(n: int, m: int) -> float:
    """The smallest p :func:`seed_permutation_p` can give with ``n`` and ``m`` seeds."""
    return 1.0 / math.comb(n + m, n)


def _comparable(results_by_scale: Mapping[float, Any], status_of: Mapping[float, str]) -> list[float]:
    return [s for s in sorted(results_by_scale, reverse=True) if status_of.get(s) in COMPARABLE]


def layer_tests(
    results_by_scale: Mapping[float, Any],
    status_of: Mapping[float, str],
    layers: Sequence[int],
    kind: str = "qk",
) -> list[dict[str, Any]]:
    """Default init (the largest scale) against each smaller *trained* scale, per layer.

    One row per (layer, scale): seeds and heads behind each side, the two means, the one-sided Mann-Whitney
    p over heads × seeds (``p``, default greater; ``p floor`` the smallest it can be, ``1 / C(n + m, m)``,
    reached when every head of one side is above every head of the other) and of the opposite direction
    (``p reversed``), the permutation p over seeds, and whether ``p`` is below :data:`ALPHA` / (number of
    rows).
    """
    default = max(results_by_scale)
    smaller = [s for s in _comparable(results_by_scale, status_of) if s != default]
    if status_of.get(default) not in COMPARABLE or not smaller:
        return []
    level = ALPHA / (len(layers) * len(smaller))
    rows = []
    for layer in layers:
        big, big_seeds = final_stable_ranks(results_by_scale[default], layer, kind)
        for s in smaller:
            small, small_seeds = final_stable_ranks(results_by_scale[s], layer, kind)
            p = float(stats.mannwhitneyu(big, small, alternative="greater").pvalue)
            rows.append(
                {
                    "layer": layer + 1,
                    "scale": s,
                    "seeds": f"{len(big_seeds)} / {len(small_seeds)}",
                    "heads": f"{len(big)} / {len(small)}",
                    "default mean": float(np.nanmean(big)),
                    "scale mean": float(np.nanmean(small)),
                    "p": p,
                    "p reversed": float(stats.mannwhitneyu(big, small, alternative="less").pvalue),
                    "p floor": 1.0 / math.comb(len(big) + len(small), len(small)),
                    "p over seeds": float(seed_permutation_p(big_seeds, small_seeds)),
                    "p floor over seeds": permutation_floor(len(big_seeds), len(small_seeds)),
                    "level": level,
                    "significant": p < level,
                }
            )
    return rows


def ordering(
    results_by_scale: Mapping[float, Any],
    status_of: Mapping[float, str],
    layers: Sequence[int],
    kind: str = "qk",
) -> list[dict[str, Any]]:
    """Per layer: the trained scales' mean final stable ranks (largest scale first) and every reversal.

    A reversal is a pair of trained scales where the smaller scale has the higher mean; each comes with the
    two-sided Mann-Whitney p over heads × seeds. ``monotone`` is True when a layer has none.
    """
    kept = _comparable(results_by_scale, status_of)
    if len(kept) < 2:
        return []
    out = []
    for layer in layers:
        pooled = {s: final_stable_ranks(results_by_scale[s], layer, kind)[0] for s in kept}
        means = {s: float(np.nanmean(v)) for s, v in pooled.items()}
        reversals = [
            {
                "above": small,
                "below": big,
                "p": float(stats.mannwhitneyu(pooled[small], pooled[big], alternative="two-sided").pvalue),
            }
            for big, small in itertools.combinations(kept, 2)  # kept is largest first
            if means[small] > means[big]
        ]
        out.append({"layer": layer + 1, "means": means, "reversals": reversals, "monotone": not reversals})
    return out


def seeds_per_scale(results_by_scale: Mapping[float, Any]) -> dict[float, int]:
    """``{scale: stored seeds}``, largest scale first."""
    return {s: len(as_runs(results_by_scale[s])) for s in sorted(results_by_scale, reverse=True)}


def lower_rank_claim(
    rows: Sequence[Mapping],
    tests: Sequence[Mapping] = (),
    order: Sequence[Mapping] = (),
    seeds: Mapping[float, int] | None = None,
) -> dict[str, Any]:
    """The verdict on "smaller init scale, lower stable rank" from the diagnostics, tests and ordering.

    ``rows`` from :func:`diagnostics_rows` (largest scale first), ``tests`` from :func:`layer_tests`,
    ``order`` from :func:`ordering`, ``seeds`` from :func:`seeds_per_scale` (default: the rows' ``seeds``).
    Returns the verdict, the reasons it is not "shown" (empty when it is), the trained scales, the scales
    left out with why, and the layers whose ordering is not monotone.
    """
    seeds = dict(seeds) if seeds is not None else {r["init scale"]: int(r.get("seeds", 1)) for r in rows}
    trained = [r["init scale"] for r in rows if r["status"] in COMPARABLE]
    left = {r["init scale"]: r["status"] for r in rows if r["status"] not in COMPARABLE}
    default = max((r["init scale"] for r in rows), default=None)
    not_monotone = [o for o in order if not o["monotone"]]
    out = {
        "scales": trained,
        "left out": left,
        "partly aligned": [s for s, why in left.items() if why == "partly aligned"],
        "not monotone": not_monotone,
        "monotone": len(trained) >= 2 and bool(order) and not not_monotone,
        "seeds": seeds,
    }
    if default not in trained or len(trained) < 2:
        if len(rows) < 2:
            why = f"only scale {default:g} is stored" if rows else "no scale is stored"
        elif default in left:
            why = f"the default scale {default:g} is {left[default]}"
        else:
            why = "fewer than two scales trained without collapse or partial alignment"
        return {**out, "verdict": CANNOT, "reasons": [why]}
    layers = sorted({t["layer"] for t in tests})
    reversed_layers = {t["layer"] for t in tests if t["p reversed"] < t["level"]}
    if layers and len(reversed_layers) > len(layers) / 2:
        return {**out, "verdict": CONTRADICTED,
                "reasons": [f"default init significantly below a smaller scale in layers "
                            f"{', '.join(map(str, sorted(reversed_layers)))}"]}
    reasons = []
    weak = [t for t in tests if not t["significant"]]
    if not tests or weak:
        reasons.append(
            "default init not significantly above "
            + ("any smaller scale" if not tests else "; ".join(f"scale {t['scale']:g} in layer {t['layer']}"
                                                                  for t in weak))
        )
    for o in not_monotone:
        pairs = ", ".join(f"{r['above']:g} above {r['below']:g}" for r in o["reversals"])
        reasons.append(f"ordering not monotone in layer {o['layer']} ({pairs})")
    few = [s for s in trained if seeds.get(s, 1) < MIN_SEEDS]
    if few:
        reasons.append(
            "fewer than " + f"{MIN_SEEDS} seeds at "
            + ", ".join(f"scale {s:g} ({seeds.get(s, 1)})" for s in few)
        )
    if not reasons:
        verdict = SHOWN
    elif any(t["significant"] for t in tests):
        verdict = PARTLY
    else:
        verdict = NOT_SHOWN
    return {**out, "verdict": verdict, "reasons": reasons}


def analyse(results_by_scale: Mapping[float, Any], layers: Sequence[int], kind: str = "qk") -> dict[str, Any]:
    """Everything the chapter states about one tier's sweep: diagnostics rows, tests, ordering, verdict."""
    rows = diagnostics_rows(results_by_scale, kind, layers)
    status_of = statuses(rows)
    tests = layer_tests(results_by_scale, status_of, layers, kind)
    order = ordering(results_by_scale, status_of, layers, kind)
    claim = lower_rank_claim(rows, tests, order, seeds_per_scale(results_by_scale))
    return {"rows": rows, "tests": tests, "order": order, "claim": claim, "status": status_of}


def tests_table(tests: Sequence[Mapping]) -> list[dict[str, Any]]:
    """:func:`layer_tests` as table rows (p-values as numbers, the level and the verdict of each)."""
    return [
        {
            "layer": t["layer"],
            "scale": t["scale"],
            "seeds (default / scale)": t["seeds"],
            "heads": t["heads"],
            "default": t["default mean"],
            "scale's": t["scale mean"],
            "p, heads × seeds": t["p"],
            "its floor ": t["p floor"],
            "below level": "yes" if t["significant"] else "no",
            "p, seeds": t["p over seeds"],
            "its floor": t["p floor over seeds"],
        }
        for t in tests
    ]


# --------------------------------------------------------------------------- the paper's Fig. 3 (v1)


def ratio_curves(results, layer: int, kind: str = "qk", top: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Steps (> 0) and the median over heads (and seeds) of ``σ_k/σ_1`` at ``layer``: ``[steps, top - 1]``
    for k = 2 … ``top``."""
    rs = as_runs(results)
    steps = np.asarray(rs[0].arrays["step"])
    keep = steps > 0
    s = np.concatenate([r.arrays[f"delta_{kind}"][:, layer].astype(float) for r in rs], axis=1)[keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = s[..., 1:top] / s[..., :1]  # [steps, heads·seeds, top - 1]
    return steps[keep], np.nanmedian(ratios, axis=1)


def plateau(steps: np.ndarray, median_ratios: np.ndarray, threshold: float = SMALL_RATIO) -> dict[str, Any]:
    """Where the median ``σ2/σ1`` stays below ``threshold``: the longest run of consecutive tracked steps.

    Returns ``start`` and ``end`` (tracked steps, None when never below), the smallest median ``σ2/σ1``
    and the steps after the plateau at which the median ``σ2/σ1`` and ``σ3/σ1`` first reach ``threshold``.
    """
    r2 = median_ratios[:, 0]
    below = r2 < threshold
    best, run_start = (None, None), None
    for i, b in enumerate(list(below) + [False]):
        if b and run_start is None:
            run_start = i
        if not b and run_start is not None:
            if best[0] is None or i - run_start > best[1] - best[0] + 1:
                best = (run_start, i - 1)
            run_start = None
    out = {"start": None, "end": None, "min": float(np.nanmin(r2)), "sigma2_back": None, "sigma3_back": None}
    if best[0] is None:
        return out
    i0, i1 = best
    out.update(start=int(steps[i0]), end=int(steps[i1]))
    for k, name in ((0, "sigma2_back"), (1, "sigma3_back")):
        if median_ratios.shape[1] > k:
            after = np.flatnonzero(median_ratios[i1 + 1 :, k] >= threshold)
            out[name] = int(steps[i1 + 1 + after[0]]) if len(after) else None
    return out


def plateau_text(results_by_scale: Mapping[float, Any], layer: int, kind: str = "qk") -> str:
    """One clause per scale (largest first) describing :func:`plateau` of the median ``σ2/σ1``."""
    parts = []
    for s in sorted(results_by_scale, reverse=True):
        p = plateau(*ratio_curves(results_by_scale[s], layer, kind))
        if p["start"] is None:
            parts.append(f"scale {s:g}: never below {SMALL_RATIO:g} (smallest {p['min']:.2g})")
            continue
        back = [
            f"{name} back above {SMALL_RATIO:g} at step {p[key]:,}"
            for key, name in (("sigma2_back", "σ2/σ1"), ("sigma3_back", "σ3/σ1"))
            if p[key] is not None
        ]
        where = (f"at step {p['start']:,} only" if p["start"] == p["end"]
                 else f"from step {p['start']:,} to {p['end']:,}")
        parts.append(
            f"scale {s:g}: below {SMALL_RATIO:g} {where} (smallest {p['min']:.2g})"
            + (f", {', '.join(back)}" if back else ", and stays there")
        )
    return "; ".join(parts)


def plateau_points(steps: np.ndarray, median_ratios: np.ndarray, threshold: float = SMALL_RATIO) -> int:
    """Tracked steps in :func:`plateau`'s stretch (0 when the median ``σ2/σ1`` never falls below it)."""
    p = plateau(steps, median_ratios, threshold)
    if p["start"] is None:
        return 0
    return int(np.searchsorted(steps, p["end"]) - np.searchsorted(steps, p["start"]) + 1)


def incremental_claim(
    results_by_scale: Mapping[float, Any], status_of: Mapping[float, str], layer: int = 1
) -> dict[str, Any]:
    """The paper's Fig. 3 (v1) claim, "incremental learning is more pronounced at smaller scales".

    Among the trained scales (:data:`COMPARABLE`), for ΔW_K W_Q^T and ΔW_V W_O^T of ``layer``: the length of
    the stretch where the median ``σ2/σ1`` over heads × seeds stays below :data:`SMALL_RATIO`
    (:func:`plateau_points`, in tracked steps) must not shrink as the scale falls and must be longer at the
    smallest scale than at the default; where both come back, ``σ3/σ1`` must come back at a later tracked
    step than ``σ2/σ1`` (one direction at a time; it cannot come earlier, as ``σ3 ≤ σ2`` in every head).
    Verdict as :func:`lower_rank_claim`: cannot be shown with fewer than two trained scales; shown when
    both products pass and every trained scale has :data:`MIN_SEEDS` seeds; contradicted when
    for both the default's stretch is the longer; partly shown when one passes, or both but with too few
    seeds; not shown at this scale otherwise.
    """
    kept = _comparable(results_by_scale, status_of)
    default = max(results_by_scale) if results_by_scale else None
    out: dict[str, Any] = {"layer": layer + 1, "scales": kept, "points": {}, "passes": {}}
    if default not in kept or len(kept) < 2:
        why = (f"only scale {default:g} is stored" if len(results_by_scale) == 1
               else "fewer than two scales trained without collapse or partial alignment")
        return {**out, "verdict": CANNOT, "reasons": [why]}
    reasons, against = [], 0
    for kind in ("qk", "vo"):
        points, ordered = {}, True
        for s in kept:
            steps, med = ratio_curves(results_by_scale[s], layer, kind)
            points[s] = plateau_points(steps, med)
            p = plateau(steps, med)
            if p["sigma2_back"] and p["sigma3_back"] and p["sigma3_back"] <= p["sigma2_back"]:
                ordered = False  # σ3 ≤ σ2 per head, so "not later" means "at the same tracked step"
                reasons.append(f"Δ{kind} at scale {s:g}: σ2/σ1 and σ3/σ1 come back at the same step")
        lengths = [points[s] for s in kept]  # largest scale first
        monotone = all(b >= a for a, b in zip(lengths, lengths[1:]))
        longer = lengths[-1] > lengths[0]
        against += lengths[0] > lengths[-1]
        if not monotone:
            reasons.append(f"Δ{kind}: the stretch shrinks as the scale falls ({_points_text(points)})")
        if not longer:
            reasons.append(
                f"Δ{kind}: no longer at the smallest scale than at the default ({_points_text(points)})"
            )
        out["points"][kind] = points
        out["passes"][kind] = monotone and longer and ordered
    passing = sum(out["passes"].values())
    few = [s for s in kept if len(as_runs(results_by_scale[s])) < MIN_SEEDS]
    if few:
        reasons.append(f"fewer than {MIN_SEEDS} seeds at " + ", ".join(f"scale {s:g}" for s in few))
    if against == 2:
        verdict = CONTRADICTED
    elif passing == 2 and not few:
        verdict = SHOWN
    elif passing:
        verdict = PARTLY
    else:
        verdict = NOT_SHOWN
    return {**out, "verdict": verdict, "reasons": reasons}


def _points_text(points: Mapping[float, int]) -> str:
    return ", ".join(f"{n} tracked step{'s' if n != 1 else ''} at {s:g}" for s, n in points.items())


def incremental_claims(
    sweeps: Mapping[str, Mapping[float, Any]], analyses: Mapping[str, Mapping[str, Any]], chapter: str,
    layer: int = 1,
) -> list[dict[str, str]]:
    """Claim rows for the paper's Fig. 3 (v1), one per tier with a sweep (:func:`incremental_claim`)."""
    out = []
    for tier, sweep in sweeps.items():
        c = incremental_claim(sweep, analyses[tier]["status"], layer)
        ss = [x for x in sorted(sweep, reverse=True) if x in c["points"].get("qk", {})]
        measured = seeds_text(seeds_per_scale(sweep))
        if ss:
            measured = (
                f"tracked steps with the median σ2/σ1 of layer {layer + 1} below {SMALL_RATIO:g}, at scales "
                + ", ".join(f"{x:g}" for x in ss) + ": "
                + "; ".join(f"{k} " + "/".join(str(c["points"][k][x]) for x in ss) for k in ("qk", "vo"))
                + f"; {measured}"
            )
        if c["reasons"]:
            measured += "; short of shown: " + "; ".join(c["reasons"])
        out.append(claims.row("Incremental learning is more pronounced at smaller initialization scales",
                              "Fig. 3 (v1)", tier, measured, c["verdict"], chapter))
    return out


# --------------------------------------------------------------------------- chapter 05: stored sweeps


def sweep_seeds(settings) -> tuple[int, ...]:
    """The seeds of a profile's init-scale sweep (``sweep_seeds``; its first ``seeds`` where not set)."""
    return tuple(getattr(settings, "sweep_seeds", None) or settings.seeds[:1])


def stored_sweep(
    run: Callable[..., Any], table: Mapping[str, Any], tier: str, dataset: str
) -> dict[float, list]:
    """``tier``'s stored init-scale sweep, never training: ``{scale: [result per stored seed]}``.

    Every seed of the tier's ``sweep_seeds`` is looked up (``sweep=True``); scales with no stored seed are
    left out, so the sweep shows whatever is stored.
    """
    from rankbook.analysis.report import lookup

    settings = table[tier]
    found = {
        s: [r for r in (lookup(run, settings, dataset, s, seed, sweep=True) for seed in sweep_seeds(settings))
            if r is not None]
        for s in settings.init_scales
    }
    return {s: rs for s, rs in found.items() if rs}


def _per_scale(rows: Sequence[Mapping], column: str, fmt: str) -> str:
    return "; ".join(f"{format(r[column], fmt)} (scale {r['init scale']:g})" for r in rows)


def seeds_text(seeds: Mapping[float, int]) -> str:
    """"3 seeds at scale 1; 1 seed at scales 0.1, 0.03, 0.01" (largest scale first)."""
    groups: dict[int, list[float]] = {}
    for s, n in seeds.items():
        groups.setdefault(n, []).append(s)
    return "; ".join(
        f"{n} seed{'s' if n != 1 else ''} at scale{'s' if len(ss) > 1 else ''} "
        + ", ".join(f"{s:g}" for s in ss)
        for n, ss in groups.items()
    )


def tests_text(tests: Sequence[Mapping]) -> str:
    """Per layer: the p of default init above each smaller trained scale ("layer 1: p = 2e-05 (0.1), …")."""
    by_layer: dict[int, list[str]] = {}
    for t in tests:
        by_layer.setdefault(t["layer"], []).append(f"{t['p']:.2g} ({t['scale']:g})")
    return "; ".join(f"layer {layer}: p = {', '.join(ps)}" for layer, ps in by_layer.items()) or "no test"


def order_text(order: Sequence[Mapping]) -> str:
    """"monotone in layer 1; not in layer 3 (0.03 above 0.1, p = 0.4)" over the layers."""
    parts = []
    for o in order:
        if o["monotone"]:
            parts.append(f"layer {o['layer']}: monotone")
        else:
            pairs = ", ".join(
                f"{r['above']:g} above {r['below']:g}, p = {r['p']:.2g}" for r in o["reversals"]
            )
            parts.append(f"layer {o['layer']}: not monotone ({pairs})")
    return "; ".join(parts) or "no two trained scales to order"


def scale_numbers(analysis: Mapping[str, Any]) -> dict[str, str]:
    """The glued text of one tier's sweep (:func:`analyse`): per-scale columns, tests, ordering, verdict."""
    rows, claim = analysis["rows"], analysis["claim"]
    tests = analysis["tests"]
    level = tests[0]["level"] if tests else ALPHA
    widths = sorted({round(r["random |cos|"], 3) for r in rows})
    return {
        "ranks": _per_scale(rows, "stable rank", ".2f"),
        "accuracy": _per_scale(rows, "accuracy", ".2f"),
        "alignment": _per_scale(rows, "head alignment", ".2f"),
        "relative": _per_scale(rows, "‖Δ‖/‖W(0)‖", ".3g"),
        "random_alignment": " and ".join(f"{w:.3f}" for w in widths),
        "seeds": seeds_text(claim["seeds"]),
        "trained": ", ".join(f"{s:g}" for s in claim["scales"]) or "none",
        "left_out": ", ".join(f"{s:g} ({why})" for s, why in claim["left out"].items()) or "none",
        "partly_aligned": ", ".join(f"{s:g}" for s in claim["partly aligned"]) or "none",
        "tests": tests_text(tests),
        "level": f"{level:.2g}",
        "order": order_text(analysis["order"]),
        "verdict": claim["verdict"],
        "reasons": "; ".join(claim["reasons"]) or "none",
    }


def scale_claims(analyses: Mapping[str, Mapping[str, Any]], chapter: str) -> list[dict[str, str]]:
    """Claim rows, one per tier with a stored (or live) sweep: smaller init scale, lower stable rank."""
    out = []
    for tier, analysis in analyses.items():
        text = scale_numbers(analysis)
        measured = f"stable rank {text['ranks']}; {text['seeds']}"
        if analysis["claim"]["left out"]:
            measured += f"; left out: {text['left_out']}"
        if analysis["tests"]:
            measured += f"; default above smaller scales, {text['tests']} (level {text['level']})"
        if analysis["claim"]["reasons"]:
            measured += f"; short of shown: {text['reasons']}"
        out.append(
            claims.row(
                "Smaller initialization scales give lower-rank heads",
                "Fig. 4 (v1)",
                tier,
                measured,
                analysis["claim"]["verdict"],
                chapter,
            )
        )
    return out



#: the keys of :func:`tier_numbers` (a tier with no stored sweep gets each one as "not stored")
NUMBER_KEYS = ("ranks", "accuracy", "alignment", "relative", "random_alignment", "seeds", "trained",
               "left_out", "partly_aligned", "tests", "level", "order", "verdict", "reasons",
               "plateau_qk", "plateau_vo", "fig3_verdict", "fig3_reasons")


def tier_numbers(
    analyses: Mapping[str, Mapping[str, Any]], tier: str, sweeps: Mapping[str, Any], layer: int = 1
) -> dict[str, str]:
    """:func:`scale_numbers` of ``tier`` plus its Fig. 3 plateau text (median ``σ2/σ1`` at ``layer``, qk and
    vo) and :func:`incremental_claim`'s verdict; every value says "not stored" when the tier has no sweep,
    so a page's glue keys always exist."""
    if tier not in analyses:
        return {k: f"not stored ({tier} tier, this code and data)" for k in NUMBER_KEYS}
    fig3 = incremental_claim(sweeps[tier], analyses[tier]["status"], layer)
    out = {
        **scale_numbers(analyses[tier]),
        "plateau_qk": plateau_text(sweeps[tier], layer, "qk"),
        "plateau_vo": plateau_text(sweeps[tier], layer, "vo"),
        "fig3_verdict": fig3["verdict"],
        "fig3_reasons": "; ".join(fig3["reasons"]) or "none",
    }
    assert set(out) == set(NUMBER_KEYS)
    return out
