"""Settings of the vision-transformer chapters (04, 05, and the ViT half of 07) per profile.

``paper`` is the paper's CIFAR setup (section 5, appendix B): a ViT of depth 6,
width 512, 8 heads of dimension 128, MLP 512, patch 4, Adam (no weight decay)
with base lr 1e-4, a 15-epoch linear warmup then cosine decay, batch 512, 500
epochs, default initialization.

The init-scale sweep of chapter 05 (the paper's Figs. 3-4) multiplies "the
initial values of all layers" except the token mapper. Whether "all layers"
includes the LayerNorm gains is not said; ``scale_norms`` chooses. Scaling the
gains too makes every residual branch shrink as s³ and the W_Q/W_K gradients
roughly as s⁸, so at s = 0.01 nothing trains (chance accuracy); with the gains
left at 1 (the default here) s = 0.01 and 0.03 train. Chapter 05 explains both.

Departures, each said in the chapters' prose:

* ``fast`` (CI, 2 CPU cores, minutes): width 64, 4 heads of 16, MLP 128 (the
  paper: 512, 8 × 128, 512) so a step costs milliseconds; 5 epochs of the full
  50,000-image training split, so the stable rank has the ~2,000 steps it needs
  to rise after Adam's first-step transient (measured: 390 steps on 5,000 images
  end at the curve's minimum); lr 1e-3 (10×), batch 128 and a 1-epoch warmup,
  because 5 epochs of the paper's lr barely move the weights. Chapter 05's sweep
  uses 5,000 images for 10 epochs per scale (four scales must fit CI); the
  reference sweep is the one that shows the claim.
* ``reference`` (CPU-hours; stored in ``results/``): 8 heads per layer as in the
  paper, width 128, d_head 16, MLP 128, full split, 20 epochs, 3 seeds at the
  default scale and the sweep at seeds 0, 1, 2 (``sweep_seeds``); lr 1e-3, batch 128, 2-epoch warmup for
  the same reason as ``fast``.
* ``paper``: bf16 autocast on CUDA (``precision="auto"``) and ``torch.compile``
  for speed (the paper states neither; fp32 elsewhere); no augmentation (the
  paper names none, and lists "no weight decay or dropout").
"""

from __future__ import annotations

import dataclasses

from rankbook.settings.profiles import Settings, param


@dataclasses.dataclass(frozen=True)
class ViTSettings(Settings):
    datasets: tuple[str, ...] = param(
        ("cifar10",), choices=("cifar10", "cifar100", "imagenet"), help="data sets the chapters run on"
    )
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
    augment: str = param(
        "none",
        choices=("none", "crop_flip"),
        help="training augmentation: none (the paper names none) or random crop + flip",
    )
    init_scale: float = param(1.0, gt=0, help="init scale of chapter 04's run (1 = default init)")
    init_scales: tuple[float, ...] = param(
        (1.0, 0.1, 0.03, 0.01), gt=0, help="init scales swept in chapter 05"
    )
    scale_norms: bool = param(
        False, help="init scale also multiplies the LayerNorm gains (see the docstring)"
    )
    sweep_train_subset: int = param(
        0, ge=0, help="chapter 05's training images per scale; 0 = as train_subset"
    )
    sweep_epochs: int = param(0, ge=0, help="chapter 05's epochs per scale; 0 = as epochs")
    seeds: tuple[int, ...] = param(
        (0, 1, 2), ge=0, help="training seeds of chapter 04 (mean ± std over seeds)"
    )
    sweep_seeds: tuple[int, ...] = param(
        (0,), ge=0, help="training seeds of chapter 05's init-scale sweep (tests pool heads × seeds)"
    )
    track_per_decade: int = param(6, ge=1, help="log-spaced tracking points per decade of steps")
    checkpoint_every: int = param(2000, ge=1, help="steps between checkpoints")
    eval_batch_size: int = param(1000, ge=1, help="batch size for test evaluation")
    precision: str = param(
        "fp32",
        choices=("fp32", "bf16", "auto"),
        help="training arithmetic: fp32, bf16 autocast, or auto (bf16 on CUDA, else fp32)",
    )
    compile: bool = param(False, help="torch.compile the model for training (GPU; slow to start on CPU)")
    device: str = param("auto", choices=("auto", "cpu", "cuda", "mps"), help="auto: cuda when available")


PROFILES = {
    "paper": ViTSettings(datasets=("cifar10", "cifar100"), precision="auto", compile=True),
    "reference": ViTSettings(
        d_model=128,
        heads=8,
        d_head=16,
        mlp_dim=128,  # 8 heads as the paper, narrower
        epochs=20,
        warmup_epochs=2,
        batch_size=128,
        lr=1e-3,  # 20 epochs: see docstring
        sweep_seeds=(0, 1, 2),  # 3 seeds per init scale: chapter 05's tests need them
        checkpoint_every=500,
    ),
    "fast": ViTSettings(
        test_subset=2000,  # full training split; 2,000 test images keep evaluation cheap
        d_model=64,
        heads=4,
        d_head=16,
        mlp_dim=128,  # milliseconds per step on 2 cores
        epochs=5,
        warmup_epochs=1,
        batch_size=128,
        lr=1e-3,  # ~1,950 steps: the rise shows
        sweep_train_subset=5000,
        sweep_epochs=10,  # four scales must fit CI
        seeds=(0,),
        sweep_seeds=(0,),  # one sweep of four scales must fit CI
        checkpoint_every=200,
        eval_batch_size=500,
    ),
}
