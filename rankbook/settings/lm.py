"""Settings of the language-model chapters (06, and the LM half of 07) per profile.

``paper`` is GPT-2 small (12 layers, 12 heads, width 768, d_head 64, context
1024, tied embeddings) trained with Adam on WikiText-103 with GPT-2's BPE;
the number of steps, batch and learning rate are our choices (a standard
GPT-2 small recipe, shortened), since they are not the object of the study.

``fast`` trains a 4-layer, 4-head model of width 64 on byte-level tokens of
the WikiText-2 *validation* split for a few hundred steps and evaluates on
the WikiText-2 *test* split: the offline copy has no train split, and a few
hundred CPU steps take under a minute on two shared cores (chapter 07 trains
two more such runs with LoRA adapters, ranks `lora_ranks`).
"""
from __future__ import annotations

import dataclasses

from rankbook.settings.profiles import ProfileError, Settings, param
from rankbook.data.text import CORPORA, SPLIT_FILES, TOKENIZERS


@dataclasses.dataclass(frozen=True)
class LMSettings(Settings):
    corpus: str = param("wikitext-103", choices=CORPORA, help="text corpus (wikitext-2: offline valid/test only)")
    train_split: str = param("train", choices=("train", "valid", "test"), help="split the model trains on")
    eval_split: str = param("valid", choices=("train", "valid", "test"), help="split the loss is evaluated on")
    tokenizer: str = param("gpt2", choices=TOKENIZERS, help="bytes (vocab 256) or GPT-2 BPE (falls back to bytes)")
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
    lora_ranks: tuple[int, ...] = param((1, 4, 16, 64), ge=1, help="ranks of the LoRA adapters trained in chapter 07")
    layers_shown: tuple[int, ...] = param((1, 6, 12), ge=1, help="layers (from 1) drawn in chapter 06")
    device: str = param("auto", choices=("auto", "cpu", "cuda", "mps"), help="auto: cuda when available")

    def __post_init__(self) -> None:
        super().__post_init__()
        splits = SPLIT_FILES[self.corpus]
        for name in ("train_split", "eval_split"):
            if getattr(self, name) not in splits:
                raise ProfileError(f"{name}={getattr(self, name)!r}: {self.corpus} has only the splits "
                                   f"{', '.join(splits)} here")
        if self.warmup_steps >= self.steps:
            raise ProfileError(f"warmup_steps={self.warmup_steps} must be below steps={self.steps}")
        too_deep = [layer for layer in self.layers_shown if layer > self.depth]
        if too_deep:
            raise ProfileError(f"layers_shown={self.layers_shown}: layer(s) {too_deep} exceed depth={self.depth}")


PROFILES = {
    "paper": LMSettings(),
    "fast": LMSettings(corpus="wikitext-2", train_split="valid", eval_split="test", tokenizer="bytes", context=128,
                       d_model=64, depth=4, heads=4, d_head=16, mlp_dim=256, steps=300, warmup_steps=30,
                       batch_size=16, lr=3e-3, eval_windows=64, checkpoint_every=100, eval_batch_size=32,
                       lora_ranks=(1, 4), layers_shown=(1, 2, 4)),
}
PROFILES["reference"] = PROFILES["fast"]  # placeholder until the reference LM is sized
