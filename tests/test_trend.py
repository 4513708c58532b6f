"""The trend rule on curves whose answer is known, its calibration against noise, and the shapes it names."""

import numpy as np
import pytest

from rankbook.analysis import calibration, trend
from rankbook.training import schedule

STEPS = np.array(schedule.tracking_steps(1950, 6))  # the fast ViT grid: 0, 1, 2, 3, 5, 7, 10, ..., 1950
LOG = np.log(np.maximum(STEPS, 1))


def curves(mean: np.ndarray, heads: int = 4, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """[points, heads]: ``mean`` times per-head offsets and multiplicative noise; NaN at step 0."""
    rng = np.random.default_rng(seed)
    offsets = 1 + 0.1 * rng.standard_normal(heads)
    out = mean[:, None] * offsets[None] * (1 + noise * rng.standard_normal((len(mean), heads)))
    out[0] = np.nan
    return out


def rising():
    return 1.2 + 0.4 * LOG / LOG[-1]


def test_rising_curve_rises_and_falling_curve_falls():
    t = trend.layer_trend(STEPS, curves(rising(), noise=0.01))
    assert t.verdict == "rises" and t.shape == "rises"
    assert t.rho > 0.9 and t.heads_up == 4 and t.sign_p == pytest.approx(1 / 16) and t.change > 0.15
    assert t.window_start == trend.TRANSIENT_STEPS and t.end_step == 1950
    falling = 2.0 - 0.5 * LOG / LOG[-1]
    t = trend.layer_trend(STEPS, curves(falling, noise=0.01))
    assert t.verdict == "falls" and t.change < -0.1 and t.heads_up == 0


def test_window_starts_after_the_transient_not_at_the_minimum():
    """A high start (Adam's first steps) before step 10 is left out; the window is fixed, not data-chosen."""
    c = curves(rising(), noise=0.01)
    c[1:6] *= 3  # steps 1-7: the first-step transient
    t = trend.layer_trend(STEPS, c)
    assert t.verdict == "rises" and t.window_start == 10 and t.points == int((STEPS >= 10).sum())
    # a dip inside the window is part of what is judged: same start and end, a deep dip between
    dip = rising().copy()
    dip[(STEPS >= 46) & (STEPS <= 464)] = 0.8
    t = trend.layer_trend(STEPS, curves(dip, noise=0.01))
    assert t.window_start == 10 and t.min_step in range(46, 465) and t.min_value < 0.85
    assert t.shape.startswith("dips then rises") and "dips to" in t.shape_words


def test_dip_then_rise_and_rise_then_plateau_are_named():
    x = LOG / LOG[-1]
    plateau = 1.2 + 0.6 * np.clip((x - 0.3) / 0.3, 0, 1)  # all of the rise between 30% and 60% of log time
    t = trend.layer_trend(STEPS, curves(plateau, noise=0.005))
    assert t.verdict == "rises" and t.shape == "rises then plateaus"
    assert "plateau" in t.shape_words and "90% of that rise reached by step" in t.shape_words
    valley = 1.6 - 0.5 * np.sin(np.pi * np.clip((LOG - np.log(10)) / (LOG[-1] - np.log(10)), 0, 1)) + 0.1 * x
    t = trend.layer_trend(STEPS, curves(valley, noise=0.005))
    assert t.shape == "dips then ends level" and t.verdict == "flat"
    assert f"dips to {t.min_value:.2f} at step {t.min_step:,}" in t.shape_words


def test_small_rise_and_disagreeing_heads_are_flat():
    small = 1.5 + 0.05 * LOG / LOG[-1]  # +3%: below MIN_CHANGE
    assert trend.layer_trend(STEPS, curves(small)).verdict == "flat"
    c = curves(rising(), noise=0.01)
    c[1:, 0] = c[:0:-1, 0]  # one head of four falls: the sign test over 4 heads needs all four
    t = trend.layer_trend(STEPS, c)
    assert t.heads_up == 3 and t.verdict == "flat" and t.sign_p > trend.MAX_SIGN_P
    assert t.rho_std > 0.5 and t.rho_mean < t.rho


def test_the_replaced_rule_calls_noise_a_rise_and_the_new_one_does_not():
    """The old window started at the minimum: a driftless random walk often 'rose' from it."""
    rng = np.random.default_rng(3)
    walks = 1.5 * np.exp(0.05 * np.cumsum(rng.standard_normal((300, len(STEPS), 4)), axis=1))
    walks[:, 0] = np.nan
    old = np.mean([trend.legacy_layer_trend(STEPS, w, after=390) == "rises" for w in walks])
    new = np.mean([trend.layer_trend(STEPS, w).verdict == "rises" for w in walks])
    assert old > 0.1 and new <= 0.05


def test_vectorized_core_agrees_with_layer_trend():
    rng = np.random.default_rng(7)
    batch = 1.5 * np.exp(0.04 * np.cumsum(rng.standard_normal((50, len(STEPS), 4)), axis=1))
    batch[:, :, :] *= np.linspace(1, 1.4, len(STEPS))[None, :, None] ** rng.uniform(-1, 1, (50, 1, 1))
    keep = trend.window_mask(STEPS)
    fast = trend.decide(trend.statistics(STEPS[keep].astype(float), batch[:, keep]), 4)
    slow = [trend.layer_trend(STEPS, b).verdict for b in batch]
    assert list(fast) == slow and len(set(slow)) >= 2


@pytest.mark.parametrize(
    "grid",
    ["fast ViT", "reference ViT, 3 seeds pooled", "paper ViT", "fast LM", "reference LM", "reference ViT"],
)
def test_calibration_false_rates_are_at_most_5_percent(grid):
    """Pinned at seed 0: no null family gives more than 5% false rises or falls on the tier's own grid."""
    grids = calibration.grids()
    if grid not in grids:
        pytest.skip(f"no stored run gives the {grid} grid (results/)")
    g = grids[grid]
    for f, family in enumerate(calibration.FAMILIES):
        rates = calibration.false_rates(
            g["steps"], g["heads"], family, draws=1000, seed=f, source=g["source"]
        )
        assert rates["rises"] <= calibration.MAX_FALSE, (grid, family, rates)
        assert rates["falls"] <= calibration.MAX_FALSE, (grid, family, rates)


def test_calibration_can_fail_a_loose_rule():
    """The same calibration flags the thresholds of a rule without the drift and sign tests."""
    g = calibration.grids()["fast ViT"]
    loose = dict(min_change=0.05, max_rho_p=0.5, max_sign_p=1.0, min_drift_z=-np.inf)
    assert calibration.false_rates(g["steps"], g["heads"], "walk 10%", draws=500, **loose)["rises"] > 0.1


def test_power_a_real_rise_is_found():
    power = calibration.power(draws=300)
    assert power["fast ViT"]["rises"] >= 0.7 and power["fast LM"]["rises"] >= 0.7
    assert all(p["rises"] >= 0.95 for name, p in power.items() if not name.startswith("fast"))


def test_bad_shapes_and_too_few_points_are_clear_errors():
    with pytest.raises(ValueError, match=r"\[points, heads\]"):
        trend.layer_trend(STEPS, np.ones(len(STEPS)))
    with pytest.raises(ValueError, match=r"\[points, layers, heads\]"):
        trend.trends(STEPS, np.ones((len(STEPS), 2)))
    short = trend.layer_trend(STEPS, curves(rising()), after=1500)  # 1,950 only: too short to judge
    assert not short.judged and short.verdict == "flat" and short.points == 1
    assert "too few to judge" in short.shape_words
    with pytest.raises(ValueError, match="unknown null family"):
        calibration.draw("pink 5%", STEPS, 4, 10, np.random.default_rng(0))


def test_trends_per_layer_overall_and_count():
    sr = np.stack(
        [
            curves(rising(), seed=1),
            curves(2.0 - 0.5 * LOG / LOG[-1], seed=2),
            curves(np.full(len(STEPS), 1.5), seed=3),
        ],
        axis=1,
    )  # [points, layers, heads]
    ts = trend.trends(STEPS, sr)
    assert [t.verdict for t in ts] == ["rises", "falls", "flat"] and [t.layer for t in ts] == [0, 1, 2]
    assert trend.overall(ts) == "mixed" and trend.count(ts) == "1 of 3 layers"
    assert trend.overall([ts[0], ts[0], ts[2]]) == "rises"


def test_calibration_reads_only_transformer_runs_among_stored_results(tmp_path):
    """results/ also stores the toy chapters' summaries (a manifest, no arrays): the calibration's grids skip
    them by the manifest's kind instead of failing on a missing arrays.npz (chapter 08 did, once toy tiers
    were stored)."""
    import json

    from rankbook.analysis import calibration

    toy = tmp_path / "toy-02_toy-reference-0"
    toy.mkdir()
    (toy / "manifest.json").write_text(json.dumps({"config": {"kind": "toy", "n_samples": 1000}}))
    (toy / "summary.json").write_text("{}")
    assert calibration.stored_runs(tmp_path) == {"reference ViT": [], "paper ViT": [], "reference LM": []}


def test_a_dip_that_ends_below_its_start_is_said_to_climb_back():
    """Falls in the first quarter, dips in the middle, climbs back part of the way: the words say so."""
    x = (LOG - np.log(10)) / (LOG[-1] - np.log(10))
    dip_back = np.where(x < 0.5, 3.0 - 3.8 * x, 1.1 + 0.8 * (x - 0.5))  # 3.0 → 1.1 at the middle → 1.5
    t = trend.layer_trend(STEPS, curves(dip_back, noise=0.005))
    assert t.verdict == "falls"  # the rule judges start against end
    assert t.shape == "dips then climbs back (below its start)"
    assert "climbs back to" in t.shape_words and "below its start" in t.shape_words
    assert "then falls" not in t.shape_words
