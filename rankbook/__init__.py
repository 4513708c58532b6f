"""rankbook: executable reproduction of 'Transformers learn through gradual rank increase'."""
__version__ = "0.1.0"
