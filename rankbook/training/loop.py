"""A generic training loop with a spectra tracker, and the ViT as its first task.

The loop (:func:`train_loop`, and :func:`fit` which adds results reuse) is
generic over a small *task* object (:class:`Task`) that supplies the model,
the schedule length, batches, the loss and an evaluation. The loop owns
everything else, for every task alike:

* Adam (no weight decay) with a linear warmup then a cosine decay to zero
  (:func:`lr_at`; the paper's "cyclic decay", one cycle);
* the tracker: at log-spaced iterations (:func:`tracking_steps`: 0, 1, 2, 3,
  5, 7, 10, … and the last) it records for every head of every layer the
  singular values of ΔW_K W_Q^T and ΔW_V W_O^T (relative to the initial
  weights, from the thin factors; see :mod:`rankbook.analysis.spectra`), the mean
  training loss since the previous point, and the task's evaluation. The
  spectra of the initial products are recorded once;
* atomic checkpoints every ``checkpoint_every`` steps (model, optimizer,
  step, tracker and RNG states in ``checkpoint.pt``) and bit-identical
  resume on CPU: batches must be a function of the step (seeded), so resume
  needs no data state;
* a stop naming the step when the loss or the weights become non-finite;
* saving through :mod:`rankbook.store.results` (folder keyed by a hash of the
  task's config plus the options that change numbers);
* a fast path (:class:`FitOptions`: bf16 autocast, fused Adam on CUDA,
  optional ``torch.compile``, no host syncs between tracking points) and
  DistributedDataParallel under ``torchrun`` (:mod:`rankbook.training.distributed`):
  each rank takes its contiguous share of the global batch the task returns;
  rank 0 alone writes spectra, checkpoints and results.

Plugging in a task (a language model, say) needs no edit here::

    class MyTask:
        name = "gpt-tiny-seed0"                       # run-name prefix
        def config_dict(self): return {"kind": "gpt", "d_model": 64, "seed": 0, ...}  # all that fixes results
        def build_model(self):                        # deterministic: seed inside
            torch.manual_seed(0); return MyGPT(...)   # needs attention_weights() -> {"q","k","v","o"}:
                                                      #   [layers, heads, d_model, d_head] each
        def total_steps(self): return 1000
        def warmup_steps(self): return 50
        def base_lr(self): return 3e-4
        def train_batch(self, step, device):          # the *global* batch of update `step`, seeded by step
            g = torch.Generator().manual_seed(step); i = torch.randint(0, n, (B,), generator=g)
            return tokens[i].to(device), targets[i].to(device)
        def loss(self, model, inputs, targets):       # mean over the batch (DDP averages gradients)
            return F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
        def evaluate(self, model, device):            # called in fp32, under no_grad, on rank 0
            return {"test_loss": ...}

    result = train.fit(MyTask(), device="cuda", options=train.FitOptions(precision="bf16"),
                       checkpoint_every=500, track_per_decade=6)
    result.arrays["delta_qk"]   # [points, layers, heads, 2·d_head]; also "step", "lr", "train_loss", "test_loss", ...

Optional task methods: ``steps_per_epoch()`` (adds an ``epoch`` array and
names epochs in error messages) and ``describe()`` (a dict merged into the
manifest). The ViT task is :class:`ViTTask`; :func:`run` is what its
notebooks call.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from rankbook.store import atomic
from rankbook.data import images as data
from rankbook.store import results
from rankbook.analysis import spectra
from rankbook.models.vit import ViT, ViTConfig
from rankbook.settings.vit import ViTSettings

CHECKPOINT = "checkpoint.pt"
#: bump when a change to training or tracking alters results, so stored runs are not reused by mistake
TRAINING_VERSION = 1


class CorruptCheckpoint(RuntimeError):
    """A checkpoint file that cannot be read back (truncated or damaged outside rankbook)."""


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary unpickling); a damaged file is a clear error."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, foreign objects: all mean the same to the user
        raise CorruptCheckpoint(
            f"checkpoint {path} is corrupt or truncated and cannot be resumed from ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Delete it to train this run from the start."
        ) from exc
    if not isinstance(ckpt, dict) or "config" not in ckpt:
        raise CorruptCheckpoint(f"{path} is not a rankbook checkpoint. Delete it to train this run from the start.")
    return ckpt


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


class Task(Protocol):
    """What :func:`train_loop` needs from a task (see the module docstring for an example)."""

    name: str

    def config_dict(self) -> dict[str, Any]: ...
    def build_model(self) -> torch.nn.Module: ...
    def total_steps(self) -> int: ...
    def warmup_steps(self) -> int: ...
    def base_lr(self) -> float: ...
    def train_batch(self, step: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]: ...
    def loss(self, model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...
    def evaluate(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]: ...


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """How to run the loop fast; only choices that change numbers enter the results key.

    ``precision``: "fp32", "bf16" (autocast of the forward and loss; weights,
    optimizer and spectra stay fp32) or "auto" (bf16 on CUDA, else fp32).
    ``fused_adam``: None = fused on CUDA. ``sync_every_step``: read the loss on
    the host every step (exact NaN step, progress bar loss); None = only on
    CPU, where it is free. Without it, a non-finite loss is still caught with
    its step, at the next tracking point or checkpoint.
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
        """The options that change results, omitted at their plain values (so plain runs keep their keys)."""
        out: dict[str, Any] = {}
        if self.precision != "fp32":
            out["precision"] = self.precision
        if self.compile:
            out["compile"] = True
        if self.fused_adam:
            out["fused_adam"] = True
        return out


