"""Factored vs dense singular values of the paper's per-head matrices, and the tracker's cost per checkpoint.

Shapes are the paper's CIFAR ViT: 6 layers × 8 heads, factors 512×128, so
W_K W_Q^T is 512×512 of rank ≤ 128 and Δ is 512×512 of rank ≤ 256. Both
methods run in the same process on the same weights, in float64 (the dtype
rankbook.spectra computes in), side by side; the ratio is dense / factored.
Prints a table and writes the figures to --out (JSON, atomically).

    .venv/bin/python benchmarks/spectra.py [--repeats 3] [--device cpu] [--out _build/benchmarks/spectra.json]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from rankbook import atomic, paths, spectra

LAYERS, HEADS, D_MODEL, D_HEAD = 6, 8, 512, 128


def _time(fn, repeats: int, device: torch.device) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up (also the value checked for accuracy)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _weights(gen: torch.Generator, device: torch.device, scale: float = 1.0) -> dict[str, torch.Tensor]:
    shape = (LAYERS, HEADS, D_MODEL, D_HEAD)
    return {k: (scale * torch.randn(shape, generator=gen, dtype=torch.float64)).to(device) for k in "qkvo"}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(paths.build_root() / "benchmarks" / "spectra.json"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    w0 = _weights(gen, device, 1 / D_MODEL ** 0.5)
    w = {k: v + 0.01 * _weights(gen, device, 1 / D_MODEL ** 0.5)[k] for k, v in w0.items()}

    cases = {
        "W_K W_Q^T": (lambda: spectra.head_svdvals(w, "qk"),
                      lambda: torch.linalg.svdvals(spectra.product(w, "qk")), D_HEAD),
        "Δ W_K W_Q^T": (lambda: spectra.delta_svdvals(w, w0, "qk"),
                        lambda: torch.linalg.svdvals(spectra.product(w, "qk") - spectra.product(w0, "qk")),
                        2 * D_HEAD),
    }
    rows = {}
    for name, (factored, dense, rank) in cases.items():
        t_fact, s_fact = _time(factored, args.repeats, device)
        t_dense, s_dense = _time(dense, args.repeats, device)
        err = float(((s_fact - s_dense[..., :rank]).abs().amax(-1) / s_dense[..., 0]).max())
        rows[name] = {"factored_s": t_fact, "dense_s": t_dense, "speedup": t_dense / t_fact,
                      "max_rel_error": err, "matrices": LAYERS * HEADS}

    def tracker_record():  # what the tracker computes per tracked iteration (test evaluation excluded)
        return spectra.delta_svdvals(w, w0, "qk"), spectra.delta_svdvals(w, w0, "vo")

    t_track, _ = _time(tracker_record, args.repeats, device)
    report = {"shapes": {"layers": LAYERS, "heads": HEADS, "d_model": D_MODEL, "d_head": D_HEAD},
              "dtype": "float64", "device": str(device), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "platform": platform.platform(), "repeats": args.repeats,
              "cases": rows, "tracker_s_per_checkpoint": t_track}
    print(f"{LAYERS} layers × {HEADS} heads, factors {D_MODEL}×{D_HEAD}, float64, {device}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'matrix':<14}{'factored (s)':>14}{'dense (s)':>12}{'speedup':>10}{'max rel err':>14}")
    for name, r in rows.items():
        print(f"{name:<14}{r['factored_s']:>14.3f}{r['dense_s']:>12.3f}{r['speedup']:>9.1f}x{r['max_rel_error']:>14.1e}")
    print(f"tracker (ΔW_K W_Q^T and ΔW_V W_O^T, all heads): {t_track:.3f} s per checkpoint")
    out = atomic.write_json(args.out, report)
    print(f"written to {out}")
    return report


if __name__ == "__main__":
    main()
