"""How often the trend rule (:mod:`rankbook.analysis.trend`) says "rises" or "falls" on curves with no trend.

Every tier's own step grid and head count (:func:`grids`) gets the null
families of :data:`FAMILIES`, drawn :data:`DRAWS` times each (vectorized:
all draws of a family are judged at once by :func:`trend.statistics` and
:func:`trend.decide`, the same code as a chapter's verdict):

* ``iid a``: every head's curve is a constant (its own level) times
  ``1 + a·ε`` with ``ε`` standard normal, independent per head and point;
* ``walk a``: every head's curve is its level times ``exp(a·W)``, ``W`` a
  random walk with standard normal steps per tracked point (no drift),
  independent per head: a head may wander far, but heads wander apart;
* ``shuffled``: the stored runs' own window curves of one layer with their
  time order shuffled, one permutation for all the layer's heads (so heads
  that move together still do). A grid with no stored run of its own (the
  fast tiers are trained live; results/ may hold no language-model run)
  takes the points and heads it needs from the stored reference ViT run,
  which does not matter much once the order is shuffled.

:func:`spread` measures the run-to-run spread the amplitudes are checked
against, from the stored reference seeds. :func:`power` gives the rule's
verdicts on the stored real curves and the detection rate of a known rise.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from rankbook.analysis import trend
from rankbook.training import schedule

AMPLITUDES = (0.02, 0.05, 0.10)
FAMILIES = (
    tuple(f"iid {a:.0%}" for a in AMPLITUDES) + tuple(f"walk {a:.0%}" for a in AMPLITUDES) + ("shuffled",)
)
DRAWS = 2000
#: the largest false rate the rule may have on any family and grid
MAX_FALSE = 0.05
RESULTS = Path(__file__).resolve().parents[2] / "results"


class _Stored:
    """A stored run read straight from ``results/`` (no data needed: the calibration runs anywhere)."""

    def __init__(self, folder: Path):
        self.path = folder
        self.manifest = json.loads((folder / "manifest.json").read_text())
        self.config = self.manifest["config"]
        with np.load(folder / "arrays.npz") as z:
            self.arrays = {k: z[k] for k in ("step", "stable_rank_delta_qk", "stable_rank_delta_vo", "lr")}


def stored_runs(root: Path = RESULTS) -> dict[str, list[_Stored]]:
    """Stored default-scale runs by grid: ``reference ViT`` (seeds), ``paper ViT``, ``reference LM``."""
    out: dict[str, list[_Stored]] = {"reference ViT": [], "paper ViT": [], "reference LM": []}
    for manifest in sorted(root.glob("*/manifest.json")):
        # the kind from the manifest first: other stored results (the toy chapters' summaries) have no arrays
        c = json.loads(manifest.read_text())["config"]
        if c.get("kind") == "vit" and c.get("init_scale") == 1.0:
            out["paper ViT" if c.get("d_model") == 512 else "reference ViT"].append(_Stored(manifest.parent))
        elif c.get("kind") in ("gpt", "lm") or "context" in c:
            out["reference LM"].append(_Stored(manifest.parent))
    return out


def grids(root: Path = RESULTS) -> dict[str, dict[str, Any]]:
    """Every tier's step grid and head count: ``{name: {"steps", "heads", "source", "warmup"}}``.

    The stored tiers' grids are their runs' tracked steps; the fast tiers' (and the language model's when
    results/ holds no run of it) come from the settings and the tracking schedule. ``source``: the runs whose
    curves the shuffled family reuses; the ViT's reference run where the tier has none of its own.
    """
    from rankbook.settings import lm as lm_settings
    from rankbook.settings import vit as vit_settings

    runs = stored_runs(root)
    fallback = runs["reference ViT"][:1]
    fv = vit_settings.PROFILES["fast"]
    per_epoch = schedule.steps_per_epoch(50_000, fv.batch_size)  # the full CIFAR-10 split
    out = {
        "fast ViT": {
            "steps": np.array(schedule.tracking_steps(per_epoch * fv.epochs, fv.track_per_decade)),
            "heads": fv.heads,
            "source": fallback,
            "warmup": per_epoch * fv.warmup_epochs,
        },
    }
    for tier in ("fast", "reference"):
        ls = lm_settings.PROFILES[tier]
        out[f"{tier} LM"] = {
            "steps": np.array(schedule.tracking_steps(ls.steps, ls.track_per_decade)),
            "heads": ls.heads,
            "source": runs["reference LM"][:1] or fallback,
            "warmup": ls.warmup_steps,
        }
    for name in ("reference ViT", "paper ViT", "reference LM"):
        rs = runs[name]
        if not rs:
            continue
        steps = np.asarray(rs[0].arrays["step"])
        warm = trend.warmup_steps(rs[0])
        out[name] = {"steps": steps, "heads": rs[0].config["heads"], "source": rs[:1], "warmup": warm}
        if len(rs) > 1:
            out[f"{name}, {len(rs)} seeds pooled"] = {
                "steps": steps,
                "heads": rs[0].config["heads"] * len(rs),
                "source": rs,
                "warmup": warm,
            }
    return out


def _window(steps: np.ndarray) -> np.ndarray:
    return np.asarray(steps, dtype=float)[trend.window_mask(steps)]


def draw(
    family: str,
    steps: np.ndarray,
    heads: int,
    draws: int,
    rng: np.random.Generator,
    source: list | None = None,
) -> np.ndarray:
    """``draws`` null layers ``[draws, points, heads]`` of ``family`` over the window of ``steps``."""
    n = len(_window(steps))
    level = 1.5 * (1 + 0.1 * rng.standard_normal((draws, 1, heads)))  # heads differ in level
    if family.startswith("iid"):
        a = float(family.split()[1].rstrip("%")) / 100
        return level * (1 + a * rng.standard_normal((draws, n, heads)))
    if family.startswith("walk"):
        a = float(family.split()[1].rstrip("%")) / 100
        return level * np.exp(a * np.cumsum(rng.standard_normal((draws, n, heads)), axis=1))
    if family == "shuffled":
        if not source:
            raise ValueError("the shuffled family needs stored runs (results/ holds none for this grid)")
        layers = []
        for kind in ("qk", "vo"):
            st, sr = trend.pooled(source, kind)
            sr = sr[trend.window_mask(st)]  # [points, layers, heads]
            for layer in range(sr.shape[1]):
                layers.append(sr[:, layer])
        out = np.empty((draws, n, heads))
        for i in range(draws):
            c = layers[i % len(layers)]
            pts = rng.choice(c.shape[0], n, replace=n > c.shape[0])  # a random order of the real points
            hs = rng.choice(c.shape[1], heads, replace=heads > c.shape[1])
            out[i] = c[np.ix_(pts, hs)]
        return out
    raise ValueError(f"unknown null family {family!r}: choose one of {', '.join(FAMILIES)}")


def false_rates(
    steps: np.ndarray,
    heads: int,
    family: str,
    *,
    draws: int = DRAWS,
    seed: int = 0,
    source: list | None = None,
    **thresholds,
) -> dict[str, float]:
    """Share of ``family``'s null layers judged "rises" and "falls" on this grid."""
    rng = np.random.default_rng(seed)
    curves = draw(family, steps, heads, draws, rng, source)
    v = trend.decide(trend.statistics(_window(steps), curves), heads, **thresholds)
    return {"rises": float(np.mean(v == "rises")), "falls": float(np.mean(v == "falls"))}


