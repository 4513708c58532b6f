"""Teacher-student data are deterministic by seed; toy settings validate their ranges."""
import numpy as np
import pytest
import torch

from rankbook.settings import profiles
from rankbook.settings.toy import PAPER_ALPHAS, PROFILES
from rankbook.theory import toy


def _small(**kw):
    return profiles.select(PROFILES, "fast", n_samples=20, **kw)


def test_data_deterministic_by_seed():
    x1, y1 = toy.data(_small())
    x2, y2 = toy.data(_small())
    torch.testing.assert_close(x1, x2, rtol=0, atol=0)
    torch.testing.assert_close(y1, y2, rtol=0, atol=0)
    x3, _ = toy.data(_small(seed=5))
    assert not torch.equal(x1, x3)
    assert x1.dtype == torch.float64 and x1.shape == (20, 10, 50)


def test_teacher_is_sparse_and_visible():
    s = _small()
    t = toy.teacher(s)
    assert np.count_nonzero(t.qk) == s.teacher_qk and np.count_nonzero(t.vo) == s.teacher_vo
    assert len(set(np.abs(t.beta[t.beta != 0]))) >= 2  # distinct magnitudes: distinct stage times
    assert all(name.split()[0] in ("QK", "VO") for name in t.support())
    np.testing.assert_array_equal(t.beta, toy.teacher(_small()).beta)
    # the targets are the teacher head's outputs: zero loss at the teacher
    assert toy.diagonal_head(s).loss(t.beta) < 1e-25


def test_student_init_scales_with_alpha():
    s = _small()
    u1, v1 = toy.diagonal_init(s, 1e-3)
    u2, v2 = toy.diagonal_init(s, 1e-30)
    np.testing.assert_allclose(u2 / 1e-30, u1 / 1e-3)
    assert u1.shape == (2 * s.dim,)
    assert toy.full_init(s, 1e-2).shape == (4 * s.dim * s.dim,)


def test_profiles():
    paper = PROFILES["paper"]
    assert paper.alphas == PAPER_ALPHAS and paper.n_samples == 1000 and paper.n_seeds == 3
    assert set(PROFILES) == {"fast", "reference", "paper"} >= set(profiles.PROFILE_NAMES)
    for name in PROFILES:  # every profile the book knows selects
        assert profiles.select(PROFILES, name).perturb_alpha == 1e-32
    assert profiles.select(PROFILES, "fast", alphas=[0.5, 1e-3]).alphas == (0.5, 1e-3)


def test_dense_teacher_is_dense_and_realizable():
    s = _small()
    dense = toy.dense_teacher(s)
    assert np.count_nonzero(dense.beta) == 2 * s.dim
    np.testing.assert_array_equal(dense.beta, toy.dense_teacher(_small()).beta)
    net = toy.diagonal_head(s, dense)
    assert net.loss(dense.beta) < 1e-25 and net.loss(np.zeros(net.p)) > 1.0
    assert not np.allclose(toy.data(s, dense)[1], toy.data(s)[1])
    torch.testing.assert_close(toy.data(s, dense)[0], toy.data(s)[0], rtol=0, atol=0)  # the same inputs


@pytest.mark.parametrize("override, message", [
    ({"alphas": (0.1, 1.0)}, "alphas=1.0 is out of range: it must be < 1"),
    ({"alphas": (0.0,)}, "must be > 0"),
    ({"perturb_alpha": 2.0}, "must be < 1"),
    ({"n_samples": 3}, "must be >= 10"),
    ({"seed": 1.5}, "must be int"),
    ({"solver": "RK45"}, "not one of the valid choices"),
])
def test_settings_validation(override, message):
    with pytest.raises(profiles.ProfileError, match=message):
        profiles.select(PROFILES, "fast", **override)


def test_stored_tier_round_trips_and_is_keyed_by_its_settings(tmp_path):
    from rankbook.theory import tiers

    ref = PROFILES["reference"]
    summary = tiers.normalize({"max_relative_error": {"1e-32": np.float64(0.01)}, "alphas": ref.alphas})
    assert tiers.record("01_theory", "fast", PROFILES["fast"], summary, tiers.start(), root=tmp_path) is None
    folder = tiers.record("01_theory", "reference", ref, summary, tiers.start(), root=tmp_path)
    assert folder.name == tiers.folder_name("01_theory", "reference", ref)
    assert folder.name in tiers.expected(PROFILES)
    found = tiers.stored("01_theory", PROFILES, "fast", roots=[tmp_path])
    assert found["paper"] is None and found["reference"]["max_relative_error"] == {"1e-32": 0.01}
    assert found["reference"]["manifest"]["wall_s"] >= 0
    # other settings, another key: the stored folder is not found for them
    other = profiles.select(PROFILES, "reference", n_samples=500)
    assert tiers.load("01_theory", "reference", other, roots=[tmp_path]) is None
    # a manifest whose config does not match its folder's key is refused with the fix
    (folder / "manifest.json").write_text('{"config": {"kind": "toy"}}')
    with pytest.raises(ValueError, match="rerun"):
        tiers.load("01_theory", "reference", ref, roots=[tmp_path])
    with pytest.raises(ValueError, match="toy chapters"):
        tiers.config("04_vit_spectra", "reference", ref)


def test_side_by_side_has_one_column_per_tier_and_marks_what_a_tier_does_not_measure():
    from rankbook.theory import tiers

    rows = tiers.side_by_side({"fast": {"a": 1}, "reference": {"a": 2, "b": 3}},
                              {"a": lambda s: s["a"], "b": lambda s: s["b"]})
    assert rows == [{"quantity": "a", "fast": 1, "reference": 2},
                    {"quantity": "b", "fast": "–", "reference": 3}]
