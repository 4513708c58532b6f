"""Settings of the vision-transformer chapters (04, 05) per profile.

``paper`` is the paper's CIFAR setup (section 5, appendix B). The paper does
not list its init-scale values; we sweep 1 (default), 0.3 and 0.1. At 0.01,
with every layer after the token mapper scaled (LayerNorm gains included),
the gradients of W_Q and W_K start near 1e-19, far below Adam's eps (1e-8),
so Adam's steps on them are below float32 resolution and the fast run stayed
at chance level (loss ln 10) for all 390 steps; pass ``init_scales`` to try it.

``fast`` keeps the paper's depth (6, so layers 1/3/5 exist) and patch size
but narrows the model (width 64, 4 heads of dimension 16, MLP 128) and trains
on a 5,000-image stratified subset of the real CIFAR-10 for 10 epochs, so
that both chapters run in minutes on two CPU cores. With so few steps it
uses a 10× higher learning rate (1e-3) and a 1-epoch warmup, and no
augmentation; accuracies are therefore far below the paper's.

``paper`` trains in bf16 autocast on CUDA (``precision="auto"``; fp32
elsewhere) with fused Adam; ``fast`` stays in fp32, so its results match the
plain loop's bit for bit. Runs made in bf16 are stored under their own
results key.
"""
from __future__ import annotations

import dataclasses

from rankbook.settings.profiles import Settings, param


@dataclasses.dataclass(frozen=True)
class ViTSettings(Settings):
    datasets: tuple[str, ...] = param(("cifar10",), choices=("cifar10", "cifar100", "imagenet"),
                                      help="data sets the chapters run on")
    train_subset: int = param(0, ge=0, help="training images (stratified by class); 0 = the whole split")
    test_subset: int = param(0, ge=0, help="test images (stratified by class); 0 = the whole split")
    data_seed: int = param(0, ge=0, help="seed of the subset choice")
    image_size: int = param(32, ge=1, help="image side in pixels")
    patch_size: int = param(4, ge=1, help="patch side in pixels")
    d_model: int = param(512, ge=1, help="embedding width")
    depth: int = param(6, ge=1, help="transformer blocks")
    heads: int = param(8, ge=1, help="attention heads per block")
    d_head: int = param(128, ge=1, help="head dimension (W_Q etc. are d_model × d_head)")
    mlp_dim: int = param(512, ge=1, help="MLP hidden width")
    epochs: int = param(500, ge=1, help="training epochs")
    warmup_epochs: int = param(15, ge=0, help="linear warmup epochs before the cosine decay")
    batch_size: int = param(512, ge=1, help="batch size")
    lr: float = param(1e-4, gt=0, help="base learning rate of Adam")
    augment: str = param("crop_flip", choices=("none", "crop_flip"),
                         help="training augmentation: random crop (4-px padding) + horizontal flip, or none")
    init_scale: float = param(1.0, gt=0, help="init scale of chapter 04's run (1 = default init)")
    init_scales: tuple[float, ...] = param((1.0, 0.3, 0.1), gt=0, help="init scales swept in chapter 05")
    seeds: tuple[int, ...] = param((0, 1, 2), ge=0, help="training seeds (mean ± std over seeds)")
    track_per_decade: int = param(6, ge=1, help="log-spaced tracking points per decade of iterations")
    checkpoint_every: int = param(2000, ge=1, help="iterations between checkpoints")
    eval_batch_size: int = param(1000, ge=1, help="batch size for test evaluation")
    precision: str = param("fp32", choices=("fp32", "bf16", "auto"),
                           help="training arithmetic: fp32, bf16 autocast, or auto (bf16 on CUDA, else fp32)")
    compile: bool = param(False, help="torch.compile the model for training (GPU; slow to start on CPU)")
    device: str = param("auto", choices=("auto", "cpu", "cuda", "mps"), help="auto: cuda when available")


PROFILES = {
    "paper": ViTSettings(datasets=("cifar10", "cifar100"), precision="auto"),
    "fast": ViTSettings(train_subset=5000, test_subset=1000, d_model=64, heads=4, d_head=16, mlp_dim=128,
                        epochs=10, warmup_epochs=1, batch_size=128, lr=1e-3, augment="none",
                        seeds=(0,), checkpoint_every=100, eval_batch_size=500),
}
