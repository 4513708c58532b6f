"""Chapter 05's diagnostics per init scale: is a low stable rank incremental learning, or a collapse?

A stable rank near 1 after training is what the paper predicts at small init
scales (Fig. 4), but it is also what a degenerate solution looks like: every
head of a layer moving along the same single direction, by far more than its
initial size, while the model barely learns. The paper's claim is about the
first; so beside the stable rank each scale gets

* **test accuracy** (and whether it is above chance);
* **relative change** ``‖Δ‖_F / ‖W(0)‖_F`` of each head's ``W_K W_Q^T``
  (``W_V W_O^T``): a perturbation hundreds of times the initial product is no
  longer a perturbation of it;
* **head alignment**: the mean ``|cos|`` between the top singular vectors of
  Δ of different heads of a layer (left and right vectors, averaged). Heads
  learning different directions give about ``sqrt(2 / (π d_model))``, the
  value for independent random directions (:func:`random_alignment`); heads
  that all learned one direction give ``≈ 1``;
* ``σ2/σ1``, the second singular value of Δ relative to the first.

Status of a run (:func:`status`): ``"did not train"`` when the accuracy is
below :data:`TRAINED_OVER_CHANCE` times chance (for CIFAR-10, 0.15: 1.5× the
0.10 of guessing); ``"collapsed"`` when the head alignment, averaged over
layers, is at least :data:`ALIGNED` (0.9: for ``d_model = 64`` random
directions give 0.10, so 0.9 leaves no room for chance); ``"partly aligned"``
from :data:`PARTLY_ALIGNED` (0.5, an angle of 60° on average: the heads
mostly share their direction); ``"trained"`` otherwise. The lower-rank
comparison (:func:`lower_rank_claim`) leaves out the scales that did not train
or collapsed and names the partly aligned ones; the chapter says both.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rankbook.analysis import claims

#: mean |cos| between heads' top singular vectors (averaged over layers) from which heads count as collapsed
ALIGNED = 0.9
#: from this mean |cos| on, heads count as partly aligned (named beside their stable rank)
PARTLY_ALIGNED = 0.5
#: statuses whose stable rank enters the lower-rank comparison
COMPARABLE = ("trained", "partly aligned")
#: accuracy must exceed this multiple of chance (1 / classes) for a run to count as trained
TRAINED_OVER_CHANCE = 1.5


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


def diagnose(
    results: Sequence, kind: str = "qk", layers: Sequence[int] | None = None
) -> dict[str, float | str]:
    """The diagnostics of one init scale, averaged over its seeds' runs and the given layers (default all)."""
    first = results[0]
    layers = list(range(first.config["depth"])) if layers is None else list(layers)
    acc = float(np.mean([r.manifest["final_test_acc"] for r in results]))
    sr = np.array(
        [r.arrays[f"stable_rank_delta_{kind}"][-1][layers] for r in results]
    )  # [seeds, layers, heads]
    align = float(np.mean([head_alignment(r, kind)[layers].mean() for r in results]))
    classes = int(first.manifest.get("classes", 10))
    return {
        "accuracy": acc,
        "stable rank": float(np.nanmean(sr)),
        "std over heads": float(np.nanstd(sr, axis=-1).mean()),
        "‖Δ‖/‖W(0)‖": float(np.mean([relative_change(r, kind)[layers].mean() for r in results])),
        "head alignment": align,
        "σ2/σ1": float(np.nanmean([second_to_first(r, kind)[layers] for r in results])),
        "status": status(acc, classes, align),
    }


def diagnostics_rows(
    results_by_scale: Mapping[float, Sequence], kind: str = "qk", layers: Sequence[int] | None = None
) -> list[dict]:
    """One row per init scale (largest first): the scale, then :func:`diagnose`'s columns."""
    return [
        {"init scale": scale, **diagnose(results_by_scale[scale], kind, layers)}
        for scale in sorted(results_by_scale, reverse=True)
    ]


