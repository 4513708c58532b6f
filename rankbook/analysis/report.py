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
    from rankbook.book.glue import glue

    for key, value in numbers.items():
        glue(f"{prefix}_{key}", value, display=False)


def lookup(run: Callable[..., Any], settings: Any, *args, **kw) -> Any:
    """``run(settings, *args, train_missing=False, **kw)``: the stored result, or None when it is not stored
    or when its data is not on this machine (a run's key holds its data's fingerprint)."""
    try:
        return run(settings, *args, train_missing=False, **kw)
    except FileNotFoundError:  # DataNotFoundError, TextDataNotFoundError: no data, so no key to look up
        return None


def stored(
    run: Callable[..., Any], table: Mapping[str, Any], profile: str, seeds_of: str = "seeds", **kw
) -> dict[str, list]:
    """The stored runs of the tiers other than ``profile`` and ``fast``, never training (:func:`lookup`).

    ``run`` is called per seed of each tier's settings with ``seed=``; returns ``{tier: [results]}`` (empty
    where nothing is stored for this code and data).
    """
    out = {}
    for tier in profiles.PROFILE_NAMES:
        if tier in (profile, "fast"):
            continue
        settings = table[tier]
        found = [lookup(run, settings, seed=seed, **kw) for seed in getattr(settings, seeds_of)]
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


def model_name(result) -> str:
    """How a claim row names the model of a run: "ViT" or "Language model" (from the run's config)."""
    return "ViT" if result.config.get("kind") == "vit" else "Language model"


def spectrum_claim(result, tier: str, chapter: str) -> dict[str, str]:
    """Claim row: Δ's spectrum is concentrated in few directions, unlike the product at init."""
    a = result.arrays
    shares = {k: (top_share(a[f"delta_{k}"][-1]), top_share(a[f"init_{k}"])) for k in KINDS}
    measured = "; ".join(
        f"top σ² share {NAMES[k]} {d:.0%} vs {i:.0%} at init" for k, (d, i) in shares.items()
    )
    verdict = claims.combine([claims.verdict(d > i, against=d < i) for d, i in shares.values()])
    return claims.row(
        f"{model_name(result)}: the learned perturbation Δ is low-rank compared with the initial product",
        "Figs. 1a, 5, 11",
        tier,
        measured,
        verdict,
        chapter,
    )


# --------------------------------------------------------------------------- Fig. 12


def _layer_mean(results, kind: str) -> tuple[np.ndarray, np.ndarray]:
    steps, sr = trend.pooled(results, kind)
    with warnings.catch_warnings():  # step 0: Δ = 0, every head NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return steps, np.nanmean(sr.reshape(len(steps), -1), axis=1)


def shapes_text(layer_trends: Sequence[trend.LayerTrend]) -> str:
    """E.g. "shapes, not verdicts: dips then rises: layers 1-5; rises: layer 6" (the curves' shapes over the
    window, in words computed from the curve; a shape that "rises" may still be "flat" by the verdict)."""
    by: dict[str, list[int]] = {}
    for t in layer_trends:
        by.setdefault(t.shape, []).append(t.layer + 1)
    return "shapes, not verdicts: " + "; ".join(
        f"{shape}: layer{'s' if len(ls) > 1 else ''} {', '.join(map(str, ls))}" for shape, ls in by.items()
    )


