"""The CUDA paths (bf16 autocast, fused Adam, torch.compile, resume on the GPU); skipped without CUDA.

Run on a GPU machine: ``python -m pytest -q tests/test_cuda.py``. On the CPU the resume fix they guard is
tested by tests/test_train.py (checkpoints are always read onto the CPU).
"""

import numpy as np
import pytest
import tiny  # tests/ is on sys.path under pytest
import torch

from rankbook.models.vit import ViT, ViTConfig
from rankbook.training.options import FitOptions

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _close(a, b, rtol):
    assert a.keys() == b.keys()
    for k in a:
        if np.issubdtype(a[k].dtype, np.floating):
            np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=1e-6, equal_nan=True, err_msg=k)


def test_bf16_fused_adam_run_finishes_and_is_keyed(tmp_path):
    arrays, manifest = tiny.train(tmp_path, options=FitOptions(precision="auto"), device="cuda")
    assert manifest["config"]["precision"] == "bf16" and manifest["fused_adam"] is True
    assert "fused_adam" not in manifest["config"]  # an implementation of the same update: not in the key
    assert manifest["device"].startswith("cuda")
    assert np.isfinite(arrays["train_loss"][1:]).all() and (arrays["delta_qk"][-1] > 0).any()


def test_resume_on_the_gpu_finishes_and_matches(tmp_path):
    """The crash this guards: CUDA RNG state / records moved to the GPU on load, then mixed at the end."""
    whole, _ = tiny.train(tmp_path / "whole", options=FitOptions(precision="bf16"), device="cuda")

    def crash(step):
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny.train(tmp_path / "cut", options=FitOptions(precision="bf16"), device="cuda", on_step=crash)
    resumed, manifest = tiny.train(tmp_path / "cut", options=FitOptions(precision="bf16"), device="cuda")
    assert manifest["resumed_at_step"] == 6
    _close(
        whole, resumed, rtol=1e-4
    )  # GPU kernels need not be bit-reproducible; the run must be the same run


def test_compile_matches_eager(tmp_path):
    eager, _ = tiny.train(
        tmp_path / "eager", options=FitOptions(precision="fp32", compile=False), device="cuda"
    )
    compiled, manifest = tiny.train(
        tmp_path / "compiled", options=FitOptions(precision="fp32", compile=True), device="cuda"
    )
    assert manifest["config"]["compile"] is True
    np.testing.assert_allclose(compiled["train_loss"][1:], eager["train_loss"][1:], rtol=1e-3)
    np.testing.assert_allclose(
        compiled["stable_rank_delta_vo"][1:], eager["stable_rank_delta_vo"][1:], rtol=0.05
    )


def test_paper_model_compiles_without_graph_breaks():
    model = ViT(ViTConfig()).cuda()
    explanation = torch._dynamo.explain(model)(torch.randn(4, 3, 32, 32, device="cuda"))
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_null_rank_r_weights_of_cuda_weights_stay_on_cuda_and_match_the_cpu_draw():
    """The paper LM's final numbers failed on an H200: the null's random update was drawn on the CPU and added
    to CUDA weights. The draw stays on the CPU (one generator, the same draw anywhere), then moves."""
    from rankbook.analysis import truncation

    gen = torch.Generator().manual_seed(0)
    shape = (2, 3, 16, 4)  # [layers, heads, d_model, d_head]
    initial = {k: torch.randn(*shape, generator=gen) for k in truncation.KINDS}
    final = {k: v + 0.1 * torch.randn(*shape, generator=gen) for k, v in initial.items()}
    on_cpu = truncation.rank_r_weights(initial, final, 2, null=True, seed=3)
    on_gpu = truncation.rank_r_weights({k: v.cuda() for k, v in initial.items()},
                                       {k: v.cuda() for k, v in final.items()}, 2, null=True, seed=3)
    for k in truncation.KINDS:
        assert on_gpu[k].device.type == "cuda"
        torch.testing.assert_close(on_gpu[k].cpu(), on_cpu[k], rtol=1e-5, atol=1e-6)