def legacy_false_rises(
    steps: np.ndarray,
    heads: int,
    family: str,
    warmup: int,
    *,
    draws: int = 300,
    seed: int = 0,
    source: list | None = None,
) -> float:
    """Share of ``family``'s null layers the replaced rule (window from the minimum after the warmup) called
    "rises" on this grid: what the calibrated rule replaced."""
    rng = np.random.default_rng(seed)
    window = _window(steps)
    curves = draw(family, steps, heads, draws, rng, source)
    return float(np.mean([trend.legacy_layer_trend(window, c, after=warmup) == "rises" for c in curves]))


def table(
    *, draws: int = DRAWS, seed: int = 0, root: Path = RESULTS, legacy_draws: int = 0, **thresholds
) -> list[dict[str, Any]]:
    """One row per grid and family: points in the window, heads, false-rises and false-falls rates (and,
    with ``legacy_draws``, the replaced rule's false-rises rate on the same family)."""
    rows = []
    for g, (name, grid) in enumerate(grids(root).items()):
        for f, family in enumerate(FAMILIES):
            rates = false_rates(
                grid["steps"],
                grid["heads"],
                family,
                draws=draws,
                seed=seed + 100 * g + f,
                source=grid["source"],
                **thresholds,
            )
            rows.append(
                {
                    "grid": name,
                    "points": len(_window(grid["steps"])),
                    "heads": grid["heads"],
                    "family": family,
                    "false rises": rates["rises"],
                    "false falls": rates["falls"],
                }
            )
            if legacy_draws:
                rows[-1]["false rises, old rule"] = legacy_false_rises(
                    grid["steps"],
                    grid["heads"],
                    family,
                    grid["warmup"],
                    draws=legacy_draws,
                    seed=seed + 100 * g + f,
                    source=grid["source"],
                )
    return rows


