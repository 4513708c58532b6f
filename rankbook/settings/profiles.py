"""Named run profiles and validated settings.

A profile is a name: ``fast`` (what CI executes live on 2 CPU cores, minutes per
chapter), ``reference`` (closer to the paper, CPU-hours; its runs are stored
in ``results/`` and shown beside the fast ones) or ``paper`` (the paper's
settings, for a GPU; stored the same way). Each part of the book (toy model, ViT, ...) keeps its own table of
settings per profile, as a frozen dataclass derived from :class:`Settings`,
so the same notebook runs at either scale from papermill parameters alone.

Fields declare their bounds with :func:`param`; every value is checked for
type and range when settings are built, so a bad parameter fails at the top
of a notebook with a message that names the valid choices.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import os
import typing
from typing import Any, Mapping, TypeVar

PROFILE_NAMES = ("fast", "reference", "paper")
DEFAULT_PROFILE = "fast"
ENV_VAR = "RANKBOOK_PROFILE"

S = TypeVar("S", bound="Settings")


class ProfileError(ValueError):
    """An unknown profile name or a parameter of the wrong type or range."""


def resolve(name: str | None = None) -> str:
    """The profile to use: ``name`` if given, else ``$RANKBOOK_PROFILE``, else ``fast``."""
    chosen = name or os.environ.get(ENV_VAR) or DEFAULT_PROFILE
    if chosen not in PROFILE_NAMES:
        source = "argument" if name else f"${ENV_VAR}"
        raise ProfileError(
            f"unknown profile {chosen!r} (from {source}); valid profiles: "
            f"{', '.join(PROFILE_NAMES)}. Pass one with --profile / -p profile=..., "
            f"or set {ENV_VAR}."
        )
    return chosen


def param(default: Any, *, ge=None, gt=None, le=None, lt=None, choices=None, help: str = ""):
    """A settings field with bounds checked on construction."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "help": help}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for sequence defaults (settings are frozen)")
    return dataclasses.field(default=default, metadata=meta)


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(v, args[0]) for v in value)
        return len(args) == len(value) and all(_type_ok(v, a) for v, a in zip(value, args))
    if origin is typing.Union:
        return any(_type_ok(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    return isinstance(value, hint)


def _coerce_sequence(value: Any, hint: Any) -> Any:
    """A tuple setting given as a list (papermill's YAML) or as text ("[1e-4, 1e-8]", from -r) → a tuple."""
    if typing.get_origin(hint) is not tuple:
        return value
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value  # reported as a type error, naming the field
        if isinstance(value, (int, float)):
            value = (value,)
    return tuple(value) if isinstance(value, list) else value


def _form_hint(name: str, hint: Any, default: Any) -> str:
    """How to write a value of a sequence setting, for the type error (a scalar or text given instead)."""
    if typing.get_origin(hint) is not tuple:
        return ""
    example = list(default) if isinstance(default, tuple) and default else [1, 2]
    text = ", ".join(map(str, example))
    return (f"; give a list, e.g. [{text}] (a notebook parameter: {name}=[{text}]; on the command line: "
            f"-p {name} '[{text}]'; as text: \"{text}\")")


def _hint_name(hint: Any) -> str:
    if typing.get_origin(hint) is not None:  # tuple[float, ...], not "tuple"
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _check_bounds(name: str, value: Any, meta: Mapping[str, Any]) -> None:
    items = value if isinstance(value, tuple) else (value,)
    choices = meta.get("choices")
    for v in items:
        if choices is not None and v not in choices:
            raise ProfileError(
                f"{name}={v!r} is not one of the valid choices: {', '.join(map(repr, choices))}"
            )
        if v is None or isinstance(v, (str, bool)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise ProfileError(f"{name}={v!r} is not a finite number")
        for key, ok, word in (
            ("ge", lambda a, b: a >= b, ">="),
            ("gt", lambda a, b: a > b, ">"),
            ("le", lambda a, b: a <= b, "<="),
            ("lt", lambda a, b: a < b, "<"),
        ):
            bound = meta.get(key)
            if bound is not None and not ok(v, bound):
                raise ProfileError(f"{name}={v!r} is out of range: it must be {word} {bound}")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base class for a part's settings; subclasses are frozen dataclasses."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            hint = hints[f.name]
            value = _coerce_sequence(value, hint)
            object.__setattr__(self, f.name, value)
            if not _type_ok(value, hint):
                raise ProfileError(
                    f"{type(self).__name__}.{f.name} must be {_hint_name(hint)}, "
                    f"got {value!r} ({type(value).__name__}){_form_hint(f.name, hint, f.default)}"
                )
            _check_bounds(f.name, value, f.metadata)

    def replace(self: S, **overrides: Any) -> S:
        """A copy with ``overrides`` applied; ``None`` means keep the profile's value."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ProfileError(
                f"unknown setting(s) {', '.join(unknown)} for {type(self).__name__}; "
                f"valid settings: {', '.join(names)}"
            )
        changes = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def select(table: Mapping[str, S], profile: str | None = None, **overrides: Any) -> S:
    """The settings of ``profile`` (resolved as in :func:`resolve`) with overrides."""
    name = resolve(profile)
    missing = set(PROFILE_NAMES) - set(table)
    if missing:
        raise ProfileError(f"settings table lacks profile(s): {', '.join(sorted(missing))}")
    return table[name].replace(**overrides)
