"""Chapter 05's per-scale diagnostics: relative change, head alignment, status, the lower-rank check."""

import numpy as np
import pytest
import torch

from rankbook.analysis import scales, spectra
from rankbook.store.results import Result

LAYERS, HEADS, D, E = 2, 4, 12, 3


def run(tmp_path, seed: int, accuracy: float, collapsed: bool, move: float = 0.1) -> Result:
    """A run whose arrays come from real factors: initial and moved weights, their spectra and top vectors."""
    g = torch.Generator().manual_seed(seed)
    w0 = {k: torch.randn(LAYERS, HEADS, D, E, generator=g, dtype=torch.float64) for k in "qkvo"}
    if collapsed:  # every head moves along one shared rank-1 direction
        u, v = (
            torch.randn(D, 1, generator=g, dtype=torch.float64),
            torch.randn(1, E, generator=g, dtype=torch.float64),
        )
        w = {k: w0[k] + move * (u @ v) for k in "qkvo"}
    else:
        w = {
            k: w0[k] + move * torch.randn(LAYERS, HEADS, D, E, generator=g, dtype=torch.float64)
            for k in "qkvo"
        }
    arrays = {"step": np.array([0, 10])}
    for kind in ("qk", "vo"):
        delta = spectra.delta_svdvals(w, w0, kind).numpy()
        arrays[f"delta_{kind}"] = np.stack([np.zeros_like(delta), delta])
        arrays[f"stable_rank_delta_{kind}"] = spectra.stable_rank(
            torch.from_numpy(arrays[f"delta_{kind}"])
        ).numpy()
        arrays[f"init_{kind}"] = spectra.head_svdvals(w0, kind).numpy()
        left, right = spectra.delta_top_vectors(w, w0, kind)
        arrays[f"top_left_{kind}"], arrays[f"top_right_{kind}"] = left.numpy(), right.numpy()
    manifest = {
        "config": {"depth": LAYERS, "heads": HEADS, "d_model": D},
        "final_test_acc": accuracy,
        "classes": 10,
    }
    return Result(tmp_path / f"run{seed}", arrays, manifest), w, w0


def test_relative_change_is_the_dense_norm_ratio(tmp_path):
    r, w, w0 = run(tmp_path, 0, 0.5, collapsed=False)
    dense = spectra.product(w, "qk") - spectra.product(w0, "qk")
    expected = torch.linalg.matrix_norm(dense) / torch.linalg.matrix_norm(spectra.product(w0, "qk"))
    np.testing.assert_allclose(scales.relative_change(r, "qk"), expected.numpy(), rtol=1e-6)


def test_alignment_one_for_shared_directions_and_near_chance_for_independent_ones(tmp_path):
    collapsed, _, _ = run(tmp_path, 1, 0.2, collapsed=True, move=3.0)
    assert np.all(scales.head_alignment(collapsed) > 0.95)
    rng = np.random.default_rng(0)
    v = rng.standard_normal((50, 8, 400))
    assert scales.pairwise_alignment(v).mean() == pytest.approx(scales.random_alignment(400), rel=0.05)
    same = np.repeat(rng.standard_normal((3, 1, 5)), 4, axis=1) * np.array([1, -1, 1, -1])[None, :, None]
    np.testing.assert_allclose(scales.pairwise_alignment(same), 1.0)  # signs do not matter
    orth = np.eye(4)[None]
    np.testing.assert_allclose(scales.pairwise_alignment(orth), 0.0)


def test_random_alignment_matches_monte_carlo():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 20000, 64))
    cos = np.abs((a * b).sum(-1)) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert scales.random_alignment(64) == pytest.approx(cos.mean(), rel=0.02)
    assert scales.random_alignment(64) == pytest.approx(np.sqrt(2 / (np.pi * 64)), rel=0.01)


def test_status_and_the_lower_rank_check_leave_out_collapsed_and_untrained_scales(tmp_path):
    assert scales.status(0.107, 10, 0.2) == "did not train"
    assert scales.status(0.23, 10, 0.997) == "collapsed"
    assert scales.status(0.6, 10, 0.2) == "trained"
    by_scale = {
        1.0: [run(tmp_path, 2, 0.6, False, move=1.0)[0]],
        0.1: [run(tmp_path, 3, 0.23, True, move=3.0)[0]],
        0.01: [run(tmp_path, 4, 0.10, False)[0]],
    }
    rows = scales.diagnostics_rows(by_scale)
    assert [r["init scale"] for r in rows] == [1.0, 0.1, 0.01]
    assert [r["status"] for r in rows] == ["trained", "collapsed", "did not train"]
    assert rows[1]["stable rank"] < rows[0]["stable rank"]  # the collapsed scale *looks* lower-rank
    claim = scales.lower_rank_claim(rows)
    assert claim["scales"] == [1.0] and not claim["monotone"]
    assert claim["left out"] == {0.1: "collapsed", 0.01: "did not train"}


def test_missing_top_vectors_is_a_clear_error(tmp_path):
    r, _, _ = run(tmp_path, 5, 0.5, False)
    del r.arrays["top_left_qk"]
    with pytest.raises(KeyError, match="training version 2"):
        scales.head_alignment(r)
    with pytest.raises(ValueError, match="heads >= 2"):
        scales.pairwise_alignment(np.ones((2, 1, 3)))


def test_scale_numbers_and_claims_name_the_left_out_scales(tmp_path):
    by_scale = {
        1.0: [run(tmp_path, 6, 0.6, False, move=1.0)[0]],
        0.1: [run(tmp_path, 7, 0.5, False, move=0.2)[0]],
        0.01: [run(tmp_path, 8, 0.10, False)[0]],
    }
    rows = scales.diagnostics_rows(by_scale)
    claim = scales.lower_rank_claim(rows)
    text = scales.scale_numbers(rows, claim, d_model=D)
    assert text["left_out"] == "0.01 (did not train)" and text["trained"] == "1, 0.1"
    assert text["ranks"].count("(scale ") == 3
    assert text["random_alignment"] == f"{scales.random_alignment(D):.2f}"
    stored = {"reference": {1.0: by_scale[1.0][0]}, "paper": {}}
    out = scales.scale_claims(rows, "fast", stored, [0, 1], "05_vit_init_scale")
    assert [r["tier"] for r in out] == ["fast", "reference"]
    assert out[1]["verdict"] == "inconclusive"  # one trained scale cannot show a trend
    assert "left out: 0.01 did not train" in out[0]["measured"]
    assert out[0]["verdict"] == ("reproduced" if claim["monotone"] else "not reproduced")
