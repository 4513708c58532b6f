"""Compatibility: the LoRA adapters moved to :mod:`rankbook.models.adapters` and the rank-r cuts to
:mod:`rankbook.analysis.truncation`. ``rankbook.training.lm`` still imports ``add_adapters`` from here;
delete this module once it imports :mod:`rankbook.models.adapters`."""

from rankbook.models.adapters import add_adapters  # noqa: F401
