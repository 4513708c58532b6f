"""Settings of the language-model chapters (06, and the LM half of 07) per profile.

``paper`` is GPT-2 small (12 layers, 12 heads, width 768, d_head 64, context
1024, tied embeddings) trained with Adam on WikiText-103 with GPT-2's BPE;
the number of steps, batch and learning rate are our choices (a standard
GPT-2 small recipe, shortened), since the paper trains no language model.

The offline copy of WikiText-2 has no train split, so ``fast`` and
``reference`` **train on the WikiText-2 validation split and evaluate on its
test split**, with byte-level tokens (vocabulary 256).

* ``fast`` (CI, 2 CPU cores): 4 layers × 4 heads of 16, width 64, context
  128, batch 16, **1,500 steps** (100 warmup) at lr 3e-3. Sized by measuring
  the attention ablation (attention reset to its initialization, the rest
  trained; ``rankbook.analysis.truncation.attention_ablation``): after 300
  steps attention was worth 3% of the loss drop (the model stops at a
  bigram-like loss), after 1,000 steps 17%, after 1,500 steps 26% (0.97 of
  3.8 nats), with the stable rank rising after the warmup in 3 of 4 layers
  (ΔW_K W_Q^T) and 4 of 4 (ΔW_V W_O^T). About 0.075 s per step on one core:
  2-3 minutes per run; chapter 07 trains two more runs with LoRA adapters
  (ranks ``lora_ranks``).
* ``reference`` (CPU, run in the background, stored in ``results/``): 8 heads
  of 16 per layer (width 128, MLP 512), 4 layers, context 128, batch 16,
  6,000 steps (300 warmup) at lr 2e-3: about 0.23 s per step on one core,
  under an hour.
"""

from __future__ import annotations

import dataclasses

from rankbook.data.text import CORPORA, SPLIT_FILES, TOKENIZERS
from rankbook.settings.profiles import ProfileError, Settings, param


@dataclasses.dataclass(frozen=True)
class LMSettings(Settings):
    corpus: str = param(
        "wikitext-103", choices=CORPORA, help="text corpus (wikitext-2: offline valid/test only)"
    )
    train_split: str = param("train", choices=("train", "valid", "test"), help="split the model trains on")
    eval_split: str = param(
        "valid", choices=("train", "valid", "test"), help="split the loss is evaluated on"
    )
    tokenizer: str = param(
        "gpt2", choices=TOKENIZERS, help="bytes (vocab 256) or GPT-2 BPE (falls back to bytes)"
    )
    context: int = param(1024, ge=2, help="tokens per training window (and the model's context)")
    d_model: int = param(768, ge=1, help="embedding width")
    depth: int = param(12, ge=1, help="transformer blocks")
    heads: int = param(12, ge=1, help="attention heads per block")
    d_head: int = param(64, ge=1, help="head dimension (W_Q etc. are d_model × d_head)")
    mlp_dim: int = param(3072, ge=1, help="MLP hidden width")
    tied: bool = param(True, help="read-out tied to the token embedding (GPT-2)")
    steps: int = param(20000, ge=1, help="training steps")
    warmup_steps: int = param(1000, ge=0, help="linear warmup steps before the cosine decay")
    batch_size: int = param(32, ge=1, help="windows per step")
    lr: float = param(6e-4, gt=0, help="base learning rate of Adam")
    eval_windows: int = param(0, ge=0, help="evaluation windows of `context` tokens (0 = the whole split)")
    seeds: tuple[int, ...] = param((0,), ge=0, help="training seeds")
    track_per_decade: int = param(6, ge=1, help="log-spaced tracking points per decade of steps")
    checkpoint_every: int = param(1000, ge=1, help="steps between checkpoints")
    eval_batch_size: int = param(16, ge=1, help="windows per evaluation batch")
    lora_ranks: tuple[int, ...] = param(
        (1, 4, 16, 64), ge=1, help="ranks of the LoRA adapters trained in chapter 07"
    )
    null_seeds: int = param(2, ge=1, help="random rank-r updates per rank (chapter 07's null)")
    layers_shown: tuple[int, ...] = param((1, 6, 12), ge=1, help="layers (from 1) drawn in chapter 06")
    precision: str = param("fp32", choices=("fp32", "bf16", "auto"),
                           help="training arithmetic: fp32, bf16 autocast, or auto (bf16 on CUDA, else fp32)")
    compile: bool = param(False, help="torch.compile the model for training (GPU; slow to start on CPU)")
    device: str = param("auto", choices=("auto", "cpu", "cuda", "mps"), help="auto: cuda when available")

    def __post_init__(self) -> None:
        super().__post_init__()
        splits = SPLIT_FILES[self.corpus]
        for name in ("train_split", "eval_split"):
            if getattr(self, name) not in splits:
                raise ProfileError(
                    f"{name}={getattr(self, name)!r}: {self.corpus} has only the splits "
                    f"{', '.join(splits)} here"
                )
        if self.warmup_steps >= self.steps:
            raise ProfileError(f"warmup_steps={self.warmup_steps} must be below steps={self.steps}")
        too_deep = [layer for layer in self.layers_shown if layer > self.depth]
        if too_deep:
            raise ProfileError(
                f"layers_shown={self.layers_shown}: layer(s) {too_deep} exceed depth={self.depth}"
            )


_FAST = LMSettings(
    corpus="wikitext-2",
    train_split="valid",
    eval_split="test",
    tokenizer="bytes",
    context=128,
    d_model=64,
    depth=4,
    heads=4,
    d_head=16,
    mlp_dim=256,
    steps=1500,
    warmup_steps=100,  # until attention matters: see the docstring
    batch_size=16,
    lr=3e-3,
    eval_windows=64,
    checkpoint_every=250,
    eval_batch_size=32,
    lora_ranks=(1, 4),
    layers_shown=(1, 2, 4),
)

PROFILES = {
    "paper": LMSettings(precision="auto", compile=True),  # bf16 + compile on a GPU: minutes, not hours
    "fast": _FAST,
    # the fast model with 8 heads per layer, wider and trained 4x longer (see the docstring)
    "reference": _FAST.replace(
        d_model=128,
        heads=8,
        mlp_dim=512,
        steps=6000,
        warmup_steps=300,
        lr=2e-3,
        eval_windows=256,
        checkpoint_every=500,
        lora_ranks=(1, 4, 16),
    ),
}
