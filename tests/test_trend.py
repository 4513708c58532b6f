"""The trend verdict on synthetic stable-rank curves whose answer is known."""

import numpy as np
import pytest

from rankbook.analysis import trend

STEPS = np.array([0, 1, 2, 3, 5, 7, 10, 15, 22, 32, 46, 68, 100, 147, 215, 316, 464, 681, 1000, 1468, 1950])


def curves(mean: np.ndarray, heads: int = 4, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """[points, heads]: ``mean`` times per-head offsets and multiplicative noise; NaN at step 0."""
    rng = np.random.default_rng(seed)
    offsets = 1 + 0.1 * rng.standard_normal(heads)
    out = mean[:, None] * offsets[None] * (1 + noise * rng.standard_normal((len(mean), heads)))
    out[0] = np.nan
    return out


def rising():
    return 1.2 + 0.4 * np.log1p(STEPS) / np.log1p(STEPS[-1])


def transient_then_rising():
    # Adam's first steps: high, falling to a minimum at step 316, then a rise (issue 11's fast ViT curve)
    log = np.log(np.maximum(STEPS, 1))
    fall = 1.6 - 0.37 * np.clip(log / np.log(316), 0, 1)
    rise = 0.3 * np.clip((log - np.log(316)) / (np.log(1950) - np.log(316)), 0, 1)
    return fall + rise


def test_rising_curve_rises():
    t = trend.layer_trend(STEPS, curves(rising(), noise=0.01))
    assert t.verdict == "rises"
    assert t.rho > 0.9 and t.rho_mean > 0.9 and t.change > 0.2


def test_flat_curve_is_flat_and_falling_curve_falls():
    assert trend.layer_trend(STEPS, curves(np.full(len(STEPS), 1.5))).verdict == "flat"
    falling = 2.0 - 0.5 * np.log1p(STEPS) / np.log1p(STEPS[-1])
    t = trend.layer_trend(STEPS, curves(falling, noise=0.01))
    assert t.verdict == "falls"
    assert t.min_step == STEPS[-1]  # a falling curve's minimum is its end: nothing to rise from


def test_transient_then_rising_rises_from_its_minimum_not_from_step_one():
    c = curves(transient_then_rising(), noise=0.01)
    assert c[1].mean() > c[-1].mean()  # last point below the first: a two-point comparison says "fell"
    t = trend.layer_trend(STEPS, c, after=10)
    assert t.verdict == "rises"
    assert t.min_step == 316
    assert t.min_value < t.end_value


def test_flat_noisy_curves_rarely_look_like_a_rise():
    """Starting at the minimum favours a rise; the thresholds keep the false-rise rate low."""
    verdicts = [
        trend.layer_trend(STEPS, curves(np.full(len(STEPS), 1.5), noise=0.02, seed=s), after=10).verdict
        for s in range(200)
    ]
    assert verdicts.count("rises") / len(verdicts) < 0.05


def test_small_rise_is_flat():
    small = 1.5 + 0.02 * np.log1p(STEPS) / np.log1p(STEPS[-1])  # 1.3%: below MIN_CHANGE
    assert trend.layer_trend(STEPS, curves(small)).verdict == "flat"


def test_late_minimum_with_too_few_points_is_not_a_rise():
    late = np.full(len(STEPS), 1.5)
    late[-2], late[-1] = 1.0, 1.4  # minimum one point before the end
    assert trend.layer_trend(STEPS, curves(late)).verdict != "rises"


def test_trends_per_layer_overall_and_count():
    sr = np.stack(
        [
            curves(rising(), seed=1),
            curves(transient_then_rising(), seed=2),
            curves(np.full(len(STEPS), 1.5), seed=3),
        ],
        axis=1,
    )  # [points, layers, heads]
    ts = trend.trends(STEPS, sr, after=10)
    assert [t.verdict for t in ts] == ["rises", "rises", "flat"]
    assert [t.layer for t in ts] == [0, 1, 2]
    assert trend.overall(ts) == "rises"
    assert trend.count(ts) == "2 of 3 layers"
    assert trend.overall(ts[1:]) == "mixed"


def test_spread_over_heads_is_reported_beside_the_layer_verdict():
    c = curves(rising(), noise=0.01)
    c[1:, 0] = c[:0:-1, 0]  # one head of four falls while the layer's mean still rises
    t = trend.layer_trend(STEPS, c)
    assert t.verdict == "rises" and t.rho > 0.9
    assert t.rho_std > 0.5 and t.rho_mean < t.rho


def test_bad_shapes_and_too_few_points_are_clear_errors():
    with pytest.raises(ValueError, match=r"\[points, heads\]"):
        trend.layer_trend(STEPS, np.ones(len(STEPS)))
    with pytest.raises(ValueError, match=r"\[points, layers, heads\]"):
        trend.trends(STEPS, np.ones((len(STEPS), 2)))
    with pytest.raises(ValueError, match="fewer than 2 tracked steps after step 5000"):
        trend.layer_trend(STEPS, curves(rising()), after=5000)
