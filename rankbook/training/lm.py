"""The language model as a task of the generic training loop (:mod:`rankbook.training.loop`).

:class:`LMTask` supplies a :class:`~rankbook.models.gpt.GPT`, batches of
``context + 1`` tokens drawn by (seed, step) from the **train** split
(:func:`rankbook.data.text.train_batch`), next-token cross-entropy, and the mean
loss on the first ``eval_windows`` windows of the **valid** split, tracked
through training (``eval_loss``, nats per token: what one selects on).
Everything else (Adam, warmup + cosine schedule, spectra tracker, checkpoints,
resume, results store) is the loop's, exactly as for the ViT.

What is reported is computed on the **test** split from the final weights at
the end of training and stored in the run's manifest (``derived``,
:func:`derived`), so chapters 06 and 07 recompute their numbers from
``results/`` alone, without weights (a few kB instead of a checkpoint):

* ``test``: loss over every token of the whole test split, perplexity per
  token ``exp(nats / tokens)`` and per word ``exp(nats / words)``, words
  counted as WikiText counts them (one end-of-line token per line; 245,569
  for WikiText-2's test split), so a byte or BPE model compares with
  published word-level numbers;
* ``ablation``: attention reset to initialization, the rest trained
  (:func:`rankbook.analysis.truncation.ablation`), on the test windows;
* ``sweep``: every attention update cut to rank r, and the random null
  (:func:`rankbook.analysis.truncation.rank_sweep`, ``null_seeds`` draws), on
  the test windows;
* ``transient``: the first-step transient (:mod:`rankbook.analysis.transient`);
* ``ranks``: per-head against fused per-layer ranks of the final updates
  (:func:`rankbook.analysis.truncation.rank_profile`);
* ``test_window_loss``: the loss on the test windows (also for LoRA runs,
  whose comparison with the sweep is on the same windows).

Text is tokenized on first use, so a stored result is found without reading
any text. A run that asks for GPT-2's BPE stops before any work when it
cannot load it (:func:`rankbook.data.text.tokenizer`): the BPE is never
replaced by bytes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rankbook.data import text
from rankbook.models.adapters import add_adapters, attention_weights
from rankbook.models.gpt import GPT, GPTConfig, parameter_count
from rankbook.settings.lm import LMSettings
from rankbook.store import results
from rankbook.training import loop
from rankbook.training.options import FitOptions
from rankbook.training.schedule import lr_at

#: the settings that fix a run's results (the results key hashes them, with the seed)
RESULT_FIELDS = (
    "corpus",
    "train_split",
    "eval_split",
    "test_split",
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


class DerivedMissingError(KeyError):
    """A stored LM run without the numbers computed from its final weights."""

    def __str__(self) -> str:
        return str(self.args[0])


class LMTask:
    """Causal language modelling on WikiText for :func:`rankbook.training.loop.fit`."""

    def __init__(self, settings: LMSettings, seed: int, *, download: bool = True):
        self.settings, self.seed, self.download = settings, int(seed), download
        self.name = f"gpt-{settings.corpus}-{settings.tokenizer}-d{settings.d_model}-seed{self.seed}"
        self._tokenizer: text.Tokenizer | None = None
        self._texts: dict[str, text.TokenText] = {}
        self._model: torch.nn.Module | None = None
        self._initial: dict[str, torch.Tensor] | None = None

    @property
    def splits(self) -> tuple[str, str, str]:
        s = self.settings
        return s.train_split, s.eval_split, s.test_split

    @property
    def tokenizer(self) -> text.Tokenizer:
        """The tokenizer the settings name (GPT-2's BPE stops here with an error if it cannot load)."""
        if self._tokenizer is None:
            self._tokenizer = text.tokenizer(self.settings.tokenizer, download=self.download)
        return self._tokenizer

    def check(self) -> None:
        """Stop before any work when a split or the tokenizer is missing (every missing split named)."""
        text.require(self.settings.corpus, self.splits, download=self.download)
        _ = self.tokenizer

    def config_dict(self) -> dict[str, Any]:
        s = self.settings
        found = text.require(s.corpus, self.splits, download=self.download)  # names every missing split
        from rankbook.store import fingerprints

        data = {split: fingerprints.fingerprint(path) for split, path in found.items()}
        return {
            "kind": "gpt",
            **{k: getattr(s, k) for k in RESULT_FIELDS},
            "data": data,
            "seed": self.seed,
        }

    def text(self, split: str) -> text.TokenText:
        """A tokenized split (loaded once)."""
        if split not in self._texts:
            self._texts[split] = text.load_tokens(
                self.settings.corpus, split, self.settings.tokenizer, download=self.download
            )
        return self._texts[split]

    def texts(self) -> tuple[text.TokenText, text.TokenText]:
        """The tokenized training and evaluation splits."""
        return self.text(self.settings.train_split), self.text(self.settings.eval_split)

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
        model = GPT(self.model_config())
        # the model the loop trains, and its initial attention weights, for the numbers of describe()
        self._model, self._initial = model, attention_weights(model)
        return model

    def fresh_model(self) -> torch.nn.Module:
        """The model at initialization (seeded as :meth:`build_model`), without touching the trained one."""
        torch.manual_seed(self.seed)
        return GPT(self.model_config())

    def total_steps(self) -> int:
        return self.settings.steps

    def warmup_steps(self) -> int:
        return self.settings.warmup_steps

    def base_lr(self) -> float:
        return self.settings.lr

    def train_flops(self) -> float:
        """Training FLOPs, 6 per parameter-token for the blocks and the read-out (embeddings are lookups)."""
        s = self.settings
        cfg = self.model_config()
        readout = cfg.vocab_size * cfg.d_model
        blocks = parameter_count(cfg) - (cfg.vocab_size + cfg.context) * cfg.d_model
        attention = 2 * s.depth * s.heads * s.d_head * s.context  # QK^T and AV per token
        tokens = s.steps * s.batch_size * s.context
        return 6.0 * tokens * (blocks + readout + attention)

    def train_batch(self, step: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.settings
        windows = text.train_batch(self.text(s.train_split), step, self.seed, s.batch_size, s.context)
        windows = windows.to(device)
        return windows[:, :-1], windows[:, 1:]

    def loss(self, model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = model(inputs)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def eval_windows(self, split: str | None = None) -> torch.Tensor:
        split = split or self.settings.eval_split
        return text.eval_windows(self.text(split), self.settings.context, self.settings.eval_windows)

    @torch.no_grad()
    def split_nats(self, model: torch.nn.Module, windows, device: torch.device) -> tuple[float, int]:
        """Total cross-entropy (nats) and number of predicted tokens over ``windows`` (a tensor or a list)."""
        total = torch.zeros((), dtype=torch.float64, device=device)
        count = 0
        batch = self.settings.eval_batch_size
        if isinstance(windows, torch.Tensor):
            groups = [windows[i : i + batch] for i in range(0, len(windows), batch)]
        else:  # windows of unequal length (the last one shorter): the full ones batched, the rest alone
            full = [w for w in windows if len(w) == len(windows[0])]
            rest = [w[None] for w in windows[len(full):]]
            stacked = torch.stack(full) if full else None
            groups = ([] if stacked is None else [stacked[i : i + batch] for i in range(0, len(full), batch)])
            groups += rest
        for w in groups:
            w = w.to(device)
            logits = model(w[:, :-1]).float()
            total += F.cross_entropy(logits.flatten(0, 1), w[:, 1:].flatten(), reduction="sum").double()
            count += w[:, 1:].numel()
        return float(total), count

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        nats, count = self.split_nats(model, self.eval_windows(), device)
        return {"eval_loss": nats / count}

    def test_window_loss(self, model: torch.nn.Module, device: torch.device) -> float:
        nats, count = self.split_nats(model, self.eval_windows(self.settings.test_split), device)
        return nats / count

    def whole_split(self, model: torch.nn.Module, split: str, device: torch.device) -> dict[str, float]:
        """Loss over every token of ``split`` (but the first), perplexity per token and per word."""
        t = self.text(split)
        nats, count = self.split_nats(model, text.all_windows(t, self.settings.context), device)
        return {
            "loss": nats / count,
            "tokens": count,
            "words": t.words,
            "ppl_token": math.exp(nats / count),
            "ppl_word": math.exp(nats / t.words) if t.words else float("nan"),
        }

    def final_numbers(self, model: torch.nn.Module, initial: dict[str, torch.Tensor]) -> dict[str, Any]:
        """What the chapters report, from the final weights (module docstring)."""
        from rankbook.analysis import transient, truncation

        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            evaluate = lambda m: self.test_window_loss(m, device)  # noqa: E731
            initial = {k: v.to(device) for k, v in initial.items()}
            fresh = self.fresh_model().to(device).eval()
            nulls = self.settings.null_seeds
            sweep = truncation.rank_sweep(model, initial, evaluate, null_seeds=range(nulls))
            first_lr = lr_at(0, self.settings.lr, self.settings.warmup_steps, self.settings.steps)
            return {
                "test": self.whole_split(model, self.settings.test_split, device),
                "ablation": truncation.ablation(model, initial, fresh, evaluate),
                "sweep": {**{k: v.tolist() for k, v in sweep.items()}, "null_seeds": nulls},
                "transient": transient.summary(transient.first_step(self, first_lr, device=device)),
                "ranks": truncation.rank_profile(initial, attention_weights(model)),
                "test_window_loss": evaluate(model),
            }
        finally:
            model.train(was_training)

    def describe(self) -> dict[str, Any]:
        s = self.settings
        out: dict[str, Any] = {
            "data": {role: self.text(split).description
                     for role, split in (("train", s.train_split), ("eval", s.eval_split),
                                         ("test", s.test_split))},
            "eval_tokens": int(self.eval_windows()[:, 1:].numel()),
            "vocab_size": self.tokenizer.vocab_size,
        }
        if self._model is not None:  # at the end of training: the trained model
            out["derived"] = self.final_numbers(self._model, self._initial)
        return out


class LoRATask(LMTask):
    """:class:`LMTask` whose attention weights train only through rank-``rank`` adapters from the init."""

    def __init__(self, settings: LMSettings, seed: int, rank: int, *, download: bool = True):
        super().__init__(settings, seed, download=download)
        self.rank = int(rank)
        self.name = f"{self.name}-lora{self.rank}"

    def config_dict(self) -> dict[str, Any]:
        return {**super().config_dict(), "lora_rank": self.rank}

    def build_model(self) -> torch.nn.Module:
        model = add_adapters(super().build_model(), self.rank, seed=self.seed)
        self._model = model
        return model

    def final_numbers(self, model: torch.nn.Module, initial: dict[str, torch.Tensor]) -> dict[str, Any]:
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            return {"test_window_loss": self.test_window_loss(model, device)}
        finally:
            model.train(was_training)


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
    Training first checks every split and the tokenizer, so a missing one stops it before any work.
    """
    try:
        the_task = task(settings, seed, lora_rank=lora_rank, download=train_missing)
        the_task.config_dict()  # the data's fingerprint: raises here when the text is missing
    except text.TextDataNotFoundError:
        if train_missing:
            raise
        return None
    fit = lambda train: loop.fit(  # noqa: E731
        the_task,
        root=root,
        device=settings.device,
        options=FitOptions(precision=settings.precision, compile=settings.compile),
        checkpoint_every=settings.checkpoint_every,
        track_per_decade=settings.track_per_decade,
        progress=progress,
        train_missing=train,
    )
    found = fit(False)
    if found is not None or not train_missing:
        return found
    the_task.check()  # GPT-2's BPE loads, or a clear error before any training
    return fit(True)


def profile_runs(settings: LMSettings, progress: bool = True) -> list[results.Result]:
    """Every LM run a profile's chapters ask for: each seed's run, then the first seed's LoRA runs."""
    out = [run(settings, seed, progress=progress) for seed in settings.seeds]
    out += [run(settings, settings.seeds[0], lora_rank=r, progress=progress) for r in settings.lora_ranks]
    return out


def derived(result: results.Result) -> dict[str, Any]:
    """The numbers a stored LM run computed from its final weights (module docstring)."""
    found = result.manifest.get("derived")
    if not isinstance(found, dict):
        raise DerivedMissingError(
            f"{result.path / results.MANIFEST} has no 'derived' numbers (made by code that did not compute "
            f"them from the final weights): delete {result.path} and train it again"
        )
    return found


def sweep_of(result: results.Result) -> dict[str, Any]:
    """The stored rank-r sweep of a run as arrays (the form of :func:`truncation.rank_sweep`)."""
    import numpy as np

    return {k: np.asarray(v) for k, v in derived(result)["sweep"].items() if k != "null_seeds"}


# --------------------------------------------------------------------------- what the chapters show per tier

#: the published word-level number the chapters compare with (test split of WikiText-2 v1, with <unk>)
PUBLISHED = {
    "model": "AWD-LSTM (Merity, Keskar & Socher, ICLR 2018, arXiv:1708.02182, Table 2; 33 M parameters)",
    "valid_ppl_word": 68.6,
    "test_ppl_word": 65.8,
}


def make_command(tier: str) -> str:
    """The command that trains ``tier``'s LM runs (resumable) and copies them into ``results/``."""
    return (f"RANKBOOK_DATA=../shared/data RANKBOOK_ALLOW_SLOW=1 python -m rankbook.training "
            f"--profile {tier} lm --export results")


def tier_rows(by_tier: dict[str, list], table: dict[str, LMSettings]) -> list[dict[str, Any]]:
    """One row per tier: its model and tokens, the test perplexities per token and per word, the ablation
    share and the first-step transient (all from the runs' stored ``derived`` numbers); a tier without a
    stored run says so and gives the command that makes it."""
    rows = []
    for tier, rs in by_tier.items():
        s = table[tier]
        row: dict[str, Any] = {
            "tier": tier,
            "model": f"{s.depth} layers × {s.heads} heads of {s.d_head}, width {s.d_model}",
            "tokens": "GPT-2 BPE" if s.tokenizer == "gpt2" else "bytes",
        }
        if not rs:
            row["test ppl / token"] = row["test ppl / word"] = row["attention share"] = float("nan")
            row["note"] = f"not stored yet: {make_command(tier)}"
            rows.append(row)
            continue
        d = derived(rs[0])
        row.update({
            "valid loss (tracked)": float(rs[0].arrays["eval_loss"][-1]),
            "test loss / token": d["test"]["loss"],
            "test ppl / token": d["test"]["ppl_token"],
            "test ppl / word": d["test"]["ppl_word"],
            "attention share": d["ablation"]["share"],
            "Δqk stable rank, Adam step 1": d["transient"]["qk"]["adam"],
            "Δqk, gradient step 1": d["transient"]["qk"]["gradient"],
            "note": f"{s.steps:,} steps, {s.steps * s.batch_size * s.context / 1e6:.1f} M tokens",
        })
        rows.append(row)
    return rows


def tier_numbers(tier: str, result: results.Result | None) -> dict[str, str]:
    """Chapter 06's glued text of one tier: perplexities, ablation share, transient (or 'not stored yet')."""
    keys = ("ppl_token", "ppl_word", "loss", "share", "worth", "attention_at_init", "model_at_init",
            "trained", "qk_adam", "qk_gradient", "vo_adam", "vo_gradient")
    if result is None:
        return {k: "n/a" for k in keys} | {"status": f"not stored yet (make it with `{make_command(tier)}`)"}
    d = derived(result)
    a, t = d["ablation"], d["transient"]
    return {
        "ppl_token": f"{d['test']['ppl_token']:.2f}",
        "ppl_word": f"{d['test']['ppl_word']:.1f}",
        "loss": f"{d['test']['loss']:.3f}",
        "share": f"{a['share']:.0%}",
        "worth": f"{a['worth']:.3f}",
        "attention_at_init": f"{a['attention_at_init']:.3f}",
        "model_at_init": f"{a['model_at_init']:.3f}",
        "trained": f"{a['trained']:.3f}",
        "qk_adam": f"{t['qk']['adam']:.2f}",
        "qk_gradient": f"{t['qk']['gradient']:.2f}",
        "vo_adam": f"{t['vo']['adam']:.2f}",
        "vo_gradient": f"{t['vo']['gradient']:.2f}",
        "status": "stored",
    }


def sweep(task: LMTask, result: results.Result, null_seeds: int) -> dict[str, Any]:
    """The rank-r sweep of a run on the test windows: the stored one when it has ``null_seeds`` random draws,
    else recomputed from the run's final checkpoint (which only a machine that trained it has)."""
    stored = derived(result)["sweep"]
    if int(stored.get("null_seeds", -1)) == int(null_seeds):
        return sweep_of(result)
    from rankbook.analysis import truncation

    model, initial = truncation.load_trained(task, result)
    cpu = torch.device("cpu")
    with torch.no_grad():
        return truncation.rank_sweep(model.to(cpu), initial, lambda m: task.test_window_loss(m, cpu),
                                     null_seeds=range(null_seeds))
