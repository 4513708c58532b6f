"""The spectra explorer works without a browser: controls redraw, the static animation has every frame."""
import numpy as np
import pytest

from rankbook.figures import explorer
from rankbook.store.results import Result


@pytest.fixture
def result(tmp_path):
    rng = np.random.default_rng(0)
    steps, layers, heads, k = 4, 2, 3, 6
    arrays = {"step": np.array([0, 1, 5, 20])}
    for kind in ("qk", "vo"):
        delta = np.sort(rng.random((steps, layers, heads, 2 * k)), axis=-1)[..., ::-1].copy()
        delta[0] = 0.0  # Δ = 0 at iteration 0
        arrays[f"delta_{kind}"] = delta
        arrays[f"init_{kind}"] = np.sort(rng.random((layers, heads, k)), axis=-1)[..., ::-1].copy()
        arrays[f"stable_rank_delta_{kind}"] = np.full((steps, layers, heads), 1.5)
        arrays[f"stable_rank_delta_{kind}"][0] = np.nan
        arrays[f"stable_rank_init_{kind}"] = np.full((layers, heads), 3.0)
    config = {"kind": "vit", "dataset": "cifar10", "d_model": 8, "depth": layers, "heads": heads, "d_head": k,
              "epochs": 1, "lr": 1e-3, "batch_size": 4, "init_scale": 1.0, "seed": 0}
    return Result(tmp_path, arrays, {"config": config, "train_images": 10})


def test_explorer_controls_cover_the_run_and_redraw(result, monkeypatch):
    drawn = []
    draw = explorer._spectrum_axes
    monkeypatch.setattr(explorer, "_spectrum_axes", lambda ax, *args: (drawn.append(args), draw(ax, *args)))
    panel = explorer.spectra_explorer(result, "fast")
    (layer, head), step, kind, out = panel.children[0].children, *panel.children[1:]
    assert (layer.max, head.max) == (2, 3)
    assert list(step.options) == [0, 1, 5, 20]
    assert list(kind.options) == ["W_K W_Q^T", "W_V W_O^T"]
    for control, value in ((layer, 2), (head, 3), (step, 0), (kind, "W_V W_O^T")):
        control.value = value  # each change redraws; step 0 (Δ = 0) must not fail
    assert len(drawn) == 5, "one figure at start and one per change"
    assert drawn[-1][1:] == ("vo", 1, 2, 0)  # kind, layer index, head index, step index
    assert len(out.outputs) == 1 and "image/png" in out.outputs[0]["data"]


def test_static_animation_has_one_frame_per_nonzero_iteration(result):
    html = explorer.spectra_animation(result, "fast", layer=1, head=2, kind="vo").data
    assert "<script" in html
    assert html.count("frames[") >= 3 or html.count("data:image/png;base64") == 3
