"""Factored vs dense singular values of the paper's per-head matrices, and the tracker's cost per checkpoint.

Shapes are the paper's CIFAR ViT: 6 layers × 8 heads, factors 512×128, so
W_K W_Q^T is 512×512 of rank ≤ 128 and Δ is 512×512 of rank ≤ 256
(--quick, the default without CUDA: 2 of the 6 layers, best of 1, < 60 s on
2 CPU cores; the tracker time is then scaled to 6 layers; --full, the default
with CUDA: all 6 layers, best of 3). Both
methods run in the same process on the same weights, in float64 (the dtype
rankbook.analysis.spectra computes in), side by side (alternating, best of N); the ratio is dense / factored.
Prints a table and writes the figures to --out (JSON, atomically).

    .venv/bin/python benchmarks/spectra.py [--quick|--full] [--repeats N] [--device cpu] [--out PATH]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared cores: idle OpenMP threads sleep, not spin

import platform  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from rankbook.analysis import spectra
from rankbook.book import benchmarking
from rankbook.store import atomic  # noqa: E402

LAYERS, HEADS, D_MODEL, D_HEAD = 6, 8, 512, 128


def _clock(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _time(fn, repeats: int, device: torch.device) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up (also the value checked for accuracy)
    return min(_clock(fn, device) for _ in range(repeats)), out  # best of N: contention only adds time


def _time_pair(first, second, repeats: int, device: torch.device):
    """Best-of-N times of two functions measured alternately, so drifts in machine load hit both alike."""
    out_first, out_second = first(), second()
    t_first, t_second = [], []
    for _ in range(repeats):
        t_first.append(_clock(first, device))
        t_second.append(_clock(second, device))
    return (min(t_first), out_first), (min(t_second), out_second)


def _weights(
    gen: torch.Generator, device: torch.device, scale: float = 1.0, layers: int = LAYERS
) -> dict[str, torch.Tensor]:
    shape = (layers, HEADS, D_MODEL, D_HEAD)
    return {k: (scale * torch.randn(shape, generator=gen, dtype=torch.float64)).to(device) for k in "qkvo"}


def main(argv: list[str] | None = None) -> dict:
    parser = benchmarking.parser("spectra", __doc__)
    parser.add_argument("--repeats", type=int, default=None, help="best of N (default 1 quick, 3 full)")
    args = parser.parse_args(argv)
    device, quick = benchmarking.resolve(args)
    layers = 2 if quick else LAYERS
    args.repeats = args.repeats or (1 if quick else 3)
    gen = torch.Generator().manual_seed(0)
    w0 = _weights(gen, device, 1 / D_MODEL**0.5, layers)
    w = {k: v + 0.01 * _weights(gen, device, 1 / D_MODEL**0.5, layers)[k] for k, v in w0.items()}

    cases = {
        "W_K W_Q^T": (
            lambda: spectra.head_svdvals(w, "qk"),
            lambda: torch.linalg.svdvals(spectra.product(w, "qk")),
            D_HEAD,
        ),
        "Δ W_K W_Q^T": (
            lambda: spectra.delta_svdvals(w, w0, "qk"),
            lambda: torch.linalg.svdvals(spectra.product(w, "qk") - spectra.product(w0, "qk")),
            2 * D_HEAD,
        ),
    }
    rows = {}
    for name, (factored, dense, rank) in cases.items():
        (t_fact, s_fact), (t_dense, s_dense) = _time_pair(factored, dense, args.repeats, device)
        err = float(((s_fact - s_dense[..., :rank]).abs().amax(-1) / s_dense[..., 0]).max())
        rows[name] = {
            "factored_s": t_fact,
            "dense_s": t_dense,
            "speedup": t_dense / t_fact,
            "max_rel_error": err,
            "matrices": layers * HEADS,
        }

    # Δ has rank up to 2·d_head, so its core is 2·d_head wide: the ratio of a dense SVD to an SVD of that
    # core bounds the speedup any exact factored method can reach for Δ (QR costs come on top).
    core = torch.randn(layers * HEADS, 2 * D_HEAD, 2 * D_HEAD, generator=gen, dtype=torch.float64).to(device)
    full = torch.randn(layers * HEADS, D_MODEL, D_MODEL, generator=gen, dtype=torch.float64).to(device)
    (t_core, _), (t_full, _) = _time_pair(
        lambda: torch.linalg.svdvals(core), lambda: torch.linalg.svdvals(full), args.repeats, device
    )

    def tracker_record():  # what the tracker computes per tracked iteration (test evaluation excluded)
        return spectra.delta_svdvals(w, w0, "qk"), spectra.delta_svdvals(w, w0, "vo")

    t_track, _ = _time(tracker_record, args.repeats, device)
    t_track *= LAYERS / layers  # per checkpoint of the paper's 6-layer model (linear in the number of heads)
    report = {
        "mode": "quick" if quick else "full",
        "shapes": {"layers": layers, "heads": HEADS, "d_model": D_MODEL, "d_head": D_HEAD},
        "dtype": "float64",
        "device": benchmarking.device_description(device),
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "repeats": args.repeats,
        "cases": rows,
        "tracker_s_per_checkpoint": t_track,
        "delta_speedup_bound": {"svd_2dhead_core_s": t_core, "svd_dense_s": t_full, "ratio": t_full / t_core},
    }
    print(
        f"{layers} layers × {HEADS} heads, factors {D_MODEL}×{D_HEAD}, float64, {device}, "
        f"{torch.get_num_threads()} threads, best of {args.repeats}"
    )
    print(f"{'matrix':<14}{'factored (s)':>14}{'dense (s)':>12}{'speedup':>10}{'max rel err':>14}")
    for name, r in rows.items():
        print(
            f"{name:<14}{r['factored_s']:>14.3f}{r['dense_s']:>12.3f}{r['speedup']:>9.1f}x{r['max_rel_error']:>14.1e}"
        )
    print(
        f"bound for Δ: SVD of a {2 * D_HEAD}-wide core is {t_full / t_core:.1f}x faster than of a dense "
        f"{D_MODEL}x{D_MODEL} matrix, before any QR"
    )
    print(
        f"tracker (ΔW_K W_Q^T and ΔW_V W_O^T, all heads of {LAYERS} layers): {t_track:.3f} s per checkpoint"
    )
    out = atomic.write_json(args.out, report)
    print(f"written to {out}")
    return report


if __name__ == "__main__":
    main()