# --------------------------------------------------------------------------- schedules


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate of update ``step`` (0-based): linear warmup to ``base_lr``, then cosine decay to 0."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * progress))


def tracking_steps(total_steps: int, per_decade: int) -> list[int]:
    """0, then ``per_decade`` log-spaced iterations per decade (rounded, distinct), and ``total_steps``."""
    steps, k = {0, total_steps}, 0
    while (s := round(10 ** (k / per_decade))) < total_steps:
        steps.add(s)
        k += 1
    return sorted(steps)


def steps_per_epoch(num_train: int, batch_size: int) -> int:
    """Full batches per epoch (an incomplete last batch is dropped)."""
    if num_train < batch_size:
        raise ValueError(f"batch_size={batch_size} exceeds the {num_train} training images")
    return num_train // batch_size


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# --------------------------------------------------------------------------- distributed context


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place in a torch.distributed group (1 process when none is initialized)."""

    rank: int = 0
    world: int = 1

    @staticmethod
    def current() -> "Ranks":
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return Ranks(dist.get_rank(), dist.get_world_size())
        return Ranks()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """Mean of ``value`` over ranks (itself on one process)."""
        if self.world == 1:
            return value
        value = value.clone()
        torch.distributed.all_reduce(value)
        return value / self.world

    def min(self, value: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return value
        value = value.clone()
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MIN)
        return value

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a global batch (dim 0)."""
        if self.world == 1:
            return batch
        if batch.shape[0] % self.world:
            raise ValueError(f"global batch of {batch.shape[0]} does not split over {self.world} ranks")
        return batch.chunk(self.world)[self.rank]


# --------------------------------------------------------------------------- the loop


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def results_config(task: Task, options: FitOptions, track_per_decade: int) -> dict[str, Any]:
    """The dict the results key hashes: the task's config, tracking density, version, number-changing options.

    Pass ``options.resolved(device)``: "auto" precision and fused Adam are keyed as what they resolve to.
    """
    return {"training_version": TRAINING_VERSION, "track_per_decade": track_per_decade,
            **task.config_dict(), **options.results_fields()}


def _make_optimizer(model: torch.nn.Module, lr: float, fused: bool) -> torch.optim.Optimizer:
    kw = {"fused": True} if fused else {}
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=0.0, **kw)


def _wrap_for_training(model: torch.nn.Module, ranks: Ranks, device: torch.device, compile: bool
                       ) -> torch.nn.Module:
    """The module the step loop calls: DDP around the model on several ranks, compiled if asked."""
    forward = model
    if ranks.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else None
        forward = DistributedDataParallel(model, device_ids=ids)
    if compile:
        forward = torch.compile(forward)
    return forward


