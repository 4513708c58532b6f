"""The paper's image classification as a task of the training loop, and :func:`run`, what the chapters call.

A run is fixed by the ViT settings of a profile plus (data set, init scale,
seed); its results key hashes exactly the values that shape the run (see
:meth:`ViTTask.config_dict`), including the data's fingerprint, so a stored
run is found without loading any data, and never reused for other data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rankbook.book.benchmarking import vit_train_flops_per_image
from rankbook.data import images
from rankbook.models.vit import ViT, ViTConfig
from rankbook.settings.vit import ViTSettings
from rankbook.store import results
from rankbook.training import loop
from rankbook.training.options import FitOptions
from rankbook.training.schedule import steps_per_epoch

#: the settings that shape a run's results (with data set, init scale and seed)
RUN_FIELDS = (
    "train_subset",
    "test_subset",
    "data_seed",
    "image_size",
    "patch_size",
    "d_model",
    "depth",
    "heads",
    "d_head",
    "mlp_dim",
    "epochs",
    "warmup_epochs",
    "batch_size",
    "lr",
    "augment",
    "scale_norms",
)


class ViTTask:
    """A :class:`~rankbook.models.vit.ViT` on uint8 images held on the device.

    Data order draws from a generator seeded by (seed, epoch), augmentation
    from one seeded by (seed, step), so a batch is a function of the step.
    Incomplete last batches of an epoch are dropped. ``sweep=True`` is chapter
    05's smaller run (``sweep_train_subset`` images for ``sweep_epochs``).
    """

    def __init__(
        self,
        settings: ViTSettings,
        dataset: str,
        init_scale: float,
        seed: int,
        *,
        sweep: bool = False,
        data: tuple[images.ImageData, images.ImageData] | None = None,
        download: bool = True,
    ):
        if sweep:
            settings = settings.replace(
                train_subset=settings.sweep_train_subset or settings.train_subset,
                epochs=settings.sweep_epochs or settings.epochs,
            )
        self.settings, self.dataset = settings, dataset
        self.init_scale, self.seed = float(init_scale), int(seed)
        self.name = f"vit-{dataset}-scale{self.init_scale:g}-seed{self.seed}"
        self._data, self.download = data, download
        # in-memory splits (tests) are keyed by their contents, a data set on disk by its source's fingerprint
        self._fingerprint = _contents_fingerprint(data) if data is not None else None
        self._device: torch.device | None = None
        self._order: tuple[int, torch.Tensor] | None = None

    def config_dict(self) -> dict[str, Any]:
        s = self.settings
        if self._fingerprint is None:  # once per task: fit looks the key up for several devices
            self._fingerprint = images.fingerprint(self.dataset, download=self.download)
        data = self._fingerprint
        return {
            "kind": "vit",
            "dataset": self.dataset,
            "data": data,
            **{k: getattr(s, k) for k in RUN_FIELDS},
            "init_scale": self.init_scale,
            "seed": self.seed,
        }

    def data(self) -> tuple[images.ImageData, images.ImageData]:
        """The train and test splits (subsets stratified by class), loaded once."""
        if self._data is None:
            s = self.settings
            kw = dict(seed=s.data_seed, image_size=s.image_size)
            self._data = (
                images.load_split(self.dataset, "train", subset=s.train_subset or None, **kw),
                images.load_split(self.dataset, "test", subset=s.test_subset or None, **kw),
            )
        return self._data

    def model_config(self) -> ViTConfig:
        s = self.settings
        return ViTConfig(
            image_size=s.image_size,
            patch_size=s.patch_size,
            num_classes=len(self.data()[0].classes),
            d_model=s.d_model,
            depth=s.depth,
            heads=s.heads,
            d_head=s.d_head,
            mlp_dim=s.mlp_dim,
            init_scale=self.init_scale,
            scale_norms=s.scale_norms,
        )

    def build_model(self) -> torch.nn.Module:
        torch.manual_seed(self.seed)
        return ViT(self.model_config())

    def steps_per_epoch(self) -> int:
        return steps_per_epoch(len(self.data()[0]), self.settings.batch_size)

    def total_steps(self) -> int:
        return self.steps_per_epoch() * self.settings.epochs

    def warmup_steps(self) -> int:
        return self.steps_per_epoch() * self.settings.warmup_epochs

    def base_lr(self) -> float:
        return self.settings.lr

    def train_flops(self) -> float:
        return vit_train_flops_per_image(self.model_config()) * self.settings.batch_size * self.total_steps()

    def _on(self, device: torch.device) -> None:
        """Move both splits to ``device`` once; normalization statistics from the training images."""
        if self._device == device:
            return
        train, test = self.data()
        self._device = device
        self.train_x, self.train_y = train.images.to(device), train.labels.to(device)
        self.test_x, self.test_y = test.images.to(device), test.labels.to(device)
        self.mean, self.std = images.channel_stats(self.train_x)
        self.aug_gen = torch.Generator(device=device)
        self._order = None

    def batch_indices(self, step: int) -> torch.Tensor:
        """Indices of update ``step``'s images: an epoch-seeded permutation (kept on the device), sliced."""
        epoch, i = divmod(step, self.steps_per_epoch())
        if self._order is None or self._order[0] != epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(len(self.train_y), generator=gen)
            self._order = (epoch, order.to(self.train_y.device))  # once per epoch, not once per step
        b = self.settings.batch_size
        return self._order[1][i * b : (i + 1) * b]

    def train_batch(self, step: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        self._on(device)
        idx = self.batch_indices(step)
        batch = self.train_x[idx]
        augment = images.AUGMENTATIONS[self.settings.augment]
        if augment is not None:
            batch = augment(batch, self.aug_gen.manual_seed(self.seed * 1_000_003 + step + 2**40))
        return batch, self.train_y[idx]

    def loss(self, model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(images.normalize(inputs, self.mean, self.std)), targets)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        """Mean cross-entropy and accuracy on the test split."""
        self._on(device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        b = self.settings.eval_batch_size
        for i in range(0, len(self.test_y), b):
            logits = model(images.normalize(self.test_x[i : i + b], self.mean, self.std)).float()
            y = self.test_y[i : i + b]
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            correct += (logits.argmax(-1) == y).sum()
        n = len(self.test_y)
        return {"test_loss": float(loss_sum) / n, "test_acc": int(correct) / n}

    def describe(self) -> dict[str, Any]:
        train, test = self.data()
        return {
            "train_images": len(train),
            "test_images": len(test),
            "classes": len(train.classes),
            "data": {"train": train.description, "test": test.description},
        }


def _contents_fingerprint(splits: tuple[images.ImageData, ...]) -> str:
    digest = hashlib.sha256()
    for split in splits:
        digest.update(split.images.numpy().tobytes())
        digest.update(split.labels.numpy().tobytes())
        digest.update("\0".join(split.classes).encode())
    return f"sha256:{digest.hexdigest()[:16]}"


def task(
    settings: ViTSettings, dataset: str, init_scale: float, seed: int, *, sweep: bool = False
) -> ViTTask:
    """The task of one run (for analyses that need its model, batches or loss)."""
    return ViTTask(settings, dataset, init_scale, seed, sweep=sweep)


def require_data(settings: ViTSettings, datasets: tuple[str, ...] | None = None) -> None:
    """Fail before any training when a data set is missing (all named in one message): ``datasets``, by
    default every one the profile lists (the trainer); a chapter's run asks only for its own (B83: chapter
    04 under ``paper`` asked for CIFAR-100, which it does not use)."""
    missing, names = [], tuple(datasets or settings.datasets)
    for name in names:
        try:
            images.fingerprint(name)
        except images.DataNotFoundError as exc:
            missing.append(str(exc))
    if missing:
        raise images.DataNotFoundError("\n\n".join(missing) + _cpu_note(settings, names))


def cpu_hours(settings: ViTSettings, dataset: str, *, sweep: bool = False) -> float | None:
    """The CPU training time of one run estimated without its data (the known split size), as
    :func:`loop.fit` refuses it; None for a data set of unknown size."""
    from rankbook.data import sources

    layout, spec = sources.LAYOUTS_KNOWN.get(dataset), sources.SPECS.get(dataset)
    if layout is None or spec is None:
        return None
    train = settings.sweep_train_subset or settings.train_subset if sweep else settings.train_subset
    epochs = settings.sweep_epochs or settings.epochs if sweep else settings.epochs
    count = train or layout.per_class["train"] * layout.num_classes
    config = ViTConfig(image_size=settings.image_size, patch_size=settings.patch_size,
                       num_classes=spec.num_classes, d_model=settings.d_model, depth=settings.depth,
                       heads=settings.heads, d_head=settings.d_head, mlp_dim=settings.mlp_dim)
    steps = count // settings.batch_size * epochs
    return vit_train_flops_per_image(config) * settings.batch_size * steps / loop.CPU_FLOPS / 3600


def _cpu_note(settings: ViTSettings, names: tuple[str, ...]) -> str:
    """What a CPU would do with the run once the data is there: refuse it (said with the missing data)."""
    from rankbook.store import paths
    from rankbook.training.options import resolve_device

    if resolve_device(settings.device).type != "cpu" or paths.env_flag("RANKBOOK_ALLOW_SLOW"):
        return ""
    hours = max((h for h in (cpu_hours(settings, n) for n in names) if h is not None), default=0.0)
    if hours <= loop.SLOW_HOURS:
        return ""
    return (f"\n\nNote: with the data, training would still be refused on this CPU (about {hours:,.0f} h "
            f"estimated from its FLOPs at {loop.CPU_FLOPS / 1e9:.0f} GFLOP/s): run this profile on a GPU, or "
            f"set RANKBOOK_ALLOW_SLOW=1. Stored runs are found by a key that includes the data's "
            f"fingerprint, so showing them needs the data too.")


def run(
    settings: ViTSettings,
    dataset: str,
    init_scale: float,
    seed: int,
    *,
    sweep: bool = False,
    train_missing: bool = True,
    root: Path | None = None,
    progress: bool = True,
) -> results.Result | None:
    """One ViT run's result: stored, else trained (resuming if killed).

    ``train_missing=False`` only looks: None when not stored; nothing is downloaded, and a data set that is
    not here means not stored.
    """
    the_task = ViTTask(settings, dataset, init_scale, seed, sweep=sweep, download=train_missing)
    if train_missing:
        require_data(settings, (dataset,))
    else:
        try:
            the_task.config_dict()  # the data's fingerprint: raises here when the data set is missing
        except images.DataNotFoundError:
            return None
    return loop.fit(
        the_task,
        root=root,
        device=settings.device,
        options=FitOptions(precision=settings.precision, compile=settings.compile),
        checkpoint_every=settings.checkpoint_every,
        track_per_decade=settings.track_per_decade,
        progress=progress,
        train_missing=train_missing,
    )
