"""How a run is executed (device, precision, compile); only the choices that change numbers enter its key."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """``precision``: "fp32", "bf16" (autocast of the forward and loss; weights, optimizer and spectra stay
    fp32) or "auto" (bf16 on CUDA, else fp32). ``fused_adam``: None = fused on CUDA. ``sync_every_step``: read
    the loss on the host every step (exact NaN step, progress-bar loss); None = only on the CPU, where it is
    free. Without it a non-finite loss is still caught with its step, at the next tracking point or
    checkpoint.
    """

    precision: str = "fp32"
    compile: bool = False
    fused_adam: bool | None = None
    sync_every_step: bool | None = None

    def resolved(self, device: torch.device) -> "FitOptions":
        precision = self.precision
        if precision == "auto":
            precision = "bf16" if device.type == "cuda" else "fp32"
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision={self.precision!r}: choose fp32, bf16 or auto")
        fused = device.type == "cuda" if self.fused_adam is None else self.fused_adam
        sync = device.type == "cpu" if self.sync_every_step is None else self.sync_every_step
        return FitOptions(precision, self.compile, fused, sync)

    def results_fields(self) -> dict[str, Any]:
        """The options that change results, omitted at their plain values (so plain runs keep their keys).

        Fused Adam is not among them: it computes Adam's update in one kernel, equal up to float rounding,
        like any other kernel choice of a device; an fp32 run on a GPU keeps the key of the same run on a CPU.
        """
        out: dict[str, Any] = {}
        if self.precision != "fp32":
            out["precision"] = self.precision
        if self.compile:
            out["compile"] = True
        return out


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """A short description of ``device`` for manifests and benchmark tables."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({torch.get_num_threads()} threads)"
