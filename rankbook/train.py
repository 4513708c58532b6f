"""Train the ViT and track the spectra of every head's ΔW_K W_Q^T and ΔW_V W_O^T.

Optimization follows the paper: Adam, cross-entropy, no weight decay, no
dropout, a linear warmup then a cosine decay to zero over the remaining
steps (:func:`lr_at`; the paper's "cyclic decay", one cycle). Incomplete
last batches of an epoch are dropped, so every step sees ``batch_size``
images.

At log-spaced iterations (:func:`tracking_steps`: 0, 1, 2, 3, 5, 7, 10, …
and the last), the tracker records for every head of every layer the
singular values of ΔW_K W_Q^T and ΔW_V W_O^T (relative to the initial
weights, from the thin factors; see :mod:`rankbook.spectra`), the mean
training loss since the previous point, and the test loss and accuracy. The
spectra of the initial products are recorded once.

Runs are resumable: every ``checkpoint_every`` steps the model, optimizer,
step, tracker and RNG states are written atomically to ``checkpoint.pt`` in
the run folder; a killed run started again continues from there and ends
with the same results as an uninterrupted one (bit-identical on CPU). Data
order and augmentation draw from generators seeded by (seed, epoch) and
(seed, step), so they need no state to resume.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import atomic, data, results, spectra
from .vit import ViT, ViTConfig
from .vit_profiles import ViTSettings

CHECKPOINT = "checkpoint.pt"
#: bump when a change to training or tracking alters results, so stored runs are not reused by mistake
TRAINING_VERSION = 1


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run's results (its results key hashes this)."""

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
    if num_train < batch_size:
        raise ValueError(f"batch_size={batch_size} exceeds the {num_train} training images")
    return num_train // batch_size


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# --------------------------------------------------------------------------- training


