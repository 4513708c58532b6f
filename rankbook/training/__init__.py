"""One training loop for every task, its checkpoints, and the tasks (ViT, LM, LoRA)."""
