"""One training loop for every task (ViT, language model, LoRA adapters), and :func:`fit`, its one entry.

The loop is generic over a small *task* object (:class:`Task`) that supplies
the model, the schedule length, batches, the loss and an evaluation. The loop
owns everything else, for every task alike:

* Adam (no weight decay) with a linear warmup then a cosine decay to zero
  (:mod:`rankbook.training.schedule`);
* the tracker (:mod:`rankbook.training.tracker`): at log-spaced steps (0, 1, 2,
  3, 5, 7, 10, … and the last) the spectra of every head's ΔW_K W_Q^T and
  ΔW_V W_O^T, the mean training loss since the previous point, and the task's
  evaluation;
* atomic checkpoints every ``checkpoint_every`` steps and a bit-identical
  resume (batches are a function of the step, so resume needs no data state;
  :mod:`rankbook.training.checkpoint`);
* a stop naming the step when the loss or the weights become non-finite;
* results reuse through :mod:`rankbook.store.results`, keyed by a hash of the
  task's config plus the options that change numbers (:func:`results_config`);
* a fast path (:class:`~rankbook.training.options.FitOptions`: bf16 autocast,
  fused Adam on CUDA, ``torch.compile``, no host syncs between tracking points)
  and DistributedDataParallel under ``torchrun``: each rank takes its share of
  the global batch; rank 0 alone evaluates and writes.

A task needs: ``name``, ``config_dict()`` (all that fixes its results),
``build_model()`` (seeded; the model has ``attention_weights()`` →
``{"q","k","v","o"}: [layers, heads, d_model, d_head]``), ``total_steps()``,
``warmup_steps()``, ``base_lr()``, ``train_batch(step, device)`` (the *global*
batch of update ``step``), ``loss(model, inputs, targets)`` and
``evaluate(model, device)``. Optional: ``steps_per_epoch()``, ``describe()``
(merged into the manifest) and ``train_flops()`` (for the CPU time estimate).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from rankbook.store import paths, results
from rankbook.training.options import FitOptions, device_name, resolve_device
from rankbook.training.run import Run

#: bump when a change to training or tracking alters results, so stored runs are not reused by mistake
TRAINING_VERSION = 2
#: fp32 training FLOP/s of a quiet 2-core CI machine: the fast ViT run (1,950 steps × 128 images × 0.097
#: GFLOP) took 395 s there, 6.1e10 (shared with other work the machine gives less; the estimate is a floor)
CPU_FLOPS = 6e10
#: a CPU run estimated longer than this is refused unless $RANKBOOK_ALLOW_SLOW=1
SLOW_HOURS = 1.0


class SlowRunRefused(RuntimeError):
    """A CPU run estimated to take hours, started without asking for it explicitly."""


class Task(Protocol):
    name: str

    def config_dict(self) -> dict[str, Any]: ...
    def build_model(self) -> torch.nn.Module: ...
    def total_steps(self) -> int: ...
    def warmup_steps(self) -> int: ...
    def base_lr(self) -> float: ...
    def train_batch(self, step: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]: ...
    def loss(self, model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...
    def evaluate(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]: ...


def results_config(task: Task, options: FitOptions, track_per_decade: int) -> dict[str, Any]:
    """What the results key hashes: the task's config, tracking density, version, number-changing options.

    Pass ``options.resolved(device)``: "auto" precision and fused Adam are keyed as what they resolve to.
    """
    return {
        "training_version": TRAINING_VERSION,
        "track_per_decade": track_per_decade,
        **task.config_dict(),
        **options.results_fields(),
    }


def fit(
    task: Task,
    *,
    root: Path | None = None,
    device: str | torch.device = "cpu",
    options: FitOptions = FitOptions(),
    checkpoint_every: int = 1000,
    track_per_decade: int = 6,
    progress: bool = True,
    train_missing: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> results.Result | None:
    """The result of ``task``: reused from disk when stored, else trained (resuming a killed run).

    With ``train_missing=False`` nothing is trained: the stored result or None. Results live in
    ``results.run_dir(task.name, config, root)``. Under torch.distributed every rank trains; rank 0 returns
    the result, the others None. ``on_step(step)`` is called after each checkpoint decision (tests kill
    there).
    """
    device = resolve_device(str(device))
    roots = None if root is None else [Path(root)]
    # "auto" options resolve per device (bf16 on CUDA): a run stored by either device is a result of these
    # settings, so a CPU reader finds the GPU's run; this device's own resolution is looked up first
    for where in dict.fromkeys([device.type, "cuda", "cpu"]):
        found = results.find(
            task.name, results_config(task, options.resolved(torch.device(where)), track_per_decade), roots
        )
        if found is not None:
            return found
    if not train_missing:
        return None
    options = options.resolved(device)
    cfg = results_config(task, options, track_per_decade)
    _refuse_if_slow(task, device)
    folder = results.run_dir(task.name, cfg, root)
    results.check_folder(folder, cfg)
    run = Run(task, folder, device, options, results.canonical(cfg), checkpoint_every, track_per_decade)
    arrays, info = run.train(progress, on_step)
    if not run.ranks.main:
        return None
    return results.save(
        folder, cfg, arrays, wall_s=info["train_wall_s"], device=device_name(device), extra=info
    )


def _refuse_if_slow(task: Task, device: torch.device) -> None:
    if device.type != "cpu" or not hasattr(task, "train_flops"):
        return
    hours = task.train_flops() / CPU_FLOPS / 3600
    if hours > SLOW_HOURS and not paths.env_flag("RANKBOOK_ALLOW_SLOW"):
        raise SlowRunRefused(
            f"{task.name}: training on the CPU would take about {hours:.1f} h (estimated from its FLOPs at "
            f"{CPU_FLOPS / 1e9:.0f} GFLOP/s). Run it on a GPU, or set RANKBOOK_ALLOW_SLOW=1 to train anyway "
            f"(it resumes from its checkpoint if interrupted)."
        )
    if hours > 0.05:
        print(f"{task.name}: training on the CPU, estimated {hours * 60:.0f} min", flush=True)
