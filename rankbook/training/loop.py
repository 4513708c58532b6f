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

import contextlib
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch

from rankbook.store import results
from rankbook.training import checkpoint, tracker
from rankbook.training.options import FitOptions, device_name, resolve_device
from rankbook.training.ranks import Ranks
from rankbook.training.schedule import lr_at, tracking_steps

#: bump when a change to training or tracking alters results, so stored runs are not reused by mistake
TRAINING_VERSION = 2
#: sustained fp32 training throughput of the 2-core CI machine (measured: see benchmarks/vit_throughput.py)
CPU_FLOPS = 2.5e10
#: a CPU run estimated longer than this is refused unless $RANKBOOK_ALLOW_SLOW=1
SLOW_HOURS = 1.0


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


class SlowRunRefused(RuntimeError):
    """A CPU run estimated to take hours, started without asking for it explicitly."""


class TimeBudgetReached(RuntimeError):
    """Training stopped at a checkpoint because ``$RANKBOOK_STOP_AFTER_S`` seconds passed; rerun to resume."""


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
    run = _Run(task, folder, device, options, results.canonical(cfg), checkpoint_every, track_per_decade)
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
    if hours > SLOW_HOURS and os.environ.get("RANKBOOK_ALLOW_SLOW") != "1":
        raise SlowRunRefused(
            f"{task.name}: training on the CPU would take about {hours:.1f} h (estimated from its FLOPs at "
            f"{CPU_FLOPS / 1e9:.0f} GFLOP/s). Run it on a GPU, or set RANKBOOK_ALLOW_SLOW=1 to train anyway "
            f"(it resumes from its checkpoint if interrupted)."
        )
    if hours > 0.05:
        print(f"{task.name}: training on the CPU, estimated {hours * 60:.0f} min", flush=True)


def _optimizer(model: torch.nn.Module, lr: float, fused: bool) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=0.0, **({"fused": True} if fused else {}))


def _wrap(model: torch.nn.Module, ranks: Ranks, device: torch.device, compile: bool) -> torch.nn.Module:
    """The module the step loop calls: DDP around the model on several ranks, compiled if asked."""
    forward = model
    if ranks.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = (
            [device.index if device.index is not None else torch.cuda.current_device()]
            if device.type == "cuda"
            else None
        )
        forward = DistributedDataParallel(model, device_ids=ids)
    return torch.compile(forward) if compile else forward


