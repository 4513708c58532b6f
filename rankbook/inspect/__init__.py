"""Measure your own model: per-head spectra of the update between two checkpoints of any transformer.

``layouts`` reads per-head W_Q, W_K, W_V, W_O from many libraries' attention modules; ``compare`` measures
the update between two models; ``load`` opens HF folders, hub names and state-dict files; ``convert`` writes
the book's ViT as an HF or a timm ViT; ``cli`` is ``python -m rankbook inspect``. Importing this package
does not import transformers or timm (they are the optional ``rankbook[models]`` extra).
"""