def spread(root: Path = RESULTS) -> dict[str, float]:
    """Seed-to-seed spread of the stored reference ViT seeds (scale 1) over the window, relative to the mean:
    of a layer's head mean (std over seeds / mean; median and max over layers, points, products), and the
    point-to-point wobble of single heads (|log r - the mean of its two neighbours' log r|, median)."""
    rs = stored_runs(root)["reference ViT"]
    if len(rs) < 2:
        return {}
    layer_spread, wobble = [], []
    for kind in ("qk", "vo"):
        per_seed = []
        for r in rs:
            st = np.asarray(r.arrays["step"])
            sr = np.asarray(r.arrays[f"stable_rank_delta_{kind}"])[trend.window_mask(st)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                per_seed.append(np.nanmean(sr, -1))  # [points, layers]
            logs = np.log(sr)
            wobble.append(np.abs(logs[1:-1] - 0.5 * (logs[:-2] + logs[2:])).ravel())
        per_seed = np.stack(per_seed)
        layer_spread.append((per_seed.std(0) / per_seed.mean(0)).ravel())
    ls, wb = np.concatenate(layer_spread), np.concatenate(wobble)
    return {
        "seeds": len(rs),
        "layer mean, median": float(np.median(ls)),
        "layer mean, max": float(ls.max()),
        "head wobble, median": float(np.median(wb)),
        "head wobble, 90th percentile": float(np.quantile(wb, 0.9)),
    }


def power(*, draws: int = 500, seed: int = 1, rise: float = 0.3, noise: float = 0.05) -> dict[str, float]:
    """Share of layers judged "rises" (and "falls" for the mirror curve) when the head mean grows by ``rise``
    linearly in log step over the window, with ``noise`` iid per head and point, on each grid."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, grid in grids().items():
        steps, heads = _window(grid["steps"]), grid["heads"]
        x = np.log(steps)
        shape = 1 + rise * (x - x[0]) / (x[-1] - x[0])
        level = 1.5 * (1 + 0.1 * rng.standard_normal((draws, 1, heads)))
        rising = level * shape[None, :, None] * (1 + noise * rng.standard_normal((draws, len(x), heads)))
        falling = level * shape[None, ::-1, None] * (1 + noise * rng.standard_normal((draws, len(x), heads)))
        up = trend.decide(trend.statistics(steps, rising), heads)
        down = trend.decide(trend.statistics(steps, falling), heads)
        out[name] = {"rises": float(np.mean(up == "rises")), "falls": float(np.mean(down == "falls"))}
    return out


def real_verdicts(root: Path = RESULTS) -> list[dict[str, Any]]:
    """The new and the replaced rule's per-layer verdict counts on the stored runs (per grid and product)."""
    rows = []
    for name, rs in stored_runs(root).items():
        groups = [(f"{name}, {len(rs)} seeds pooled", rs)] if len(rs) > 1 else []
        groups += [(f"{name} seed {r.config['seed']}", [r]) for r in rs] if len(rs) > 1 else [(name, rs)]
        for label, group in groups:
            if not group:
                continue
            for kind in ("qk", "vo"):
                new = trend.run_trends(group, kind)
                old = trend.legacy_run_trends(group, kind)
                rows.append(
                    {
                        "runs": label,
                        "product": kind,
                        "rises (new rule)": trend.count(new),
                        "rises (old rule)": trend.count(old),
                        "falls (new rule)": trend.count(new, "falls"),
                    }
                )
    return rows
