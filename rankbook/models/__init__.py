"""The transformers whose attention updates the book measures: ViT and GPT with explicit per-head weights."""