def trend_numbers(results) -> dict[str, str]:
    """Per kind: verdict counts, the verdict over layers, shapes, and the mean over heads and layers at step
    1, at the start of the verdict's window, its lowest point inside the window (and where), and at the end.

    ``results``: one run or its seeds (heads pooled, see :func:`rankbook.analysis.trend.pooled`). Every
    "falls to X at step s" a chapter writes comes from here, so it lies inside the verdict's window.
    """
    out = {"window_start": f"{trend.TRANSIENT_STEPS:,}"}
    for kind in KINDS:
        ts = trend.run_trends(results, kind)
        steps, mean = _layer_mean(results, kind)
        i1 = list(steps).index(1) if 1 in steps else 1
        window = np.flatnonzero(trend.window_mask(steps) & np.isfinite(mean))
        if len(window) == 0:  # too short a run: the whole tracked range (its claim says it cannot judge)
            window = np.flatnonzero((steps > 0) & np.isfinite(mean))
        i_min = window[int(np.argmin(mean[window]))]
        first, _ = trend.fractions(steps[window].astype(float))
        rises = sum(t.verdict == "rises" for t in ts)
        falls = sum(t.verdict == "falls" for t in ts)
        out.update(
            {
                f"{kind}_rises": trend.count(ts, "rises"),
                f"{kind}_falls": trend.count(ts, "falls"),
                f"{kind}_overall": trend.overall(ts),
                f"{kind}_verdict": claims.trend_verdict(rises, falls, len(ts)),
                f"{kind}_shapes": shapes_text(ts),
                f"{kind}_step1": f"{mean[i1]:.2f}",
                f"{kind}_start": f"{np.mean(mean[window][first]):.2f}",
                f"{kind}_min": f"{mean[i_min]:.2f}",
                f"{kind}_min_step": f"{int(steps[i_min]):,}",
                f"{kind}_end": f"{mean[-1]:.2f}",
                f"{kind}_rho": f"{np.mean([t.rho for t in ts]):.2f}",
            }
        )
        out["end_step"] = f"{int(steps[-1]):,}"
    return out


def window_context(result, metric: str = "eval_loss") -> dict[str, str]:
    """Where training stands when the verdict's window opens: a diagnostic printed beside the verdict.

    The window is fixed in advance (step :data:`~rankbook.analysis.trend.TRANSIENT_STEPS`); this says what
    it opens on: the learning rate there as a share of its peak, the warmup's end, and ``metric`` at the
    window's start, at the warmup's end and at the last step. A Δ built from the tiny steps of an early
    warmup, before the loss has moved, can have a high stable rank that later learning dilutes.
    """
    steps = np.asarray(result.arrays["step"])
    lr = np.asarray(result.arrays["lr"], dtype=float)
    loss = np.asarray(result.arrays[metric], dtype=float)
    i0 = int(np.flatnonzero(trend.window_mask(steps))[0])
    warm = trend.warmup_steps(result)
    iw = int(np.argmin(np.abs(steps - warm)))
    return {
        "window_step": f"{int(steps[i0]):,}",
        "lr_share": f"{lr[i0] / lr.max():.0%}" if lr.max() > 0 else "n/a",
        "warmup_end": f"{warm:,}",
        "warmup_step": f"{int(steps[iw]):,}",
        "loss_start": f"{loss[i0]:.2f}",
        "loss_warmup": f"{loss[iw]:.2f}",
        "loss_end": f"{loss[-1]:.2f}",
    }


TREND_KEYS = ("window_start", "end_step") + tuple(
    f"{kind}_{name}" for kind in KINDS
    for name in ("rises", "falls", "overall", "verdict", "shapes", "step1", "start", "min", "min_step", "end",
                 "rho")
)
CONTEXT_KEYS = (
    "window_step", "lr_share", "warmup_end", "warmup_step", "loss_start", "loss_warmup", "loss_end"
)


def stored_trend_numbers(results, metric: str = "eval_loss") -> dict[str, str]:
    """A stored tier's :func:`trend_numbers` and, as ``ctx_*``, its first run's :func:`window_context`;
    every key "n/a" when the tier is not stored (so a chapter's prose can name them either way)."""
    if not results:
        return {k: "n/a" for k in TREND_KEYS} | {f"ctx_{k}": "n/a" for k in CONTEXT_KEYS}
    context = window_context(results[0], metric)
    return trend_numbers(results) | {f"ctx_{k}": v for k, v in context.items()}


