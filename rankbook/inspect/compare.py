"""Per-layer, per-head spectra of the update between two models of one architecture.

For every attention layer and head: the singular values of ``ΔW_K W_Q^T`` and ``ΔW_V W_O^T`` (``Δ`` =
AFTER's product minus BEFORE's), their stable rank and top-k energy shares, the same for the products of
both models, and the null baseline (:func:`rankbook.analysis.spectra.null_reference`: an unstructured matrix
of the same shape and the same rank bound ``2·d_head``). Spectra come from the factored computation of
:mod:`rankbook.analysis.spectra` (QR of the thin factors, never the ``d_model × d_model`` product); layers
are extracted and measured one at a time, so the extra memory is one layer's.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Iterable

import torch
from torch import nn

from rankbook.analysis import spectra
from rankbook.inspect import layouts

KINDS = ("qk", "vo")
TOP_K = (1, 2, 4, 8)


class ArchitectureMismatchError(ValueError):
    """BEFORE and AFTER are not the same architecture."""


@dataclasses.dataclass
class Comparison:
    """What :func:`compare` measured; ``heads`` is one dict per (layer, head, kind), see :func:`compare`."""

    heads: list[dict[str, Any]]
    layers: list[str]
    layouts: list[str]
    leaves_out: list[str]
    null: dict[str, dict[str, float]]
    seconds: float
    shape: dict[str, int]

    def stable_ranks(self, kind: str, which: str = "stable_rank") -> torch.Tensor:
        """``[layers, heads]`` of ``which`` (``stable_rank`` of Δ, ``product_stable_rank_before/after``)."""
        rows = [h for h in self.heads if h["kind"] == kind]
        n_layers, n_heads = len(self.layers), max(h["head"] for h in rows) + 1
        out = torch.full((n_layers, n_heads), math.nan, dtype=torch.float64)
        for h in rows:
            out[h["layer"], h["head"]] = math.nan if h[which] is None else h[which]
        return out

    def layer_table(self) -> list[dict[str, Any]]:
        """Per layer: mean and std over heads of Δ's stable rank for qk and vo (NaN heads skipped)."""
        table = []
        for i, name in enumerate(self.layers):
            row: dict[str, Any] = {"layer": i, "module": name}
            for kind in KINDS:
                ranks = self.stable_ranks(kind)[i]
                ranks = ranks[~ranks.isnan()]
                row[f"{kind}_mean"] = float(ranks.mean()) if len(ranks) else math.nan
                row[f"{kind}_std"] = (
                    float(ranks.std()) if len(ranks) > 1 else (0.0 if len(ranks) else math.nan)
                )
                row[f"{kind}_moved"] = int(len(ranks))
            table.append(row)
        return table

    def to_json(self) -> dict[str, Any]:
        return {
            "heads": self.heads,
            "layers": self.layer_table(),
            "modules": self.layers,
            "layouts": sorted(set(self.layouts)),
            "leaves_out": self.leaves_out,
            "null": self.null,
            "shape": self.shape,
            "seconds": round(self.seconds, 3),
            "convention": "qk: singular values of Δ(W_K W_Q^T); vo: of Δ(W_V W_O^T); Δ = AFTER - BEFORE; "
            "stable_rank is null where Δ = 0",
        }


def check_same_architecture(
    before: nn.Module, after: nn.Module, names: tuple[str, str] = ("BEFORE", "AFTER")
) -> None:
    """ArchitectureMismatchError naming the first parameter whose presence or shape differs."""
    a = {n: tuple(p.shape) for n, p in before.named_parameters()}
    b = {n: tuple(p.shape) for n, p in after.named_parameters()}
    for name, shape in a.items():
        if name not in b:
            raise ArchitectureMismatchError(
                f"parameter {name} {list(shape)} of {names[0]} is missing from {names[1]}: the two are not "
                f"the "
                f"same architecture (compare a model with its own fine-tuned copy)"
            )
        if b[name] != shape:
            raise ArchitectureMismatchError(
                f"parameter {name} is {list(shape)} in {names[0]} but {list(b[name])} in {names[1]}: the two "
                f"are "
                f"not the same architecture (compare a model with its own fine-tuned copy)"
            )
    extra = next((n for n in b if n not in a), None)
    if extra is not None:
        raise ArchitectureMismatchError(
            f"parameter {extra} {list(b[extra])} of {names[1]} is missing from {names[0]}: the two are not "
            f"the "
            f"same architecture"
        )


