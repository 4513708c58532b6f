"""What chapters 04-07 state: the numbers glued into their prose and the claim rows of the results page.

Every number a chapter writes comes from a function here, computed from runs
(never typed): :func:`spectrum_numbers` (Figs. 1a/5/11), :func:`trend_numbers`
(Fig. 12), :func:`transient_numbers`, and the claim rows built from them for
:func:`rankbook.analysis.claims.record`. :func:`stored` fetches the stored
runs of the other tiers (``reference``, ``paper``) without training, so a
chapter shows them beside its live run. :func:`glue_all` hands a dict of
numbers to myst-nb under the chapter's prefix.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rankbook.analysis import claims, trend
from rankbook.settings import profiles

KINDS = ("qk", "vo")
NAMES = {"qk": "ΔW_K W_Q^T", "vo": "ΔW_V W_O^T"}


def glue_all(prefix: str, numbers: Mapping[str, Any]) -> None:
    """``glue(f"{prefix}_{key}", value)`` for every number (myst-nb; text values for ``{glue:text}``)."""
    from myst_nb import glue

    for key, value in numbers.items():
        glue(f"{prefix}_{key}", value, display=False)


def stored(
    run: Callable[..., Any], table: Mapping[str, Any], profile: str, seeds_of: str = "seeds", **kw
) -> dict[str, list]:
    """The stored runs of the tiers other than ``profile`` (``run(settings, *, train_missing=False, ...)``).

    ``run`` is called per seed of each tier's settings with ``seed=``; returns ``{tier: [results]}`` (empty
    where nothing is stored for this code and data).
    """
    out = {}
    for tier in profiles.PROFILE_NAMES:
        if tier in (profile, "fast"):
            continue
        settings = table[tier]
        found = [run(settings, seed=seed, train_missing=False, **kw) for seed in getattr(settings, seeds_of)]
        out[tier] = [r for r in found if r is not None]
    return out


def stored_note(found: Mapping[str, Sequence]) -> str:
    """One sentence per tier: stored with n seeds, or not stored for this code and data."""
    parts = [
        f"{tier}: {len(rs)} stored run(s)" if rs else f"{tier}: not stored for this code/data"
        for tier, rs in found.items()
    ]
    return "; ".join(parts) if parts else "no other tier"


# --------------------------------------------------------------------------- Figs. 1a / 5 / 11


def top_share(svals: np.ndarray) -> float:
    """Fraction of ``‖A‖_F²`` carried by the top singular value, averaged over heads (``svals [..., k]``)."""
    s = np.asarray(svals, dtype=float)
    return float(np.nanmean(s[..., 0] ** 2 / (s**2).sum(-1)))


def spectrum_numbers(result) -> dict[str, str]:
    """Top-singular-value shares of Δ (final step) and of the product at init, per kind, as text."""
    a = result.arrays
    out = {
        "final_step": f"{int(a['step'][-1]):,}",
        "heads": str(a["delta_qk"].shape[1] * a["delta_qk"].shape[2]),
    }
    for kind in KINDS:
        out[f"share_delta_{kind}"] = f"{top_share(a[f'delta_{kind}'][-1]):.0%}"
        out[f"share_init_{kind}"] = f"{top_share(a[f'init_{kind}']):.0%}"
    return out


def spectrum_claim(result, tier: str, chapter: str) -> dict[str, str]:
    """Claim row: Δ's spectrum is concentrated in few directions, unlike the product at init."""
    a = result.arrays
    shares = {k: (top_share(a[f"delta_{k}"][-1]), top_share(a[f"init_{k}"])) for k in KINDS}
    measured = "; ".join(
        f"top σ² share {NAMES[k]} {d:.0%} vs {i:.0%} at init" for k, (d, i) in shares.items()
    )
    verdict = "reproduced" if all(d > i for d, i in shares.values()) else "not reproduced"
    return claims.row(
        "The learned perturbation Δ is low-rank compared with the initial product",
        "Figs. 1a, 5, 11",
        tier,
        measured,
        verdict,
        chapter,
    )


