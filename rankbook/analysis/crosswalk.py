"""Which of the paper's figures this book shows, where, at which tiers, and with what status.

The book numbers the paper's figures as **arXiv v1** (2306.07042v1, the text
in ``shared/seeds/paper-text-ocr.txt``). The NeurIPS 2023 version numbers
them differently; its figure list (``paper-summary.txt``) names five of its
19 figures: Fig. 1 the toy model (loss against rescaled time for several α,
and the entries of the diagonal products), Fig. 2 the checks of the
assumptions, Fig. 3 the stable rank through training "for four different
pairs of networks and tasks", Fig. 4 the spectrum of ΔW_K W_Q^T against
initialization, Fig. 5 the init-scale eigenvalues. Where the material here
does not give a NeurIPS number, the row says so instead of guessing.

:func:`rows` gives one dict per paper figure (``v1``, ``neurips``, ``what``,
``book`` (chapter stem and figure label), ``tiers``, ``status``);
:func:`not_reproduced` the rows this book does not reproduce, with why;
:func:`table` the results page's table (statuses from the claims when given).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from rankbook.analysis import claims

NOT_IN_LIST = "not in the figure list here"
LIVE = "the build's profile (live)"

#: what each version says about a language model, and what this book runs instead (chapter 06)
LANGUAGE_MODEL = (
    "arXiv v1 (the text here) trains only vision transformers (CIFAR-10/100, ImageNet) and a toy attention "
    "head; it mentions language models only for LoRA. The NeurIPS 2023 summary says the experiments cover "
    "'vision and language transformers' and that its Fig. 3 shows 'four different pairs of networks and "
    "tasks', without naming them here, so whether one of them is a language model, and which, is not known "
    "from this material (a later arXiv version may number it differently; none is here). Chapter 06 trains "
    "GPT-style models on WikiText-2 instead (byte tokens live, GPT-2's BPE in the stored reference tier), "
    "as this book's own test beyond v1."
)

_ROWS: tuple[dict[str, Any], ...] = (
    dict(
        v1="1a",
        neurips=NOT_IN_LIST,
        what="normalized spectrum of Δ in a ViT head, CIFAR-10",
        book=[("04_vit_spectra", "fig-ch04-spectra")],
        tiers=[LIVE],
        claim="Figs. 1a, 5, 11",
    ),
    dict(
        v1="1b",
        neurips=NOT_IN_LIST,
        what="the same on ImageNet",
        book=[],
        tiers=[],
        status="not reproduced: ImageNet is not available offline here",
    ),
    dict(
        v1="2a-c",
        neurips="1b (entries), 1a (loss)",
        what="toy head, diagonal weights: entries and loss",
        book=[("02_toy", "fig-ch02-qk"), ("02_toy", "fig-ch02-vo"), ("02_toy", "fig-ch02-loss")],
        tiers=[LIVE],
        claim="2a-c",
    ),
    dict(
        v1="2d-f",
        neurips=NOT_IN_LIST,
        what="toy head, full weights: singular values learned one at a time",
        book=[("02_toy", "fig-ch02-full")],
        tiers=[LIVE],
        claim="Fig. 2d-f",
    ),
    dict(
        v1="3",
        neurips="5",
        what="ViT, eigenvalues of Δ in a layer-2 head per init scale",
        book=[
            ("05_vit_init_scale", "fig-ch05-evolution-reference"),
            ("05_vit_init_scale", "fig-ch05-evolution"),
        ],
        tiers=[LIVE, "reference (stored)"],
        claim="Fig. 3",
    ),
    dict(
        v1="4",
        neurips=NOT_IN_LIST,
        what="ViT, stable rank of ΔW_K W_Q^T per init scale, layers 1, 3, 5",
        book=[
            ("05_vit_init_scale", "fig-ch05-per-scale-reference"),
            ("05_vit_init_scale", "fig-ch05-per-scale"),
        ],
        tiers=[LIVE, "reference (stored)"],
        claim="Fig. 4",
    ),
    dict(
        v1="5",
        neurips="4",
        what="ViT, spectrum of ΔW_K W_Q^T against initialization",
        book=[("04_vit_spectra", "fig-ch04-delta-init")],
        tiers=[LIVE],
        claim="Figs. 1a, 5, 11",
    ),
    dict(
        v1="6",
        neurips="1a",
        what="toy head: loss against rescaled time per α",
        book=[("02_toy", "fig-ch02-loss"), ("01_theory", "fig-ch01-overlay")],
        tiers=[LIVE],
        claim="6-8",
    ),
    dict(
        v1="7-8",
        neurips="1b",
        what="toy head: entries of the diagonal products over rescaled time",
        book=[("02_toy", "fig-ch02-qk"), ("02_toy", "fig-ch02-vo")],
        tiers=[LIVE],
        claim="6-8",
    ),
    dict(
        v1="9",
        neurips="2a",
        what="Assumption 4.3: kicked weights return to the plateau",
        book=[("03_assumptions", "fig-ch03-plateaus"), ("03_assumptions", "fig-ch03-saddles")],
        tiers=[LIVE],
        claim="Fig. 9",
    ),
    dict(
        v1="10",
        neurips="2b",
        what="Assumption 4.4: kicked jumps reach the next saddle",
        book=[("03_assumptions", "fig-ch03-jumps")],
        tiers=[LIVE],
        claim="Fig. 10",
    ),
    dict(
        v1="11",
        neurips=NOT_IN_LIST,
        what="CIFAR-10: normalized spectra at stages of training",
        book=[("04_vit_spectra", "fig-ch04-spectra")],
        tiers=[LIVE],
        claim="Figs. 1a, 5, 11",
    ),
    dict(
        v1="12",
        neurips="3 (one of its four network/task pairs, if it is the CIFAR-10 ViT)",
        what="CIFAR-10: stable rank of ΔW_K W_Q^T and ΔW_V W_O^T through training",
        book=[
            ("04_vit_spectra", "fig-ch04-rank"),
            ("04_vit_spectra", "fig-ch04-rank-reference"),
            ("04_vit_spectra", "fig-ch04-rank-paper"),
        ],
        tiers=[LIVE, "reference (stored, 3 seeds)", "paper (stored, 1 seed)"],
        claim="Fig. 12",
    ),
    dict(
        v1="13-14",
        neurips=NOT_IN_LIST,
        what="CIFAR-100: spectra and stable rank through training",
        book=[],
        tiers=[],
        status="not reproduced: no offline copy of CIFAR-100 exists here (the code supports it)",
    ),
    dict(
        v1="15-16",
        neurips=NOT_IN_LIST,
        what="ImageNet: spectra and stable rank through training",
        book=[],
        tiers=[],
        status="not reproduced: ImageNet is not available offline here",
    ),
    dict(
        v1="—",
        neurips="3 (if one of its pairs is a language model)",
        what="a language model's stable rank through training (beyond v1)",
        book=[("06_language", "fig-ch06-rank"), ("06_language", "fig-ch06-rank-reference")],
        tiers=[LIVE, "reference (stored)"],
        claim="Fig. 12 (ViT; LM here)",
    ),
)


def rows() -> list[dict[str, Any]]:
    """One dict per paper figure: ``v1``, ``neurips``, ``what``, ``book`` ([(chapter stem, figure label)]),
    ``tiers`` (list), ``status`` (text for the rows not reproduced, else "see the results page's claim"),
    ``claim`` (the paper location the chapters' claim rows carry, matched by :func:`status_from`)."""
    out = []
    for r in _ROWS:
        r = {"status": "reproduced as an analogue: see the claim's verdict", "claim": "", **r}
        out.append({**r, "book": list(r["book"]), "tiers": list(r["tiers"])})
    return out


def not_reproduced() -> list[dict[str, Any]]:
    """The paper's figures this book does not show, each with why (``status``)."""
    return [r for r in rows() if not r["book"]]


def _matches(token: str, paper: str) -> bool:
    return re.search(rf"(?<![\w.-]){re.escape(token)}(?![\w-])", paper) is not None


def status_from(row: Mapping[str, Any], claim_rows: Sequence[Mapping[str, Any]]) -> str:
    """The verdicts of the claims recorded for ``row``'s paper location in its chapters, largest tier first,
    e.g. "shown (paper); partly shown (reference)"; the row's own status when it has no book figure."""
    if not row["book"] or not row.get("claim"):
        return row["status"]
    chapters = {stem.split("_", 1)[0] for stem, _ in row["book"]}
    found = [
        c
        for c in claim_rows
        if str(c["chapter"]).split("_", 1)[0] in chapters and _matches(row["claim"], c["paper"])
    ]
    if not found:
        return "no claim recorded in this build"
    order = {t: i for i, t in enumerate(reversed(claims.TIERS))}
    parts = []
    for c in sorted(found, key=lambda c: order.get(c["tier"], 9)):
        text = f"{claims.normalize(c['verdict'])} ({c['tier']})"
        if text not in parts:
            parts.append(text)
    return "; ".join(parts)


def table(claim_rows: Sequence[Mapping[str, Any]] = (), stems: Sequence[str] | None = None):
    """The crosswalk as a :class:`rankbook.figures.tables.Table`; book figures link to their chapter page."""
    from rankbook.figures.tables import Table

    out = []
    for r in rows():
        book = ", ".join(f"{stem.split('_', 1)[0]} ({label.split('-', 2)[-1]})" for stem, label in r["book"])
        out.append(
            {
                "paper, v1": f"Fig. {r['v1']}" if r["v1"] != "—" else "—",
                "paper, NeurIPS": r["neurips"] if r["neurips"] == NOT_IN_LIST else f"Fig. {r['neurips']}",
                "what": r["what"],
                "this book (chapter: figure)": book or "—",
                "tiers shown": ", ".join(r["tiers"]) or "—",
                "status": status_from(r, claim_rows) if claim_rows else r["status"],
            }
        )
    return Table(out, title="The paper's figures (arXiv v1 and NeurIPS 2023 numbering) in this book")