@torch.no_grad()
def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor,
             std: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on uint8 ``images``."""
    loss_sum, correct = 0.0, 0
    for i in range(0, len(labels), batch_size):
        logits = model(data.normalize(images[i:i + batch_size], mean, std))
        y = labels[i:i + batch_size]
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(-1) == y).sum())
    return loss_sum / len(labels), correct / len(labels)


def _batch_indices(step: int, n: int, batch: int, spe: int, seed: int) -> torch.Tensor:
    epoch, i = divmod(step, spe)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return order[i * batch:(i + 1) * batch]


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train(config: RunConfig, folder: Path, train_data: data.ImageData, test_data: data.ImageData, *,
          device: str | torch.device = "cpu", checkpoint_every: int = 1000, eval_batch_size: int = 1000,
          progress: bool = True, on_step: Callable[[int], None] | None = None) -> tuple[dict, dict]:
    """Train one run, resuming from ``folder/checkpoint.pt`` when it holds this config.

    Returns ``(arrays, info)``: the tracked arrays (see module doc) and a few
    scalars (final accuracy, steps, wall time). ``on_step(step)`` is called
    after each checkpoint decision (tests use it to kill the process).
    """
    device = resolve_device(str(device))
    folder = Path(folder)
    ckpt_path = folder / CHECKPOINT
    cfg_dict = results.canonical(config.as_dict())
    spe = steps_per_epoch(len(train_data), config.batch_size)
    total = spe * config.epochs
    warmup = spe * config.warmup_epochs
    track = set(tracking_steps(total, config.track_per_decade))
    augment_fn = data.AUGMENTATIONS[config.augment]

    torch.manual_seed(config.seed)
    model = ViT(config.model_config(len(train_data.classes))).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=0.0)
    train_x, train_y = train_data.images.to(device), train_data.labels.to(device)
    test_x, test_y = test_data.images.to(device), test_data.labels.to(device)
    mean, std = data.channel_stats(train_x)

    state = {"step": 0, "records": [], "loss_sum": 0.0, "loss_count": 0, "wall_s": 0.0,
             "initial": {k: v.clone() for k, v in model.attention_weights().items()}}
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        if ckpt["config"] != cfg_dict:
            raise results.ResultMismatchError(f"{ckpt_path} belongs to a different config; remove it to start over")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        _set_rng_state(ckpt["rng"])
        state = {k: ckpt[k] for k in state}
    initial = state["initial"]
    init_qk = spectra.head_svdvals(initial, "qk").float().cpu()
    init_vo = spectra.head_svdvals(initial, "vo").float().cpu()
    resumed_at = state["step"]
    last_good = resumed_at if ckpt_path.exists() else None

    def diverged(what: str, step: int) -> TrainingDiverged:
        where = f"{ckpt_path} (step {last_good})" if last_good is not None else "none was written yet"
        return TrainingDiverged(
            f"{config.name}: {what} at step {step} (epoch {step // spe}) of {total}; training stopped. "
            f"Last good checkpoint: {where}. Try a lower lr (now {config.lr}) or a different init scale.")

    def record(step: int) -> None:
        weights = model.attention_weights()
        if not all(bool(torch.isfinite(w).all()) for w in weights.values()):
            raise diverged("the attention weights became non-finite", step)
        test_loss, test_acc = evaluate(model, test_x, test_y, mean, std, eval_batch_size)
        count = state["loss_count"]
        state["records"].append({
            "step": step, "lr": lr_at(max(step - 1, 0), config.lr, warmup, total) if step else 0.0,
            "delta_qk": spectra.delta_svdvals(weights, initial, "qk").float().cpu(),
            "delta_vo": spectra.delta_svdvals(weights, initial, "vo").float().cpu(),
            "train_loss": state["loss_sum"] / count if count else math.nan,
            "test_loss": test_loss, "test_acc": test_acc})
        state["loss_sum"], state["loss_count"] = 0.0, 0

    def checkpoint(step: int) -> None:
        nonlocal last_good
        blob = {"config": cfg_dict, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "rng": _rng_state(), **state, "step": step,
                "wall_s": state["wall_s"] + time.perf_counter() - started}
        atomic.write_with(ckpt_path, lambda tmp: torch.save(blob, tmp))
        last_good = step

    from tqdm import tqdm  # text bar: a notebook widget would be saved as its first frame ("0%") in the book

    bar = tqdm(total=total, initial=resumed_at, desc=config.name, disable=not progress, mininterval=10.0,
               ascii=True, file=sys.stderr)
    started = time.perf_counter()
    step = resumed_at
    aug_gen = torch.Generator(device=device)
    while True:
        if step in track and not any(r["step"] == step for r in state["records"]):
            record(step)
        if (step % checkpoint_every == 0 or step == total) and step != resumed_at:
            checkpoint(step)
        if on_step is not None:
            on_step(step)
        if step == total:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config.lr, warmup, total)
        idx = _batch_indices(step, len(train_y), config.batch_size, spe, config.seed).to(device)
        images = train_x[idx]
        if augment_fn is not None:
            images = augment_fn(images, aug_gen.manual_seed(config.seed * 1_000_003 + step + 2**40))
        loss = F.cross_entropy(model(data.normalize(images, mean, std)), train_y[idx])
        if not torch.isfinite(loss):
            raise diverged(f"the loss became {float(loss.detach())}", step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = float(loss.detach())
        state["loss_sum"] += loss_value
        state["loss_count"] += 1
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", refresh=False)
    bar.close()
    wall = state["wall_s"] + time.perf_counter() - started
    arrays = _stack(state["records"], init_qk, init_vo)
    arrays["epoch"] = arrays["step"] / spe
    info = {"final_test_acc": float(arrays["test_acc"][-1]), "final_test_loss": float(arrays["test_loss"][-1]),
            "total_steps": total, "steps_per_epoch": spe, "train_images": len(train_y),
            "test_images": len(test_y), "classes": len(train_data.classes), "train_wall_s": round(wall, 3),
            "resumed_at_step": resumed_at}
    return arrays, info


def _stack(records: list[dict], init_qk: torch.Tensor, init_vo: torch.Tensor) -> dict[str, np.ndarray]:
    out = {k: np.asarray([r[k] for r in records]) for k in ("step", "lr", "train_loss", "test_loss", "test_acc")}
    for k in ("delta_qk", "delta_vo"):
        out[k] = torch.stack([r[k] for r in records]).numpy()
        out[f"stable_rank_{k}"] = spectra.stable_rank(torch.from_numpy(out[k])).numpy()
    out["init_qk"], out["init_vo"] = init_qk.numpy(), init_vo.numpy()
    out["stable_rank_init_qk"] = spectra.stable_rank(init_qk).numpy()
    out["stable_rank_init_vo"] = spectra.stable_rank(init_vo).numpy()
    return out


# --------------------------------------------------------------------------- runs with results reuse


def load_data(settings: ViTSettings, dataset: str) -> tuple[data.ImageData, data.ImageData]:
    """The train and test splits ``settings`` asks for (subsets stratified by class)."""
    kw = dict(seed=settings.data_seed, image_size=settings.image_size)
    train_data = data.load_split(dataset, "train", subset=settings.train_subset or None, **kw)
    test_data = data.load_split(dataset, "test", subset=settings.test_subset or None, **kw)
    return train_data, test_data


def run(settings: ViTSettings, dataset: str, init_scale: float, seed: int, *, root: Path | None = None,
        progress: bool = True) -> results.Result:
    """The result of one run: reused from disk when a matching one exists, else trained (resuming if killed)."""
    config = run_config(settings, dataset, init_scale, seed)
    cfg = config.as_dict()
    found = results.find(config.name, cfg, None if root is None else [Path(root)])
    if found is not None:
        return found
    folder = results.run_dir(config.name, cfg, root)
    results.check_folder(folder, cfg)
    train_data, test_data = load_data(settings, dataset)
    device = resolve_device(settings.device)
    arrays, info = train(config, folder, train_data, test_data, device=device,
                         checkpoint_every=settings.checkpoint_every, eval_batch_size=settings.eval_batch_size,
                         progress=progress)
    info["data"] = {"train": train_data.description, "test": test_data.description}
    return results.save(folder, cfg, arrays, wall_s=info["train_wall_s"], device=_device_name(device), extra=info)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({torch.get_num_threads()} threads)"