def energy_shares(svals: torch.Tensor, ks: Iterable[int] = TOP_K) -> dict[str, torch.Tensor]:
    """Share of ``‖A‖_F²`` in the top ``k`` singular values, ``[...]`` per k (NaN where ``A = 0``)."""
    sq = svals.double() ** 2
    total = sq.sum(-1)
    cum = sq.cumsum(-1)
    return {
        str(k): torch.where(
            total > 0, cum[..., min(k, sq.shape[-1]) - 1] / total, torch.full_like(total, math.nan)
        )
        for k in ks
    }


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def measure_layer(
    index: int, before: layouts.HeadWeights, after: layouts.HeadWeights, kinds: tuple[str, ...] = KINDS
) -> list[dict[str, Any]]:
    """The per-head records of one layer (see :func:`compare`)."""
    rows = []
    w0, w1 = before.factors(), after.factors()
    for kind in kinds:
        delta = spectra.delta_svdvals(w1, w0, kind)  # [heads, 2·d_head]
        prod0, prod1 = spectra.head_svdvals(w0, kind), spectra.head_svdvals(w1, kind)
        sr, sr0, sr1 = spectra.stable_rank(delta), spectra.stable_rank(prod0), spectra.stable_rank(prod1)
        shares = energy_shares(delta)
        for h in range(delta.shape[0]):
            rows.append(
                {
                    "layer": index,
                    "head": h,
                    "kind": kind,
                    "stable_rank": _num(sr[h]),
                    "singular_values": delta[h].tolist(),
                    "energy_top": {k: _num(v[h]) for k, v in shares.items()},
                    "delta_frobenius": float(delta[h].norm()),
                    "product_stable_rank_before": _num(sr0[h]),
                    "product_stable_rank_after": _num(sr1[h]),
                    "product_singular_values_after": prod1[h].tolist(),
                    "product_frobenius_before": float(prod0[h].norm()),
                }
            )
    return rows


def compare(
    before: nn.Module,
    after: nn.Module,
    *,
    names: tuple[str, str] = ("BEFORE", "AFTER"),
    null_samples: int = 8,
) -> Comparison:
    """Measure the update from ``before`` to ``after`` (same architecture), one layer at a time.

    Each record of ``heads``: ``layer`` and ``head`` (0-based), ``kind`` (``"qk"`` or ``"vo"``),
    ``stable_rank`` and ``singular_values`` of Δ (descending, ``2·d_head`` of them; ``stable_rank`` None
    where Δ = 0), ``energy_top`` (share of ‖Δ‖_F² in the top 1, 2, 4, 8), ``delta_frobenius``, and the
    products' ``product_stable_rank_before/after``, ``product_singular_values_after``.
    """
    check_same_architecture(before, after, names)
    started = time.perf_counter()
    heads: list[dict[str, Any]] = []
    modules, kinds_of_layout, notes = [], [], []
    null: dict[str, dict[str, float]] = {}
    shape: dict[str, int] = {}
    with torch.no_grad():
        for i, ((name, w0), (name1, w1)) in enumerate(zip(layouts.layers(before), layouts.layers(after))):
            heads.extend(measure_layer(i, w0, w1))
            modules.append(name)
            kinds_of_layout.append(w0.layout)
            notes.extend(n for n in w0.leaves_out if n not in notes)
            d_model, d_head = w0.q.shape[1], w0.d_head
            shape = {"d_model": d_model, "heads": w0.heads, "kv_heads": w0.kv_heads, "d_head": d_head}
            key = f"{d_model}x{d_model}, rank <= {2 * d_head}"
            if key not in null:
                ref = spectra.null_reference(
                    (d_model, d_model), rank=min(2 * d_head, d_model), samples=null_samples
                )
                null[key] = {
                    "stable_rank_mean": ref["stable_rank_mean"],
                    "stable_rank_std": ref["stable_rank_std"],
                    **{f"energy_top_{k}": _num(v) for k, v in energy_shares(ref["svals"]).items()},
                }
    shape["layers"] = len(modules)
    return Comparison(
        heads=heads,
        layers=modules,
        layouts=kinds_of_layout,
        leaves_out=notes,
        null=null,
        seconds=time.perf_counter() - started,
        shape=shape,
    )


