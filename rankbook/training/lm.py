"""The language model as a task of the generic training loop (:mod:`rankbook.training.loop`).

:class:`LMTask` supplies a :class:`~rankbook.models.gpt.GPT`, batches of
``context + 1`` tokens drawn by (seed, step) from the training split
(:func:`rankbook.data.text.train_batch`), next-token cross-entropy, and the mean
loss on consecutive windows of the evaluation split (``eval_loss``, nats per
token). Everything else (Adam, warmup + cosine schedule, spectra tracker,
checkpoints, resume, results store) is the loop's, exactly as for the ViT.
Text is tokenized on first use, so a stored result is found without reading
any text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rankbook.data import text
from rankbook.models.adapters import add_adapters
from rankbook.models.gpt import GPT, GPTConfig
from rankbook.settings.lm import LMSettings
from rankbook.store import results
from rankbook.training import loop
from rankbook.training.options import FitOptions

#: the settings that fix a run's results (the results key hashes them, with the seed)
RESULT_FIELDS = (
    "corpus",
    "train_split",
    "eval_split",
    "tokenizer",
    "context",
    "d_model",
    "depth",
    "heads",
    "d_head",
    "mlp_dim",
    "tied",
    "steps",
    "warmup_steps",
    "batch_size",
    "lr",
    "eval_windows",
)


class LMTask:
    """Causal language modelling on WikiText for :func:`rankbook.training.loop.fit`."""

    def __init__(self, settings: LMSettings, seed: int, *, download: bool = True):
        self.settings, self.seed, self.download = settings, int(seed), download
        # the tokenizer actually used (GPT-2's BPE falls back to bytes if it cannot load) keys the results
        self.tokenizer = text.tokenizer(settings.tokenizer)
        self.name = f"gpt-{settings.corpus}-{self.tokenizer.name}-d{settings.d_model}-seed{self.seed}"
        self._train: text.TokenText | None = None
        self._eval: text.TokenText | None = None

    def config_dict(self) -> dict[str, Any]:
        s = self.settings
        splits = (s.train_split, s.eval_split)
        data = {split: text.fingerprint(s.corpus, split, download=self.download) for split in splits}
        return {
            "kind": "gpt",
            **{k: getattr(s, k) for k in RESULT_FIELDS},
            "tokenizer": self.tokenizer.name,
            "data": data,
            "seed": self.seed,
        }

    def texts(self) -> tuple[text.TokenText, text.TokenText]:
        """The tokenized training and evaluation splits (loaded once)."""
        if self._train is None:
            s = self.settings
            self._train = text.load_tokens(s.corpus, s.train_split, self.tokenizer.name)
            self._eval = text.load_tokens(s.corpus, s.eval_split, self.tokenizer.name)
        return self._train, self._eval

    def model_config(self) -> GPTConfig:
        s = self.settings
        return GPTConfig(
            vocab_size=self.tokenizer.vocab_size,
            context=s.context,
            d_model=s.d_model,
            depth=s.depth,
            heads=s.heads,
            d_head=s.d_head,
            mlp_dim=s.mlp_dim,
            tied=s.tied,
        )

    def build_model(self) -> torch.nn.Module:
        torch.manual_seed(self.seed)
        return GPT(self.model_config())

    def total_steps(self) -> int:
        return self.settings.steps

    def warmup_steps(self) -> int:
        return self.settings.warmup_steps

    def base_lr(self) -> float:
        return self.settings.lr

    def train_batch(self, step: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        train_text, _ = self.texts()
        s = self.settings
        windows = text.train_batch(train_text, step, self.seed, s.batch_size, s.context).to(device)
        return windows[:, :-1], windows[:, 1:]

    def loss(self, model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = model(inputs)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def eval_windows(self) -> torch.Tensor:
        _, eval_text = self.texts()
        return text.eval_windows(eval_text, self.settings.context, self.settings.eval_windows)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        windows = self.eval_windows()
        total = torch.zeros((), dtype=torch.float64, device=device)
        batch = self.settings.eval_batch_size
        for i in range(0, len(windows), batch):
            w = windows[i : i + batch].to(device)
            logits = model(w[:, :-1]).float()
            total += F.cross_entropy(logits.flatten(0, 1), w[:, 1:].flatten(), reduction="sum").double()
        return {"eval_loss": float(total) / windows[:, 1:].numel()}

    def describe(self) -> dict[str, Any]:
        train_text, eval_text = self.texts()
        return {
            "data": {"train": train_text.description, "eval": eval_text.description},
            "eval_tokens": int(self.eval_windows()[:, 1:].numel()),
            "vocab_size": train_text.vocab_size,
        }


class LoRATask(LMTask):
    """:class:`LMTask` whose attention weights train only through rank-``rank`` adapters from the init."""

    def __init__(self, settings: LMSettings, seed: int, rank: int, *, download: bool = True):
        super().__init__(settings, seed, download=download)
        self.rank = int(rank)
        self.name = f"{self.name}-lora{self.rank}"

    def config_dict(self) -> dict[str, Any]:
        return {**super().config_dict(), "lora_rank": self.rank}

    def build_model(self) -> torch.nn.Module:
        return add_adapters(super().build_model(), self.rank, seed=self.seed)


def task(settings: LMSettings, seed: int, *, lora_rank: int = 0, download: bool = True) -> LMTask:
    """The task of one LM run; ``lora_rank > 0`` trains attention only through rank-r adapters."""
    if lora_rank:
        return LoRATask(settings, seed, lora_rank, download=download)
    return LMTask(settings, seed, download=download)


def run(
    settings: LMSettings,
    seed: int,
    *,
    lora_rank: int = 0,
    train_missing: bool = True,
    root: Path | None = None,
    progress: bool = True,
) -> results.Result | None:
    """The result of one LM run (with rank-``lora_rank`` adapters if > 0): stored, else trained (resuming).

    ``train_missing=False`` only looks: nothing is downloaded, and text that is not here means not stored.
    """
    try:
        the_task = task(settings, seed, lora_rank=lora_rank, download=train_missing)
        the_task.config_dict()  # the data's fingerprint: raises here when the text is missing
    except text.TextDataNotFoundError:
        if train_missing:
            raise
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