# --------------------------------------------------------------------------- Fig. 12


def trend_numbers(results) -> dict[str, str]:
    """Per kind: verdict counts, overall verdict, the mean over heads and layers at step 1, minimum, end.

    ``results``: one run or its seeds (heads pooled, see :func:`rankbook.analysis.trend.pooled`).
    """
    out = {}
    for kind in KINDS:
        ts = trend.run_trends(results, kind)
        steps, sr = trend.pooled(results, kind)
        with warnings.catch_warnings():  # step 0: Δ = 0, every head NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(sr.reshape(len(steps), -1), axis=1)
        i1 = list(steps).index(1) if 1 in steps else 1
        i_min = i1 + int(np.nanargmin(mean[i1:]))
        out.update(
            {
                f"{kind}_rises": trend.count(ts, "rises"),
                f"{kind}_overall": trend.overall(ts),
                f"{kind}_step1": f"{mean[i1]:.2f}",
                f"{kind}_min": f"{mean[i_min]:.2f}",
                f"{kind}_min_step": f"{int(steps[i_min]):,}",
                f"{kind}_end": f"{mean[-1]:.2f}",
                f"{kind}_rho": f"{np.mean([t.rho_mean for t in ts]):.2f}",
            }
        )
        out["end_step"] = f"{int(steps[-1]):,}"
    return out


def trend_claim(results, tier: str, chapter: str, paper: str = "Fig. 12") -> dict[str, str]:
    """Claim row: the stable rank of Δ grows gradually through training (after the transient), per layer."""
    layer_trends = {k: trend.run_trends(results, k) for k in KINDS}
    measured = "; ".join(f"{NAMES[k]} rises in {trend.count(ts)}" for k, ts in layer_trends.items())
    overall = {k: trend.overall(ts) for k, ts in layer_trends.items()}
    rising = sum(v == "rises" for v in overall.values())
    verdict = "reproduced" if rising == len(overall) else "partly reproduced" if rising else "not reproduced"
    return claims.row(
        "The stable rank of Δ increases gradually during training", paper, tier, measured, verdict, chapter
    )


def chapter_claims(
    live: Sequence,
    profile: str,
    stored_runs: Mapping[str, Sequence],
    chapter: str,
    trend_paper: str = "Fig. 12",
) -> list[dict[str, str]]:
    """The spectrum and trend claims of the live runs (tier ``profile``) and of each stored tier with runs."""
    rows = []
    for tier, rs in {profile: live, **stored_runs}.items():
        if rs:
            rows += [spectrum_claim(rs[0], tier, chapter), trend_claim(rs, tier, chapter, trend_paper)]
    return rows


def describe_runs(results: Sequence, describe: Callable[[Any, str], str], metric: str) -> str:
    """One line per run: its title line, final ``metric``, steps, training time and device."""
    lines = []
    for r in results:
        m = r.manifest
        lines.append(
            f"{describe(r, r.path.parent.name)}\n  {metric} {m[f'final_{metric}']:.3f} after "
            f"{m['total_steps']} steps, trained in {m['wall_s']:.0f} s on {m['device']}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- the first-step transient


def transient_numbers(summary: Mapping[str, Mapping[str, float]], result) -> dict[str, str]:
    """Adam vs gradient vs sign step (:func:`rankbook.analysis.transient.summary`) and the run's step 1."""
    a = result.arrays
    steps = list(a["step"])
    out = {}
    for kind in KINDS:
        for name, value in summary[kind].items():
            out[f"{kind}_{name}"] = f"{value:.2f}"
        if 1 in steps:
            out[f"{kind}_recorded"] = f"{np.nanmean(a[f'stable_rank_delta_{kind}'][steps.index(1)]):.2f}"
    return out