def format_table(result: Comparison) -> str:
    """The per-layer table the command prints: Δ's stable rank, mean ± std over heads, for qk and vo."""
    lines = [f"{'layer':>5}  {'module':<34} {'ΔW_K W_Q^T stable rank':>24}  {'ΔW_V W_O^T stable rank':>24}"]
    for row in result.layer_table():
        cells = []
        for kind in KINDS:
            mean, std = row[f"{kind}_mean"], row[f"{kind}_std"]
            cells.append("unchanged" if math.isnan(mean) else f"{mean:.2f} ± {std:.2f}")
        lines.append(f"{row['layer']:>5}  {row['module'][-34:]:<34} {cells[0]:>24}  {cells[1]:>24}")
    for key, ref in result.null.items():
        lines.append(
            f"null baseline ({key}, random factors): stable rank "
            f"{ref['stable_rank_mean']:.2f} ± {ref['stable_rank_std']:.2f}"
        )
    s = result.shape
    lines.append(
        f"{s['layers']} layers × {s['heads']} heads (KV heads {s['kv_heads']}), d_model {s['d_model']}, "
        f"d_head {s['d_head']}; layouts: {', '.join(sorted(set(result.layouts)))}; "
        f"{result.seconds:.2f} s"
    )
    if result.leaves_out:
        lines.append("W_K W_Q^T and W_V W_O^T leave out: " + "; ".join(result.leaves_out))
    else:
        lines.append("W_K W_Q^T and W_V W_O^T leave out: nothing of these modules but the output bias b_O")
    return "\n".join(lines)


def from_json(data: dict[str, Any]) -> Comparison:
    """A :class:`Comparison` back from the command's ``--json`` (for figures and numbers in a chapter)."""
    return Comparison(heads=data["heads"], layers=data["modules"], layouts=data["layouts"],
                      leaves_out=data["leaves_out"], null=data["null"], seconds=data["seconds"],
                      shape=data["shape"])


def max_difference(a: Comparison, b: Comparison) -> float:
    """Largest difference of any singular value of any head's Δ between two comparisons of one model."""
    keys = [(h["layer"], h["head"], h["kind"]) for h in a.heads]
    if keys != [(h["layer"], h["head"], h["kind"]) for h in b.heads]:
        raise ValueError("the two comparisons do not have the same layers and heads")
    return max(max(abs(u - v) for u, v in zip(x["singular_values"], y["singular_values"]))
               for x, y in zip(a.heads, b.heads))


def difference_from_stored(result: Comparison, arrays: dict[str, Any]) -> float:
    """Largest difference between ``result``'s Δ singular values and a stored run's final ``delta_qk`` /
    ``delta_vo`` (``[steps, layers, heads, 2·d_head]``), the numbers the book's tracker recorded."""
    worst = 0.0
    for h in result.heads:
        stored = arrays[f"delta_{h['kind']}"][-1][h["layer"], h["head"]]
        worst = max(worst, max(abs(float(u) - v) for u, v in zip(stored, h["singular_values"])))
    return worst


def numbers(result: Comparison) -> dict[str, str]:
    """Text for a chapter's prose: stable rank of Δ over every head (mean ± std), per kind, and the null."""
    out: dict[str, str] = {}
    for kind in KINDS:
        ranks = result.stable_ranks(kind).flatten()
        ranks = ranks[~ranks.isnan()]
        out[f"{kind}_rank"] = f"{float(ranks.mean()):.2f} ± {float(ranks.std()):.2f}"
        top1 = torch.tensor([h["energy_top"]["1"] for h in result.heads
                             if h["kind"] == kind and h["energy_top"]["1"] is not None])
        out[f"{kind}_top1"] = f"{100 * float(top1.mean()):.0f}%"
        prod = result.stable_ranks(kind, "product_stable_rank_after").flatten()
        out[f"{kind}_product_rank"] = f"{float(prod.nanmean()):.2f}"
    ref = next(iter(result.null.values()))
    out["null_rank"] = f"{ref['stable_rank_mean']:.2f} ± {ref['stable_rank_std']:.2f}"
    out["null_top1"] = f"{100 * ref['energy_top_1']:.0f}%"
    out["heads"] = str(len(result.heads) // len(KINDS))
    out["seconds"] = f"{result.seconds:.2f} s"
    return out