class _Run:
    """One run's training state: model, optimizer, tracker records, loss bookkeeping, checkpoints."""

    def __init__(
        self,
        task: Task,
        folder: Path,
        device: torch.device,
        opts: FitOptions,
        cfg: dict[str, Any],
        checkpoint_every: int,
        track_per_decade: int,
    ):
        self.task, self.device, self.opts, self.cfg = task, device, opts, cfg
        self.ranks = Ranks.current()
        self.ckpt_path = Path(folder) / checkpoint.CHECKPOINT
        self.total, self.warmup, self.base_lr = task.total_steps(), task.warmup_steps(), task.base_lr()
        self.spe = task.steps_per_epoch() if hasattr(task, "steps_per_epoch") else None
        self.track = set(tracking_steps(self.total, track_per_decade))
        self.checkpoint_every = checkpoint_every
        # machines that grant commands of limited length (a lent GPU) train in resumable slices
        self.budget_s = float(os.environ.get("RANKBOOK_STOP_AFTER_S", "inf"))
        self.model = task.build_model().to(device)
        self.optimizer = _optimizer(self.model, self.base_lr, opts.fused_adam)
        self.state: dict[str, Any] = {
            "step": 0,
            "records": [],
            "loss_sum": 0.0,
            "loss_count": 0,
            "wall_s": 0.0,
            "initial": {k: v.clone() for k, v in self.model.attention_weights().items()},
        }
        self.last_good: int | None = None
        if self.ckpt_path.exists():
            self._resume()
        self.initial = {k: v.to(device) for k, v in self.state["initial"].items()}
        self.forward = _wrap(self.model, self.ranks, device, opts.compile)
        # the running loss sum stays on the device (float64: the same sum as adding host floats)
        self.loss_sum = torch.tensor(float(self.state["loss_sum"]), dtype=torch.float64, device=device)
        self.never = self.total + 1
        self.first_bad = torch.tensor(self.never, device=device)  # first step whose loss was non-finite
        self.bad_value = torch.tensor(0.0, device=device)

    def _resume(self) -> None:
        ckpt = checkpoint.load(self.ckpt_path)  # on the CPU; load_state_dict moves what must move
        if ckpt["config"] != self.cfg:
            raise results.ResultMismatchError(
                f"{self.ckpt_path} belongs to a different config; remove it to start over"
            )
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        checkpoint.set_rng_state(ckpt["rng"], self.device)
        self.state = {k: ckpt[k] for k in self.state}
        self.last_good = self.state["step"]

    def diverged(self, what: str, step: int) -> TrainingDiverged:
        where = (
            f"{self.ckpt_path} (step {self.last_good})"
            if self.last_good is not None
            else "none was written yet"
        )
        epoch = f" (epoch {step // self.spe})" if self.spe else ""
        return TrainingDiverged(
            f"{self.task.name}: {what} at step {step}{epoch} of {self.total}; training stopped. "
            f"Last good checkpoint: {where}. Try a lower lr (now {self.base_lr}) or a different init scale."
        )

    def check_loss(self) -> None:
        bad_at = int(self.ranks.min(self.first_bad))
        if bad_at != self.never:
            value = float(self.bad_value) if int(self.first_bad) == bad_at else math.nan
            raise self.diverged(f"the loss became {value}", bad_at)

    def sync_loss_sum(
        self,
    ) -> None:  # every rank then holds the mean over ranks (so checkpoints resume exactly)
        self.loss_sum = self.ranks.mean(self.loss_sum)

    def record(self, step: int) -> None:
        weights = self.model.attention_weights()
        if not tracker.all_finite(weights):
            raise self.diverged("the attention weights became non-finite", step)
        self.sync_loss_sum()
        count = self.state["loss_count"]
        entry: dict[str, Any] = {"step": step}
        if self.ranks.main:
            self.model.eval()
            with torch.no_grad():
                evaluation = self.task.evaluate(self.model, self.device)
            self.model.train()
            entry.update(
                {
                    "lr": lr_at(max(step - 1, 0), self.base_lr, self.warmup, self.total) if step else 0.0,
                    **tracker.measure(weights, self.initial),
                    "train_loss": float(self.loss_sum) / count if count else math.nan,
                    **{k: float(v) for k, v in evaluation.items()},
                }
            )
        self.state["records"].append(entry)
        self.loss_sum.zero_()
        self.state["loss_count"] = 0

    def save_checkpoint(self, step: int, wall_s: float) -> None:
        self.sync_loss_sum()
        if self.ranks.main:
            checkpoint.save(
                self.ckpt_path,
                {
                    "config": self.cfg,
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "rng": checkpoint.rng_state(self.device),
                    **self.state,
                    "loss_sum": float(self.loss_sum),
                    "step": step,
                    "wall_s": wall_s,
                },
            )
        self.last_good = step

    def update(self, step: int, autocast) -> torch.Tensor:
        """One Adam step on the batch of ``step``; returns the loss (on the device)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(step, self.base_lr, self.warmup, self.total)
        inputs, targets = self.task.train_batch(step, self.device)
        inputs, targets = self.ranks.shard(inputs), self.ranks.shard(targets)
        with autocast():
            loss = self.task.loss(self.forward, inputs, targets).float()
        value = loss.detach()
        # device-side bookkeeping of the first non-finite loss: no host sync unless asked
        self.first_bad = torch.where(
            torch.isfinite(value) | (self.first_bad != self.never), self.first_bad, step
        )
        self.bad_value = torch.where(self.first_bad == step, value, self.bad_value)
        if self.opts.sync_every_step:
            self.check_loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.loss_sum += value.double()
        self.state["loss_count"] += 1
        return value

    def train(
        self, progress: bool, on_step: Callable[[int], None] | None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from tqdm import tqdm  # text bar: a notebook widget would be saved as its first frame ("0%")

        autocast = (
            (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16))
            if self.opts.precision == "bf16"
            else contextlib.nullcontext
        )
        resumed_at = step = self.state["step"]
        bar = tqdm(
            total=self.total,
            initial=resumed_at,
            desc=self.task.name,
            mininterval=10.0,
            ascii=True,
            disable=not progress or not self.ranks.main,
            file=sys.stderr,
        )
        started = time.perf_counter()
        while True:
            to_record = step in self.track and not any(r["step"] == step for r in self.state["records"])
            to_save = (step % self.checkpoint_every == 0 or step == self.total) and step != resumed_at
            if (to_record or to_save) and not self.opts.sync_every_step:
                self.check_loss()
            if to_record:
                self.record(step)
            if to_save:
                self.save_checkpoint(step, self.state["wall_s"] + time.perf_counter() - started)
                if step != self.total and time.perf_counter() - started > self.budget_s:
                    raise TimeBudgetReached(
                        f"{self.task.name}: stopped at the checkpoint of step {step} of "
                        f"{self.total} after {self.budget_s:.0f} s; run again to resume"
                    )
            if on_step is not None:
                on_step(step)
            if step == self.total:
                break
            value = self.update(step, autocast)
            step += 1
            bar.update(1)
            if self.opts.sync_every_step:
                bar.set_postfix(loss=f"{float(value):.3f}", refresh=False)
        bar.close()
        return self._outputs(resumed_at, self.state["wall_s"] + time.perf_counter() - started)

    def _outputs(self, resumed_at: int, wall: float) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        info: dict[str, Any] = {
            "total_steps": self.total,
            "train_wall_s": round(wall, 3),
            "resumed_at_step": resumed_at,
            "world_size": self.ranks.world,
            "fused_adam": bool(self.opts.fused_adam),
            **self.opts.results_fields(),
        }
        if self.spe:
            info["steps_per_epoch"] = self.spe
        if hasattr(self.task, "describe"):
            info.update(self.task.describe())
        if not self.ranks.main:
            return {}, info
        arrays = tracker.stack(self.state["records"], self.initial, self.model.attention_weights())
        if self.spe:
            arrays["epoch"] = arrays["step"] / self.spe
        skip = {"step", "lr", "train_loss", *tracker.SPECTRA}
        info.update({f"final_{k}": float(arrays[k][-1]) for k in self.state["records"][-1] if k not in skip})
        return arrays, info
