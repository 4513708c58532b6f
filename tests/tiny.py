"""A tiny ViT run on synthetic images, shared by the training tests (unit tests only: no real data needed)."""

from __future__ import annotations

from pathlib import Path

import torch

from rankbook.data.images import ImageData
from rankbook.settings.vit import ViTSettings
from rankbook.training import loop, vit
from rankbook.training.options import FitOptions

SETTINGS = ViTSettings(
    image_size=8,
    patch_size=4,
    d_model=8,
    depth=2,
    heads=2,
    d_head=4,
    mlp_dim=8,
    epochs=3,
    warmup_epochs=1,
    batch_size=8,
    lr=3e-3,
    augment="crop_flip",
    track_per_decade=3,
    checkpoint_every=3,
    eval_batch_size=5,
    device="cpu",
)
INIT_SCALE, SEED = 0.5, 1


def synthetic(n: int, seed: int) -> ImageData:
    """Real-shaped fake images: uint8 [n, 3, 8, 8], 3 classes with a class-dependent tint."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = torch.randint(0, 150, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    images[:, 0] += (50 * labels).to(torch.uint8).view(-1, 1, 1)
    return ImageData(images, labels, ["a", "b", "c"], "synthetic")


TRAIN, TEST = synthetic(36, 0), synthetic(12, 1)


def task(init_scale: float = INIT_SCALE, **overrides) -> vit.ViTTask:
    return vit.ViTTask(SETTINGS.replace(**overrides), "cifar10", init_scale, SEED, data=(TRAIN, TEST))


def train(
    root, options: FitOptions = FitOptions(), on_step=None, device: str = "cpu", **overrides
) -> tuple[dict, dict]:
    """Train (or reuse) the tiny run under ``root``: (arrays, manifest); ({}, {}) on ranks other than 0."""
    result = loop.fit(
        task(**overrides),
        root=root,
        device=device,
        options=options,
        checkpoint_every=SETTINGS.checkpoint_every,
        track_per_decade=SETTINGS.track_per_decade,
        progress=False,
        on_step=on_step,
    )
    return (result.arrays, result.manifest) if result is not None else ({}, {})


def checkpoint_in(root) -> Path:
    """The checkpoint of the one run under ``root``."""
    (found,) = Path(root).glob("*/checkpoint.pt")
    return found
