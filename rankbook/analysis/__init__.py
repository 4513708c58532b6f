"""Spectra of the attention updates and the numbers the chapters state."""
