"""Chapter 09's fine-tuning experiment: pretrain the book's ViT on some CIFAR classes, fine-tune on all.

The model has chapter 04's shape (the profile's ViT settings). Pretraining sees only the images of the first
``pretrain_classes`` classes (the classifier has all ten outputs; the others are never the target), then
fine-tuning trains every parameter on all classes with a smaller learning rate. Adam (no weight decay), a
linear warmup then a cosine decay to zero (:func:`rankbook.training.schedule.lr_at`), no augmentation,
batches drawn by a seeded permutation. The three state dicts (initialization, pretrained, fine-tuned) are
written as ``.safetensors`` and ``.pt`` files, so ``python -m rankbook inspect`` reads them with
``--arch`` (:func:`arch`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rankbook.data import images
from rankbook.models.vit import ViT, ViTConfig
from rankbook.settings.profiles import Settings, param
from rankbook.training.schedule import lr_at


@dataclasses.dataclass(frozen=True)
class FinetuneSettings(Settings):
    """Chapter 09's fine-tuning experiment (beyond the paper, which trains from scratch only)."""

    pretrain_steps: int = param(2000, ge=1, help="Adam steps on the first pretrain_classes classes")
    finetune_steps: int = param(1000, ge=1, help="Adam steps on all classes, from the pretrained weights")
    pretrain_classes: int = param(5, ge=1, le=9, help="classes 0..n-1 seen in pretraining")
    finetune_lr_factor: float = param(0.3, gt=0, le=10, help="fine-tuning lr = the ViT lr × this")
    train_images: int = param(50000, ge=1, help="training images (stratified subset)")
    test_images: int = param(2000, ge=1, help="test images (stratified subset)")
    seed: int = param(0, ge=0, help="initialization and batch order")


PROFILES = {
    "paper": FinetuneSettings(),
    "reference": FinetuneSettings(pretrain_steps=1000, finetune_steps=500, train_images=10000),
    # 300 + 150 steps of the fast ViT: about 1.5 min on a quiet 2-core CI machine (0.2 s a step)
    "fast": FinetuneSettings(pretrain_steps=300, finetune_steps=150, train_images=5000),
}


def model_config(vit_settings, num_classes: int = 10) -> ViTConfig:
    s = vit_settings
    return ViTConfig(image_size=s.image_size, patch_size=s.patch_size, num_classes=num_classes,
                     d_model=s.d_model, depth=s.depth, heads=s.heads, d_head=s.d_head, mlp_dim=s.mlp_dim)


def arch(cfg: ViTConfig) -> str:
    """The ``--arch`` value naming ``cfg`` for ``python -m rankbook inspect``."""
    fields = ("image_size", "patch_size", "num_classes", "d_model", "depth", "heads", "d_head", "mlp_dim")
    return "rankbook-vit:" + ",".join(f"{f}={getattr(cfg, f)}" for f in fields)


def _train(model, x, y, steps, lr, batch, seed, mean, std) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    order, at = torch.randperm(len(y), generator=gen), 0
    warmup = max(1, steps // 10)
    started = time.perf_counter()
    model.train()
    for step in range(steps):
        if at + batch > len(y):
            order, at = torch.randperm(len(y), generator=gen), 0
        idx = order[at:at + batch]
        at += batch
        for group in opt.param_groups:
            group["lr"] = lr_at(step, lr, warmup, steps)
        loss = F.cross_entropy(model(images.normalize(x[idx], mean, std)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return time.perf_counter() - started


@torch.no_grad()
def accuracy(model, x, y, mean, std, batch: int = 500) -> float:
    correct = sum(int((model(images.normalize(x[i:i + batch], mean, std)).argmax(-1) == y[i:i + batch]).sum())
                  for i in range(0, len(y), batch))
    return correct / len(y)


def _save(model, folder: Path, name: str) -> dict[str, str]:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / f"{name}.safetensors"))
    torch.save(state, folder / f"{name}.pt")
    return {"safetensors": str(folder / f"{name}.safetensors"), "pt": str(folder / f"{name}.pt")}


def run(vit_settings, settings: FinetuneSettings, folder: Path, dataset: str = "cifar10") -> dict[str, Any]:
    """Pretrain, fine-tune, save; returns the files, accuracies and wall times (trained every call)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kw = dict(seed=vit_settings.data_seed, image_size=vit_settings.image_size)
    train = images.load_split(dataset, "train", subset=settings.train_images, **kw)
    test = images.load_split(dataset, "test", subset=settings.test_images, **kw)
    y, ty = train.labels, test.labels
    mean, std = images.channel_stats(train.images)
    cfg = model_config(vit_settings, len(train.classes))
    torch.manual_seed(settings.seed)
    model = ViT(cfg)
    files = {"init": _save(model, folder, "init")}
    first = y < settings.pretrain_classes
    t_pre = _train(model, train.images[first], y[first], settings.pretrain_steps, vit_settings.lr,
                   vit_settings.batch_size, settings.seed, mean, std)
    files["pretrained"] = _save(model, folder, "pretrained")
    test_first = ty < settings.pretrain_classes
    acc_pre = accuracy(model, test.images[test_first], ty[test_first], mean, std)
    acc_pre_all = accuracy(model, test.images, ty, mean, std)
    lr_ft = vit_settings.lr * settings.finetune_lr_factor
    t_ft = _train(model, train.images, y, settings.finetune_steps, lr_ft, vit_settings.batch_size,
                  settings.seed + 1, mean, std)
    files["finetuned"] = _save(model, folder, "finetuned")
    return {"files": files, "arch": arch(cfg), "config": cfg,
            "acc_pretrained_on_its_classes": acc_pre, "acc_pretrained_all": acc_pre_all,
            "acc_finetuned_all": accuracy(model, test.images, ty, mean, std),
            "acc_finetuned_first": accuracy(model, test.images[test_first], ty[test_first], mean, std),
            "pretrain_s": t_pre, "finetune_s": t_ft, "train_images": len(y),
            "pretrain_images": int(first.sum()), "classes": train.classes}
