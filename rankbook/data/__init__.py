"""Real data sets: CIFAR images and WikiText text, offline copies first."""