def train_loop(task: Task, folder: Path, *, device: str | torch.device = "cpu",
               options: FitOptions = FitOptions(), checkpoint_every: int = 1000, track_per_decade: int = 6,
               progress: bool = True, on_step: Callable[[int], None] | None = None
               ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Train ``task``, resuming from ``folder/checkpoint.pt`` when it holds this config.

    Returns ``(arrays, info)``: the tracked arrays (see module doc) and a few
    scalars (final evaluation, steps, wall time). On ranks other than 0 the
    arrays are empty. ``on_step(step)`` is called after each checkpoint
    decision (tests use it to kill the process).
    """
    device = resolve_device(str(device))
    opts = options.resolved(device)
    ranks = Ranks.current()
    folder = Path(folder)
    ckpt_path = folder / CHECKPOINT
    cfg_dict = results.canonical(results_config(task, opts, track_per_decade))
    total, warmup, base_lr = task.total_steps(), task.warmup_steps(), task.base_lr()
    spe = task.steps_per_epoch() if hasattr(task, "steps_per_epoch") else None
    track = set(tracking_steps(total, track_per_decade))
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if opts.precision == "bf16" \
        else contextlib.nullcontext

    model = task.build_model().to(device)
    optimizer = _make_optimizer(model, base_lr, opts.fused_adam)
    state = {"step": 0, "records": [], "loss_sum": 0.0, "loss_count": 0, "wall_s": 0.0,
             "initial": {k: v.clone() for k, v in model.attention_weights().items()}}
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, device)
        if ckpt["config"] != cfg_dict:
            raise results.ResultMismatchError(f"{ckpt_path} belongs to a different config; remove it to start over")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        _set_rng_state(ckpt["rng"])
        state = {k: ckpt[k] for k in state}
    forward = _wrap_for_training(model, ranks, device, opts.compile)
    initial = state["initial"]
    resumed_at = state["step"]
    last_good = resumed_at if ckpt_path.exists() else None
    # the running loss sum stays on the device (float64: the same sum as adding host floats), read at checks only
    loss_sum = torch.tensor(float(state["loss_sum"]), dtype=torch.float64, device=device)
    never = total + 1
    first_bad = torch.tensor(never, device=device)  # first step whose loss was non-finite
    bad_value = torch.tensor(0.0, device=device)

    def diverged(what: str, step: int) -> TrainingDiverged:
        where = f"{ckpt_path} (step {last_good})" if last_good is not None else "none was written yet"
        epoch = f" (epoch {step // spe})" if spe else ""
        return TrainingDiverged(
            f"{task.name}: {what} at step {step}{epoch} of {total}; training stopped. "
            f"Last good checkpoint: {where}. Try a lower lr (now {base_lr}) or a different init scale.")

    def check_loss() -> None:
        bad_at = int(ranks.min(first_bad))
        if bad_at != never:
            raise diverged(f"the loss became {float(bad_value) if int(first_bad) == bad_at else math.nan}", bad_at)

    def sync_loss_sum() -> None:  # every rank then holds the mean over ranks (so checkpoints resume exactly)
        nonlocal loss_sum
        loss_sum = ranks.mean(loss_sum)

    def record(step: int) -> None:
        weights = model.attention_weights()
        if not bool(torch.stack([torch.isfinite(w).all() for w in weights.values()]).all()):
            raise diverged("the attention weights became non-finite", step)
        sync_loss_sum()
        count = state["loss_count"]
        entry: dict[str, Any] = {"step": step}
        if ranks.main:
            model.eval()
            with torch.no_grad():
                evaluation = task.evaluate(model, device)
            model.train()
            entry.update({
                "lr": lr_at(max(step - 1, 0), base_lr, warmup, total) if step else 0.0,
                "delta_qk": spectra.delta_svdvals(weights, initial, "qk").float().cpu(),
                "delta_vo": spectra.delta_svdvals(weights, initial, "vo").float().cpu(),
                "train_loss": float(loss_sum) / count if count else math.nan,
                **{k: float(v) for k, v in evaluation.items()}})
        state["records"].append(entry)
        loss_sum.zero_()
        state["loss_count"] = 0

    def checkpoint(step: int) -> None:
        nonlocal last_good
        sync_loss_sum()
        if ranks.main:
            blob = {"config": cfg_dict, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "rng": _rng_state(), **state, "loss_sum": float(loss_sum), "step": step,
                    "wall_s": state["wall_s"] + time.perf_counter() - started}
            atomic.write_with(ckpt_path, lambda tmp: torch.save(blob, tmp))
        last_good = step

    from tqdm import tqdm  # text bar: a notebook widget would be saved as its first frame ("0%") in the book

    bar = tqdm(total=total, initial=resumed_at, desc=task.name, disable=not progress or not ranks.main,
               mininterval=10.0, ascii=True, file=sys.stderr)
    started = time.perf_counter()
    step = resumed_at
    while True:
        to_record = step in track and not any(r["step"] == step for r in state["records"])
        to_save = (step % checkpoint_every == 0 or step == total) and step != resumed_at
        if (to_record or to_save) and not opts.sync_every_step:
            check_loss()
        if to_record:
            record(step)
        if to_save:
            checkpoint(step)
        if on_step is not None:
            on_step(step)
        if step == total:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, base_lr, warmup, total)
        inputs, targets = task.train_batch(step, device)
        inputs, targets = ranks.shard(inputs), ranks.shard(targets)
        with autocast():
            loss = task.loss(forward, inputs, targets).float()
        value = loss.detach()
        # device-side bookkeeping of the first non-finite loss: no host sync unless asked
        first_bad = torch.where(torch.isfinite(value) | (first_bad != never), first_bad, step)
        bad_value = torch.where(first_bad == step, value, bad_value)
        if opts.sync_every_step:
            check_loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += value.double()
        state["loss_count"] += 1
        step += 1
        bar.update(1)
        if opts.sync_every_step:
            bar.set_postfix(loss=f"{float(value):.3f}", refresh=False)
    bar.close()
    wall = state["wall_s"] + time.perf_counter() - started
    info: dict[str, Any] = {"total_steps": total, "train_wall_s": round(wall, 3), "resumed_at_step": resumed_at,
                            "world_size": ranks.world, **opts.results_fields()}
    if spe:
        info["steps_per_epoch"] = spe
    if hasattr(task, "describe"):
        info.update(task.describe())
    if not ranks.main:
        return {}, info
    init_qk = spectra.head_svdvals(initial, "qk").float().cpu()
    init_vo = spectra.head_svdvals(initial, "vo").float().cpu()
    arrays = _stack(state["records"], init_qk, init_vo)
    if spe:
        arrays["epoch"] = arrays["step"] / spe
    eval_keys = [k for k in state["records"][-1] if k not in ("step", "lr", "delta_qk", "delta_vo", "train_loss")]
    info.update({f"final_{k}": float(arrays[k][-1]) for k in eval_keys})
    return arrays, info


def _stack(records: list[dict], init_qk: torch.Tensor, init_vo: torch.Tensor) -> dict[str, np.ndarray]:
    scalars = [k for k in records[0] if k not in ("delta_qk", "delta_vo")]
    out = {k: np.asarray([r[k] for r in records]) for k in scalars}
    for k in ("delta_qk", "delta_vo"):
        out[k] = torch.stack([r[k] for r in records]).numpy()
        out[f"stable_rank_{k}"] = spectra.stable_rank(torch.from_numpy(out[k])).numpy()
    out["init_qk"], out["init_vo"] = init_qk.numpy(), init_vo.numpy()
    out["stable_rank_init_qk"] = spectra.stable_rank(init_qk).numpy()
    out["stable_rank_init_vo"] = spectra.stable_rank(init_vo).numpy()
    return out


def device_name(device: torch.device) -> str:
    """A short description of ``device`` for manifests and benchmark tables."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({torch.get_num_threads()} threads)"


def fit(task: Task, *, root: Path | None = None, device: str | torch.device = "cpu",
        options: FitOptions = FitOptions(), checkpoint_every: int = 1000, track_per_decade: int = 6,
        progress: bool = True) -> results.Result | None:
    """The result of ``task``: reused from disk when a matching one exists, else trained (resuming if killed).

    Results live in ``results.run_dir(task.name, config, root)``. Under
    torch.distributed every rank trains; rank 0 returns the result and the
    other ranks ``None``.
    """
    device = resolve_device(str(device))
    options = options.resolved(device)
    cfg = results_config(task, options, track_per_decade)
    found = results.find(task.name, cfg, None if root is None else [Path(root)])
    if found is not None:
        return found
    folder = results.run_dir(task.name, cfg, root)
    results.check_folder(folder, cfg)
    arrays, info = train_loop(task, folder, device=device, options=options, checkpoint_every=checkpoint_every,
                              track_per_decade=track_per_decade, progress=progress)
    if not Ranks.current().main:
        return None
    return results.save(folder, cfg, arrays, wall_s=info["train_wall_s"], device=device_name(device), extra=info)


# --------------------------------------------------------------------------- the ViT task


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that determines one ViT run's results (its results key hashes this)."""

    dataset: str
    train_subset: int
    test_subset: int
    data_seed: int
    image_size: int
    patch_size: int
    d_model: int
    depth: int
    heads: int
    d_head: int
    mlp_dim: int
    epochs: int
    warmup_epochs: int
    batch_size: int
    lr: float
    augment: str
    init_scale: float
    seed: int
    track_per_decade: int

    @property
    def name(self) -> str:
        return f"vit-{self.dataset}-scale{self.init_scale:g}-seed{self.seed}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "vit", "training_version": TRAINING_VERSION, **dataclasses.asdict(self)}

    def model_config(self, num_classes: int) -> ViTConfig:
        return ViTConfig(image_size=self.image_size, patch_size=self.patch_size, num_classes=num_classes,
                         d_model=self.d_model, depth=self.depth, heads=self.heads, d_head=self.d_head,
                         mlp_dim=self.mlp_dim, init_scale=float(self.init_scale))


def run_config(settings: ViTSettings, dataset: str, init_scale: float, seed: int) -> RunConfig:
    """The config of one run of ``settings`` on ``dataset`` at ``init_scale`` and ``seed``."""
    names = {f.name for f in dataclasses.fields(RunConfig)} - {"dataset", "init_scale", "seed"}
    return RunConfig(dataset=dataset, init_scale=float(init_scale), seed=int(seed),
                     **{k: getattr(settings, k) for k in names})


@torch.no_grad()
def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor,
             std: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on uint8 ``images``."""
    loss_sum = torch.zeros((), dtype=torch.float64, device=images.device)
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    for i in range(0, len(labels), batch_size):
        logits = model(data.normalize(images[i:i + batch_size], mean, std)).float()
        y = labels[i:i + batch_size]
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        correct += (logits.argmax(-1) == y).sum()
    return float(loss_sum) / len(labels), int(correct) / len(labels)


class ViTTask:
    """The paper's image classification: a :class:`~rankbook.models.vit.ViT` on uint8 images held on the device.

    Data order draws from a generator seeded by (seed, epoch), augmentation
    from one seeded by (seed, step), on the device, so a batch is a function
    of the step. Incomplete last batches of an epoch are dropped, so every
    step sees ``batch_size`` images.
    """

    def __init__(self, config: RunConfig, train_data: data.ImageData, test_data: data.ImageData,
                 eval_batch_size: int = 1000):
        self.config, self.train_data, self.test_data = config, train_data, test_data
        self.eval_batch_size = eval_batch_size
        self.name = config.name
        self._spe = steps_per_epoch(len(train_data), config.batch_size)
        self._device: torch.device | None = None
        self._order: tuple[int, torch.Tensor] | None = None

    def config_dict(self) -> dict[str, Any]:
        return self.config.as_dict()

    def build_model(self) -> torch.nn.Module:
        torch.manual_seed(self.config.seed)
        return ViT(self.config.model_config(len(self.train_data.classes)))

    def steps_per_epoch(self) -> int:
        return self._spe

    def total_steps(self) -> int:
        return self._spe * self.config.epochs

    def warmup_steps(self) -> int:
        return self._spe * self.config.warmup_epochs

    def base_lr(self) -> float:
        return self.config.lr

    def _on(self, device: torch.device) -> None:
        """Move both splits to ``device`` once; normalization statistics from the training images."""
        if self._device == device:
            return
        self._device = device
        self.train_x, self.train_y = self.train_data.images.to(device), self.train_data.labels.to(device)
        self.test_x, self.test_y = self.test_data.images.to(device), self.test_data.labels.to(device)
        self.mean, self.std = data.channel_stats(self.train_x)
        self.aug_gen = torch.Generator(device=device)

    def batch_indices(self, step: int) -> torch.Tensor:
        """Indices of update ``step``'s images: epoch-seeded permutation, consecutive slices."""
        epoch, i = divmod(step, self._spe)
        if self._order is None or self._order[0] != epoch:
            seed = self.config.seed * 1_000_003 + epoch
            self._order = (epoch, torch.randperm(len(self.train_data), generator=torch.Generator().manual_seed(seed)))
        b = self.config.batch_size
        return self._order[1][i * b:(i + 1) * b]

    def train_batch(self, step: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        self._on(device)
        idx = self.batch_indices(step).to(device)
        images = self.train_x[idx]
        augment = data.AUGMENTATIONS[self.config.augment]
        if augment is not None:
            images = augment(images, self.aug_gen.manual_seed(self.config.seed * 1_000_003 + step + 2**40))
        return images, self.train_y[idx]

    def loss(self, model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(data.normalize(inputs, self.mean, self.std)), targets)

    def evaluate(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        self._on(device)
        loss, acc = evaluate(model, self.test_x, self.test_y, self.mean, self.std, self.eval_batch_size)
        return {"test_loss": loss, "test_acc": acc}

    def describe(self) -> dict[str, Any]:
        return {"train_images": len(self.train_data), "test_images": len(self.test_data),
                "classes": len(self.train_data.classes)}


def train(config: RunConfig, folder: Path, train_data: data.ImageData, test_data: data.ImageData, *,
          device: str | torch.device = "cpu", checkpoint_every: int = 1000, eval_batch_size: int = 1000,
          options: FitOptions = FitOptions(), progress: bool = True,
          on_step: Callable[[int], None] | None = None) -> tuple[dict, dict]:
    """Train one ViT run in ``folder`` (resuming there); returns ``(arrays, info)`` as :func:`train_loop`."""
    task = ViTTask(config, train_data, test_data, eval_batch_size)
    return train_loop(task, folder, device=device, options=options, checkpoint_every=checkpoint_every,
                      track_per_decade=config.track_per_decade, progress=progress, on_step=on_step)


# --------------------------------------------------------------------------- ViT runs with results reuse


def load_data(settings: ViTSettings, dataset: str) -> tuple[data.ImageData, data.ImageData]:
    """The train and test splits ``settings`` asks for (subsets stratified by class)."""
    kw = dict(seed=settings.data_seed, image_size=settings.image_size)
    train_data = data.load_split(dataset, "train", subset=settings.train_subset or None, **kw)
    test_data = data.load_split(dataset, "test", subset=settings.test_subset or None, **kw)
    return train_data, test_data


def fit_options(settings: ViTSettings) -> FitOptions:
    """The fast-path options a ViT profile asks for."""
    return FitOptions(precision=settings.precision, compile=settings.compile)


def run(settings: ViTSettings, dataset: str, init_scale: float, seed: int, *, root: Path | None = None,
        progress: bool = True) -> results.Result | None:
    """The result of one ViT run: reused from disk when a matching one exists, else trained (resuming if killed)."""
    config = run_config(settings, dataset, init_scale, seed)
    device = resolve_device(settings.device)
    options = fit_options(settings).resolved(device)
    cfg = results_config(_ConfigOnly(config), options, config.track_per_decade)
    found = results.find(config.name, cfg, None if root is None else [Path(root)])
    if found is not None:
        return found
    folder = results.run_dir(config.name, cfg, root)
    results.check_folder(folder, cfg)
    train_data, test_data = load_data(settings, dataset)
    arrays, info = train(config, folder, train_data, test_data, device=device,
                         checkpoint_every=settings.checkpoint_every, eval_batch_size=settings.eval_batch_size,
                         options=options, progress=progress)
    if not Ranks.current().main:
        return None
    info["data"] = {"train": train_data.description, "test": test_data.description}
    return results.save(folder, cfg, arrays, wall_s=info["train_wall_s"], device=device_name(device), extra=info)


@dataclasses.dataclass
class _ConfigOnly:
    """A ViT task's config without its data, to look up stored results before loading any data."""

    config: RunConfig

    def config_dict(self) -> dict[str, Any]:
        return self.config.as_dict()
