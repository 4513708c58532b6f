"""Shared pieces of the scripts in ``benchmarks/``: output paths, quick/full modes, clocks, FLOPs, peaks.

Every benchmark measures its alternatives side by side in one process,
prints a table with the ratio, and writes JSON (atomically) to ``--out``,
by default ``_build/benchmarks/<name>.json``. ``--quick`` (the default
without a GPU) finishes in under a minute on two CPU cores; ``--full``
(the default with CUDA) uses the paper's shapes.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any, Callable

import torch

from rankbook.models.vit import ViTConfig
from rankbook.store import paths


def default_out(name: str) -> Path:
    """``<build>/benchmarks/<name>.json``."""
    return paths.build_root() / "benchmarks" / f"{name}.json"


def parser(name: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the common ``--quick/--full``, ``--device`` and ``--out`` options."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="quick",
        action="store_true",
        default=None,
        help="small shapes, < 60 s on 2 CPU cores (default without CUDA)",
    )
    mode.add_argument("--full", dest="quick", action="store_false", help="paper shapes (default with CUDA)")
    p.add_argument("--device", default="auto", help="auto: cuda when available, else cpu")
    p.add_argument("--out", default=str(default_out(name)), help="JSON output (written atomically)")
    return p


def resolve(args: argparse.Namespace) -> tuple[torch.device, bool]:
    """The device and whether to run quick (quick unless told otherwise, except on CUDA)."""
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    quick = args.quick if args.quick is not None else device.type != "cuda"
    return device, quick


def report_header(device: torch.device, quick: bool) -> dict[str, Any]:
    """The fields every benchmark's JSON starts with: mode, device, torch version, platform."""
    return {"mode": "quick" if quick else "full", "device": device_description(device),
            "device_type": device.type, "torch": torch.__version__, "platform": platform.platform()}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall seconds of ``fn()`` with the device's queue drained before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_name()} ({torch.get_num_threads()} threads)"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


#: dense tensor-core peaks (FLOP/s) from the vendors' data sheets. Matched in order against the device
#: name, the specific form factors first: an H100 PCIe or NVL card has a lower peak than the SXM module.
GPU_PEAKS = (
    ("H100 PCIe", {"bf16": 756e12, "fp32": 51e12}),
    ("H100 NVL", {"bf16": 835e12, "fp32": 60e12}),
    ("H200", {"bf16": 989e12, "fp32": 67e12}),
    ("H100", {"bf16": 989e12, "fp32": 67e12}),
    ("A100", {"bf16": 312e12, "fp32": 19.5e12}),
    ("L4", {"bf16": 121e12, "fp32": 30e12}),
)


def gpu_peak(name: str, precision: str) -> tuple[float | None, str]:
    """The data-sheet peak of the GPU called ``name`` (as torch reports it) and which entry gave it."""
    for key, peaks in GPU_PEAKS:
        if key in name:
            return peaks[precision], f"{key} data sheet, dense {precision}"
    return None, f"unknown peak for {name}"


def measured_matmul_peak(
    device: torch.device, dtype: torch.dtype = torch.bfloat16, n: int = 8192, repeats: int = 10
) -> float:
    """FLOP/s of an ``n × n × n`` matrix product on ``device`` (best of ``repeats`` after warm-ups)."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    best = min(clock(lambda: a @ b, device) for _ in range(repeats))
    return 2 * n**3 / best


def peak_flops(device: torch.device, precision: str) -> tuple[float | None, str]:
    """The peak FLOP/s assumed for ``device`` at ``precision`` and how it was obtained.

    GPUs: the data-sheet dense peak (H100/H200 SXM: 989 TFLOP/s bf16, 67
    fp32 without tensor cores; H100 PCIe 756, NVL 835). CPUs: an *assumed* peak, threads × clock ×
    32 fp32 FLOP/cycle (two 256-bit FMA pipes; AVX-512 on AMD runs as two
    256-bit halves), from the clock in /proc/cpuinfo (2.5 GHz if absent).
    """
    if device.type == "cuda":
        return gpu_peak(torch.cuda.get_device_name(device), precision)
    ghz = 2.5
    try:
        mhz = [
            float(line.split(":")[1])
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("cpu MHz")
        ]
        ghz = max(mhz) / 1000 if mhz else ghz
    except OSError:
        pass
    threads = torch.get_num_threads()
    return (
        threads * ghz * 1e9 * 32,
        f"assumed CPU peak: {threads} threads × {ghz:.2f} GHz × 32 fp32 FLOP/cycle",
    )


def vit_train_flops_per_image(cfg: ViTConfig) -> float:
    """Training FLOPs per image: 3 × forward (backward ≈ 2 × forward), counting 2 FLOPs per multiply-add.

    forward = 2·T·(P·d + L·(4·d·h·d_h + 2·d·m)) + L·4·T²·h·d_h + 2·d·C, with
    T tokens (patches + class token), P = 3·p² patch values, L layers, d
    width, h heads of d_h, m MLP width, C classes: the weight matmuls
    (≈ 2 × matmul parameters × tokens) plus the attention scores QK^T and
    the weighted sum of values (2·T²·d_h each per head). LayerNorms,
    softmax, GELU and the optimizer are left out (a few percent).
    """
    t = cfg.num_patches + 1
    patch = cfg.in_channels * cfg.patch_size**2
    d, h, dh, m, layers = cfg.d_model, cfg.heads, cfg.d_head, cfg.mlp_dim, cfg.depth
    forward = (
        2 * t * (patch * d + layers * (4 * d * h * dh + 2 * d * m))
        + layers * 4 * t * t * h * dh
        + 2 * d * cfg.num_classes
    )
    return 3.0 * forward


FLOP_FORMULA = (
    "training FLOPs/image = 3 × [2·T·(P·d + L·(4·d·h·d_h + 2·d·m)) + 4·L·T²·h·d_h + 2·d·C] "
    "(≈ 6 × matmul params × tokens + attention terms)"
)