def trend_claim(results, tier: str, chapter: str, paper: str = "Fig. 12") -> dict[str, str]:
    """Claim row: the stable rank of Δ grows gradually through training, per layer, by the calibrated rule."""
    layer_trends = {k: trend.run_trends(results, k) for k in KINDS}
    parts, verdicts = [], []
    for k, ts in layer_trends.items():
        rises, falls = (sum(t.verdict == v for t in ts) for v in ("rises", "falls"))
        if not all(t.judged for t in ts):
            verdicts.append(claims.CANNOT)
            parts.append(f"{NAMES[k]}: {ts[0].shape_words}")
            continue
        verdicts.append(claims.trend_verdict(rises, falls, len(ts)))
        fell = f", falls in {falls}" if falls else ""
        parts.append(f"{NAMES[k]} rises in {rises} of {len(ts)} layers{fell} ({shapes_text(ts)})")
    first = trend.as_list(results)[0]
    return claims.row(
        f"{model_name(first)}: the stable rank of Δ increases gradually during training",
        paper,
        tier,
        "; ".join(parts),
        claims.combine(verdicts),
        chapter,
    )


def rule_change(results, kind: str) -> dict[str, Any]:
    """What the replaced trend rule said and what the new one says, per layer, with the reason of each change.

    Returns ``{"old": count, "new": count, "changes": ["layer 2: rises → flat (...)", ...]}``.
    """
    rs = trend.as_list(results)
    new = trend.run_trends(rs, kind)
    old = trend.legacy_run_trends(rs, kind)
    warm = trend.warmup_steps(rs[0])
    changes = []
    for t, o in zip(new, old):
        if t.verdict == o:
            continue
        failed = []
        if abs(np.log1p(t.change)) < np.log1p(trend.MIN_CHANGE):
            failed.append(f"end only {t.change:+.0%} against the window's start")
        if t.verdict != "rises" and o == "rises":
            if t.change >= trend.MIN_CHANGE and t.drift_z < trend.MIN_DRIFT_Z:
                failed.append(f"drift z {t.drift_z:.1f} < {trend.MIN_DRIFT_Z}")
            if t.rho_p > trend.MAX_RHO_P:
                failed.append(f"ρ {t.rho:.2f} (p {t.rho_p:.2f})")
            if t.sign_p > trend.MAX_SIGN_P + 1e-12:
                failed.append(f"{t.heads_up} of {t.heads} heads rise (sign test p {t.sign_p:.2f})")
        why = "; ".join(failed) or f"the whole window from step {t.window_start} now counts ({t.shape})"
        changes.append(
            f"layer {t.layer + 1}: {o} → {t.verdict} (old window from the minimum after the {warm}-step "
            f"warmup; new, from step {t.window_start}: {t.shape}; {why})"
        )
    return {"old": trend.count(old), "new": trend.count(new), "changes": changes}


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


def caption_phrase(tier: str, figure: str, stored_paper: bool = True) -> str:
    """How a caption names the paper figure it corresponds to: "Reproduces the paper's Fig. N (v1)" only for
    a paper-profile run; "The analogue of the paper's Fig. N (v1) at the fast (reference) profile" otherwise;
    a paper tier with no stored run says that nothing here reproduces it."""
    if tier == "paper":
        if not stored_paper:
            return (
                f"No paper-profile run is stored for this code and data, so nothing here reproduces {figure}"
            )
        return f"Reproduces the paper's {figure} (v1) with the paper-profile run"
    return f"The analogue of the paper's {figure} (v1) at the {tier} profile"


def cost_note(by_tier: Mapping[str, Sequence]) -> str:
    """Per tier with runs: how many, their training time (min-max) and the device, from the manifests."""
    parts = []
    for tier, rs in by_tier.items():
        if not rs:
            continue
        walls = [float(r.manifest.get("train_wall_s", r.manifest.get("wall_s", np.nan))) for r in rs]
        devices = sorted({str(r.manifest.get("device", "?")) for r in rs})
        if len(rs) == 1:
            took = f"1 run, {walls[0] / 60:.1f} min of training"
        else:
            took = f"{len(rs)} runs, {min(walls) / 60:.1f}-{max(walls) / 60:.1f} min of training each"
        parts.append(f"{tier}: {took} on {', '.join(devices)}")
    return "; ".join(parts) or "no stored runs"


