"""Settings of the language-model chapters (06, and the LM half of 07) per profile.

Every profile **trains on WikiText-2's train split, selects on its validation
split** (the tracked ``eval_loss``) **and reports on its test split** (the
perplexities of the whole split, the attention ablation and the rank-r sweep,
computed from the final weights at the end of training and stored with the
run: :mod:`rankbook.training.lm`). The WikiText-2 here is version 1 as
tokenized by its authors (``<unk>`` for rare words), the files of the
word-level benchmarks.

Measured numbers (losses, ablation shares, stable ranks) are the runs', shown
by the chapters; none is written here.

* ``paper``: GPT-2 small (12 layers, 12 heads of 64, width 768, MLP 3072,
  context 1024, tied embeddings) with GPT-2's BPE, bf16 autocast and
  ``torch.compile``, for a GPU. arXiv v1 trains no language model, so the
  data, steps, batch and learning rate are ours: a standard GPT-2 small recipe
  (Adam at 6e-4, warmup then cosine) shortened to 1,500 steps of 32 × 1,024
  tokens (49 M tokens, about 20 passes over WikiText-2's 2.4 M BPE tokens: it
  will overfit), sized for about 5 minutes of one H200 (GPT-2 small trains at
  roughly 2e5 tokens/s on one such GPU with bf16 and compile). WikiText-103
  is not available offline, hence WikiText-2.
* ``fast`` (CI, 2 CPU cores, run live): **byte tokens** (vocabulary 256),
  4 layers × 4 heads of 16, width 64, context 128, batch 16, 1,500 steps
  (100 warmup) at lr 3e-3. Byte tokens, not the BPE, because the 50,257-way
  read-out costs the fast model far more than the model itself: measured on
  this machine (2 shared cores, one thread, same load), a training step of
  this model took 0.29 s with bytes and 7.7 s with the BPE (27×; by FLOPs the
  read-out is 3.2 M of 3.4 M multiply-adds per token), so the BPE would turn
  the chapter's 1,500 steps from minutes into about an hour per run, and
  chapter 07 trains three. 1,500 steps because shorter runs stopped at a
  bigram-like loss where attention hardly mattered; the chapter measures the
  share attention is worth (the attention ablation).
* ``reference`` (CPU, run in the background, stored in ``results/``): a
  GPT-2-shaped model with **GPT-2's BPE**: 6 layers × 8 heads of 16, width 128,
  MLP 512, context 128, batch 8, 6,000 steps (300 warmup) at lr 2e-3: 6.1 M
  tokens, about 2.5 passes over the train split. Sized by FLOPs and a measured
  step: 6 × (1.2 M block + 6.4 M read-out parameters) × 1,024 tokens ≈ 47
  GFLOP a step, about 1.6-1.8 s on one quiet core (a step measured at 8.6-10 s
  with the machine's 2 cores shared by about 10 busy processes), so the base
  run takes about 2.5-3 h of one core. Its two LoRA runs (ranks 1 and 8 of the
  fused rank 128) cost about as much each and are trained after it by the
  same command (``python -m rankbook.training --profile reference lm``).
"""

from __future__ import annotations

import dataclasses

from rankbook.data.text import CORPORA, SPLIT_FILES, TOKENIZERS
from rankbook.settings.profiles import ProfileError, Settings, param

SPLITS = ("train", "valid", "test")


@dataclasses.dataclass(frozen=True)
class LMSettings(Settings):
    corpus: str = param(
        "wikitext-2", choices=CORPORA, help="text corpus (wikitext-2: offline, v1 tokenized with <unk>)"
    )
    train_split: str = param("train", choices=SPLITS, help="split the model trains on")
    eval_split: str = param(
        "valid", choices=SPLITS, help="split tracked during training (selection): eval_loss"
    )
    test_split: str = param(
        "test", choices=SPLITS, help="split reported at the end: perplexities, ablation, rank sweep"
    )
    tokenizer: str = param(
        "gpt2", choices=TOKENIZERS, help="bytes (vocab 256) or gpt2 (GPT-2's BPE, 50,257; never falls back)"
    )
    context: int = param(1024, ge=2, help="tokens per training window (and the model's context)")
    d_model: int = param(768, ge=1, help="embedding width")
    depth: int = param(12, ge=1, help="transformer blocks")
    heads: int = param(12, ge=1, help="attention heads per block")
    d_head: int = param(64, ge=1, help="head dimension (W_Q etc. are d_model × d_head)")
    mlp_dim: int = param(3072, ge=1, help="MLP hidden width")
    tied: bool = param(True, help="read-out tied to the token embedding (GPT-2)")
    steps: int = param(1500, ge=1, help="training steps")
    warmup_steps: int = param(150, ge=0, help="linear warmup steps before the cosine decay")
    batch_size: int = param(32, ge=1, help="windows per step")
    lr: float = param(6e-4, gt=0, help="base learning rate of Adam")
    eval_windows: int = param(
        0, ge=0, help="windows of `context` tokens of the eval and test splits (0 = the whole split)"
    )
    seeds: tuple[int, ...] = param((0,), ge=0, help="training seeds")
    track_per_decade: int = param(6, ge=1, help="log-spaced tracking points per decade of steps")
    checkpoint_every: int = param(250, ge=1, help="steps between checkpoints")
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
        for name in ("train_split", "eval_split", "test_split"):
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
    tokenizer="bytes",  # an explicit choice: the BPE's read-out is too dear here (see the docstring)
    context=128,
    d_model=64,
    depth=4,
    heads=4,
    d_head=16,
    mlp_dim=256,
    steps=1500,
    warmup_steps=100,
    batch_size=16,
    lr=3e-3,
    eval_windows=64,
    checkpoint_every=250,
    eval_batch_size=32,
    lora_ranks=(1, 4),
    layers_shown=(1, 2, 4),
)

PROFILES = {
    # GPT-2 small; bf16 + compile on a GPU: minutes, not hours (see the docstring for the schedule)
    "paper": LMSettings(precision="auto", compile=True, eval_windows=0, lora_ranks=(1, 16, 64)),
    "fast": _FAST,
    # a GPT-2-shaped model with GPT-2's BPE, sized for about 3 h of one CPU core (see the docstring)
    "reference": _FAST.replace(
        tokenizer="gpt2",
        d_model=128,
        depth=6,
        heads=8,
        mlp_dim=512,
        batch_size=8,
        steps=6000,
        warmup_steps=300,
        lr=2e-3,
        eval_windows=64,
        eval_batch_size=16,
        checkpoint_every=250,
        lora_ranks=(1, 8),
        layers_shown=(1, 3, 6),
    ),
}
