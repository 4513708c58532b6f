"""Checkpoints: atomic writes, safe reads, and a resume that works on any device.

A checkpoint is always read onto the CPU (``map_location="cpu"``). The model
and optimizer states then move to the training device through
``load_state_dict`` (which copies into the live parameters and casts the
optimizer state to them), the RNG states stay CPU ByteTensors (as
``torch.set_rng_state`` and ``torch.cuda.set_rng_state`` require) and the
tracker's records stay on the CPU where they were made. Only the RNG state of
the current CUDA device is saved, so a run resumes on a machine with fewer GPUs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rankbook.store import atomic

CHECKPOINT = "checkpoint.pt"


class CorruptCheckpoint(RuntimeError):
    """A checkpoint file that cannot be read back (truncated or damaged outside rankbook)."""


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU with ``weights_only=True`` (no arbitrary unpickling)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, foreign objects: all mean the same to the user
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CorruptCheckpoint(
            f"checkpoint {path} is corrupt or truncated and cannot be resumed from ({type(exc).__name__}: "
            f"{first}). Delete it to train this run from the start."
        ) from exc
    if not isinstance(ckpt, dict) or "config" not in ckpt:
        raise CorruptCheckpoint(
            f"{path} is not a rankbook checkpoint. Delete it to train this run from the start."
        )
    return ckpt


def save(path: Path, blob: dict[str, Any]) -> None:
    """Write ``blob`` atomically (a kill mid-write leaves the previous checkpoint intact)."""
    atomic.write_with(path, lambda tmp: torch.save(blob, tmp))


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The CPU generator's state and, on CUDA, the current device's (CPU ByteTensors both)."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
