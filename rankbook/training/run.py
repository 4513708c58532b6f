"""One run's training state and its step loop (:class:`Run`), driven by :func:`rankbook.training.loop.fit`.

The state (model, optimizer, tracker records, the running loss on the device) is what a checkpoint holds;
:meth:`Run.train` steps from where the checkpoint left off to the end, recording at the tracking steps and
checkpointing every ``checkpoint_every`` steps.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from rankbook.store import paths, results
from rankbook.training import checkpoint, tracker
from rankbook.training.options import FitOptions
from rankbook.training.ranks import Ranks
from rankbook.training.schedule import lr_at, tracking_steps

if TYPE_CHECKING:  # loop.py imports this module
    from rankbook.training.loop import Task


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


class TimeBudgetReached(RuntimeError):
    """Training stopped at a checkpoint because ``$RANKBOOK_STOP_AFTER_S`` seconds passed; rerun to resume."""


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


class Run:
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
        self.budget_s = paths.env_seconds("RANKBOOK_STOP_AFTER_S")
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
