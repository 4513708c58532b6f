"""Train ViT runs on several processes (GPUs) with DistributedDataParallel, under ``torchrun``.

    torchrun --standalone --nproc-per-node 8 -m rankbook.training.distributed --profile paper \\
        --dataset cifar10 --init-scale 1 --seed 0

Every rank builds the same model (same seed) and draws the same *global*
batch (the batch is a function of the step); each trains on its contiguous
share of it and DDP averages the gradients, so for a batch-mean loss the
update equals the single-process update with the same global batch
(``batch_size`` stays the global batch; it must divide by the number of
processes). Rank 0 alone evaluates, tracks spectra, writes checkpoints and
the results folder; a killed job started again resumes from rank 0's
checkpoint on every rank. The result lands in the same results store (same
key) as a single-process run, so the notebooks then reuse it.

Backend: NCCL on CUDA (one GPU per process, ``LOCAL_RANK``), gloo on CPU.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from typing import Any

import torch
import torch.distributed as dist

from rankbook.settings import profiles
from rankbook.settings.vit import PROFILES
from rankbook.training import vit


def init_process_group(
    backend: str | None = None,
    init_method: str = "env://",
    rank: int | None = None,
    world_size: int | None = None,
) -> torch.device:
    """Join the process group (``torchrun`` sets the env) and return this rank's device.

    With CUDA, process ``LOCAL_RANK`` takes GPU ``LOCAL_RANK`` and the backend is
    NCCL; without, gloo on the CPU.
    """
    cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if cuda else "gloo")
    kw: dict[str, Any] = {}
    if rank is not None:
        kw.update(rank=rank, world_size=world_size)
    dist.init_process_group(backend, init_method=init_method, timeout=datetime.timedelta(minutes=30), **kw)
    if backend == "nccl":
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank() % torch.cuda.device_count()))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def _overrides(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (values parsed as Python literals where they parse) for settings overrides."""
    import ast

    out = {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="torchrun --nproc-per-node N -m rankbook.training.distributed",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--profile", default=None, help="fast, reference or paper (default: $RANKBOOK_PROFILE, else fast)"
    )
    parser.add_argument(
        "--dataset", default=None, help="cifar10, cifar100, imagenet (default: the profile's first)"
    )
    parser.add_argument("--init-scale", type=float, default=None, help="default: the profile's init_scale")
    parser.add_argument("--seed", type=int, default=None, help="default: the profile's first seed")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="settings overrides, e.g. epochs=5"
    )
    args = parser.parse_args(argv)
    device = init_process_group()
    try:
        settings = profiles.select(
            PROFILES, args.profile, **_overrides(args.set), device="cuda" if device.type == "cuda" else "cpu"
        )
        dataset = args.dataset or settings.datasets[0]
        scale = settings.init_scale if args.init_scale is None else args.init_scale
        seed = settings.seeds[0] if args.seed is None else args.seed
        if (
            dist.get_rank() == 0
        ):  # one process finds, unpacks and decodes the data; the others then read its cache
            vit.task(settings, dataset, scale, seed).data()
        dist.barrier()
        result = vit.run(settings, dataset, scale, seed, progress=True)
        dist.barrier()
        if result is not None:
            print(f"result: {result.path} (final test accuracy {result.arrays['test_acc'][-1]:.4f})")
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