def lower_rank_claim(rows: Sequence[Mapping]) -> dict[str, object]:
    """Does the stable rank fall with the init scale *among the scales that trained without collapsing*?

    ``rows`` from :func:`diagnostics_rows` (largest scale first). Returns the trained scales, their stable
    ranks, whether those decrease as the scale decreases (``monotone``), and the scales left out with why.
    """
    trained = [r for r in rows if r["status"] in COMPARABLE]
    ranks = [r["stable rank"] for r in trained]
    return {
        "scales": [r["init scale"] for r in trained],
        "stable ranks": ranks,
        "monotone": len(ranks) >= 2 and all(b <= a for a, b in zip(ranks, ranks[1:])),
        "left out": {r["init scale"]: r["status"] for r in rows if r["status"] not in COMPARABLE},
        "partly aligned": [r["init scale"] for r in trained if r["status"] == "partly aligned"],
    }


# --------------------------------------------------------------------------- chapter 05: init scales


def stored_sweep(
    run: Callable[..., Any], table: Mapping[str, Any], tier: str, dataset: str
) -> dict[float, Any]:
    """``tier``'s stored init-scale sweep (first seed, ``sweep=True``): ``{scale: result}``, stored only."""
    from rankbook.analysis.report import lookup

    settings = table[tier]
    seed = settings.seeds[0]
    found = {s: lookup(run, settings, dataset, s, seed, sweep=True) for s in settings.init_scales}
    return {s: r for s, r in found.items() if r is not None}


def _per_scale(rows: Sequence[Mapping], column: str, fmt: str) -> str:
    return "; ".join(f"{format(r[column], fmt)} (scale {r['init scale']:g})" for r in rows)


def scale_numbers(rows: Sequence[Mapping], claim: Mapping[str, Any], d_model: int) -> dict[str, str]:
    """Chapter 05's glued text: per-scale columns of the diagnostics and the lower-rank verdict."""
    trained = claim["scales"]
    monotone = (
        "cannot be compared (fewer than two such scales)"
        if len(trained) < 2
        else "decreases as the scale decreases"
        if claim["monotone"]
        else "does not decrease with the scale"
    )
    left = claim["left out"]
    return {
        "ranks": _per_scale(rows, "stable rank", ".2f"),
        "accuracy": _per_scale(rows, "accuracy", ".2f"),
        "alignment": _per_scale(rows, "head alignment", ".2f"),
        "relative": _per_scale(rows, "‖Δ‖/‖W(0)‖", ".3g"),
        "trained": ", ".join(f"{s:g}" for s in trained) or "none",
        "partly_aligned": ", ".join(f"{s:g}" for s in claim["partly aligned"]) or "none",
        "monotone": monotone,
        "left_out": ", ".join(f"{s:g} ({why})" for s, why in left.items()) or "none",
        "random_alignment": f"{random_alignment(d_model):.2f}",
    }


def scale_claims(
    rows: Sequence[Mapping],
    profile: str,
    stored_sweeps: Mapping[str, Mapping[float, Any]],
    layers: Sequence[int],
    chapter: str,
) -> list[dict[str, str]]:
    """Claim rows: smaller init scale, lower stable rank, among the scales that trained without collapsing."""
    out = []
    for tier, tier_rows in {
        profile: rows,
        **{
            t: diagnostics_rows({s: [r] for s, r in sweep.items()}, "qk", layers)
            for t, sweep in stored_sweeps.items()
            if sweep
        },
    }.items():
        claim = lower_rank_claim(tier_rows)
        left = "; ".join(f"{s:g} {why}" for s, why in claim["left out"].items())
        measured = _per_scale(tier_rows, "stable rank", ".2f") + (f"; left out: {left}" if left else "")
        if claim["partly aligned"]:
            measured += "; partly aligned heads at " + ", ".join(f"{s:g}" for s in claim["partly aligned"])
        verdict = (
            "inconclusive"
            if len(claim["scales"]) < 2
            else "reproduced"
            if claim["monotone"]
            else "not reproduced"
        )
        out.append(
            claims.row(
                "Smaller initialization scales give lower-rank heads",
                "Fig. 4",
                tier,
                measured,
                verdict,
                chapter,
            )
        )
    return out