def memorization_numbers(result) -> dict[str, str]:
    """A ViT run's test accuracy at its best and at the end, and its train/test loss at the end (as text)."""
    a = result.arrays
    acc, steps = np.asarray(a["test_acc"], dtype=float), np.asarray(a["step"])
    best = int(np.nanargmax(acc))
    return {
        "best_acc": f"{acc[best]:.3f}",
        "best_step": f"{int(steps[best]):,}",
        "final_acc": f"{acc[-1]:.3f}",
        "final_train_loss": f"{float(a['train_loss'][-1]):.4f}",
        "final_test_loss": f"{float(a['test_loss'][-1]):.2f}",
        "min_test_loss": f"{float(np.nanmin(a['test_loss'])):.2f}",
    }


def describe_runs(by_tier: Mapping[str, Sequence], describe: Callable[[Any, str], str], metric: str) -> str:
    """One line per run of each tier: its title line, final ``metric``, steps, training time and device."""
    lines = []
    for tier, rs in by_tier.items():
        for r in rs:
            m = r.manifest
            lines.append(
                f"{describe(r, tier)}\n  {metric} {m[f'final_{metric}']:.3f} after {m['total_steps']} "
                f"steps, trained in {m['wall_s']:.0f} s on {m['device']}"
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


def transient_decay(results, last: int = 32) -> dict[str, str]:
    """How fast the transient dies out: per kind, the median over layers of the head mean's relative change
    from one tracked step to the next, for steps up to ``last``, as text ("1→2 −11%, 2→3 −8%, ...").

    This checks the trend window's start (:data:`rankbook.analysis.trend.TRANSIENT_STEPS`), which is fixed
    (Adam's first-moment memory, 1/(1-β1) = 10 steps), not chosen from these numbers.
    """
    out = {}
    for kind in KINDS:
        steps, sr = trend.pooled(results, kind)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(sr, axis=-1)  # [points, layers]
        idx = [i for i, t in enumerate(steps) if 1 <= t <= last]
        parts = []
        for i, j in zip(idx, idx[1:]):
            change = float(np.median(mean[j] / mean[i] - 1))
            parts.append(f"{int(steps[i])}→{int(steps[j])} {change:+.0%}".replace("-", "−"))
        out[f"{kind}_decay"] = ", ".join(parts)
    return out


# --------------------------------------------------------------------------- chapter 06: attention ablation


def ablation_numbers(ablation: Mapping[str, float]) -> dict[str, str]:
    """Chapter 06's glued text from :func:`rankbook.analysis.truncation.attention_ablation` (losses)."""
    return {
        "trained": f"{ablation['trained']:.3f}",
        "attention_at_init": f"{ablation['attention_at_init']:.3f}",
        "model_at_init": f"{ablation['model_at_init']:.3f}",
        "worth": f"{ablation['worth']:.3f}",
        "share": f"{ablation['share']:.0%}",
    }


def ablation_claim(ablation: Mapping[str, float], tier: str, chapter: str) -> dict[str, str]:
    """Claim row (beyond the paper): the trained LM relies on its attention updates."""
    measured = (
        f"attention reset to init: eval loss {ablation['attention_at_init']:.3f} vs "
        f"{ablation['trained']:.3f} trained ({ablation['share']:.0%} of the drop from "
        f"{ablation['model_at_init']:.3f})"
    )
    verdict = claims.verdict(ablation["share"] >= 0.1)
    return claims.row(
        "Language model: trained long enough to use its attention (a prerequisite; attention ≥ 10% of the "
        "loss drop)",
        "beyond the paper",
        tier,
        measured,
        verdict,
        chapter,
    )
