"""Models to inspect from what a user has: HF folders, hub names, state-dict files with ``--arch``.

``--arch NAME[:key=value,...]`` builds an empty skeleton (on the meta device: no memory, no init time) that
a state dict fills:

* ``rankbook-vit[:d_model=64,depth=4,...]`` and ``rankbook-gpt[:...]``: the book's models (ViTConfig /
  GPTConfig fields; unspecified fields keep their defaults);
* ``hf:MODEL_TYPE[:key=value,...]`` (e.g. ``hf:gpt2:n_layer=12``) or ``hf:PATH`` (a ``config.json`` or a
  folder holding one): a transformers base model (``AutoModel``);
* ``timm:MODEL_NAME[:key=value,...]`` (e.g. ``timm:vit_base_patch16_224``);
* ``torch-encoder:d_model=..,nhead=..,num_layers=..[,dim_feedforward=..]``: ``nn.TransformerEncoder``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

STATE_DICT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
ARCH_FAMILIES = ("rankbook-vit", "rankbook-gpt", "hf", "timm", "torch-encoder")
#: prefixes a task model puts before its base model's parameter names (ViTForImageClassification: "vit.")
BASE_PREFIXES = ("vit.", "bert.", "transformer.", "model.", "roberta.", "deit.", "encoder.", "module.")


class InspectInputError(ValueError):
    """A BEFORE/AFTER or --arch the command cannot use; the message names it and the fix."""


def _value(text: str) -> Any:
    if text in ("True", "true", "False", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_arch(spec: str) -> tuple[str, str | None, dict[str, Any]]:
    """``NAME[:TARGET][:k=v,...]`` → ``(family, target, kwargs)``."""
    family, _, rest = spec.partition(":")
    if family not in ARCH_FAMILIES:
        raise InspectInputError(
            f"--arch {spec!r}: unknown architecture {family!r}; use one of {', '.join(ARCH_FAMILIES)}, e.g. "
            f"--arch rankbook-vit:d_model=64,depth=4,heads=4,d_head=16,mlp_dim=128 or --arch hf:gpt2 "
            f"(see python -m rankbook inspect --help)"
        )
    target, kwargs = None, {}
    parts = rest.split(":") if rest else []
    if family in ("hf", "timm"):
        if not parts or "=" in parts[0]:
            raise InspectInputError(
                f"--arch {spec!r}: {family} needs a name, e.g. --arch "
                f"{'hf:gpt2' if family == 'hf' else 'timm:vit_base_patch16_224'}"
            )
        target, parts = parts[0], parts[1:]
    for part in parts:
        for item in filter(None, part.split(",")):
            key, eq, value = item.partition("=")
            if not eq or not key.isidentifier():
                raise InspectInputError(f"--arch {spec!r}: {item!r} is not key=value (e.g. depth=4)")
            kwargs[key] = _value(value)
    return family, target, kwargs


def _config_keys(family: str) -> str:
    """The key=value fields a rankbook layout accepts (its config's fields), for a misspelt one."""
    import dataclasses

    if family == "rankbook-vit":
        from rankbook.models.vit import ViTConfig as config
    elif family == "rankbook-gpt":
        from rankbook.models.gpt import GPTConfig as config
    else:
        return ""
    return f"; {family} takes: {', '.join(f.name for f in dataclasses.fields(config))}"


def skeleton(spec: str) -> nn.Module:
    """The empty model ``--arch spec`` names, on the meta device."""
    family, target, kw = parse_arch(spec)
    try:
        with torch.device("meta"):
            if family == "rankbook-vit":
                from rankbook.models.vit import ViT, ViTConfig

                return ViT(ViTConfig(**kw))
            if family == "rankbook-gpt":
                from rankbook.models.gpt import GPT, GPTConfig

                return GPT(GPTConfig(**kw))
            if family == "torch-encoder":
                layers = kw.pop("num_layers", 1)
                layer = nn.TransformerEncoderLayer(batch_first=True, **kw)
                return nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
            if family == "timm":
                timm = _require("timm")
                return timm.create_model(target, pretrained=False, **kw)
            transformers = _require("transformers")
            path = Path(target)
            if path.exists():
                config = transformers.AutoConfig.from_pretrained(
                    path if path.is_dir() else path.parent if path.name == "config.json" else path
                )
                for key, value in kw.items():
                    setattr(config, key, value)
            else:
                config = transformers.AutoConfig.for_model(target, **kw)
            return transformers.AutoModel.from_config(config)
    except InspectInputError:
        raise
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise InspectInputError(
            f"--arch {spec!r} does not build a model: {exc}{_config_keys(family)}. Fix the name or the "
            f"key=value fields"
        ) from exc


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as exc:
        raise InspectInputError(
            f"{module} is not installed; pip install 'rankbook[models]' (or -r requirements.txt in a clone)"
        ) from exc


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or a ``.pt/.pth/.bin`` file (``weights_only=True``)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError as exc:
        raise InspectInputError(
            f"{path}: reading .safetensors needs safetensors; pip install 'rankbook[models]'"
        ) from exc
    except Exception as exc:  # safetensors, pickle and zip errors have no common base class
        raise InspectInputError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}). Fix: write it again "
            f"with torch.save(model.state_dict(), ...) or safetensors' save_file"
        ) from exc
    for key in ("state_dict", "model", "model_state_dict"):  # training checkpoints that wrap the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise InspectInputError(
            f"{path} holds no state dict (a mapping of names to tensors). Fix: save "
            f"model.state_dict(), not the model or an optimizer state"
        )
    return state


def fill(model: nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str) -> nn.Module:
    """Load ``state`` into the meta skeleton: every attention parameter must be there with its shape (the
    rest, e.g. a pooler the task model lacks, may be absent: it is never read)."""
    from rankbook.inspect import layouts

    wanted = dict(model.named_parameters())
    attention = [name for name, _, _ in layouts.attention_modules(model)]
    needed = [n for n in wanted if any(n.startswith(a + ".") for a in attention)]
    if not needed:
        raise layouts.UnsupportedModelError(
            f"--arch {arch} has no attention module of a known layout.\n{layouts.supported()}"
        )
    if needed[0] not in state:  # a task model's weights (vit.encoder...) into a base model (encoder...)
        prefix = next((p for p in BASE_PREFIXES if p + needed[0] in state), None)
        if prefix is not None:
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    for name, param in wanted.items():
        if name not in state:
            if name not in needed:
                continue
            raise InspectInputError(
                f"{path}: parameter {name} of --arch {arch} is not in the file. Fix: --arch "
                f"must name the architecture the file was saved from"
            )
        if tuple(state[name].shape) != tuple(param.shape):
            raise InspectInputError(
                f"{path}: parameter {name} is {list(state[name].shape)} in the file but "
                f"{list(param.shape)} in "
                f"--arch {arch}. Fix: give --arch the file's shape (e.g. d_model=, depth=, heads=)"
            )
    own = dict(model.state_dict())
    model.load_state_dict(
        {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)},
        strict=False,
        assign=True,
    )
    return model.eval()


def offline() -> bool:
    """Whether the model hub is out of reach: HF_HUB_OFFLINE set, or no answer from it within 3 s."""
    if (
        os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
        or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    ):
        return True
    import socket

    try:
        with socket.create_connection(("huggingface.co", 443), timeout=3):
            return False
    except OSError:
        return True


def load(source: str, arch: str | None = None, role: str = "BEFORE") -> nn.Module:
    """The model ``source`` names (a folder, a state-dict file with ``arch``, or a hub name), in eval mode."""
    path = Path(source)
    if path.is_dir():
        if not (path / "config.json").is_file():
            if arch is None:
                raise InspectInputError(
                    f"{role} {path} is a folder without config.json: pass an HF folder as "
                    f"save_pretrained writes it, or a state-dict file with --arch"
                )
            files = sorted(p for p in path.iterdir() if p.suffix in STATE_DICT_SUFFIXES)
            if len(files) != 1:
                raise InspectInputError(
                    f"{role} {path}: expected one state-dict file in it, found "
                    f"{[p.name for p in files]}; name the file itself"
                )
            path = files[0]
        else:
            transformers = _require("transformers")
            try:
                model = transformers.AutoModel.from_pretrained(path)
            except Exception as exc:
                raise InspectInputError(
                    f"{role} {path} is not a loadable HF model folder "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0]}). Fix: write it "
                    f"again with model.save_pretrained(...)"
                ) from exc
            return model.eval()
    if path.is_file():
        if path.suffix not in STATE_DICT_SUFFIXES:
            raise InspectInputError(
                f"{role} {path}: unknown file type {path.suffix!r}; use a .safetensors, "
                f".pt, .pth or .bin state dict, or an HF model folder"
            )
        if arch is None:
            raise InspectInputError(
                f"{role} {path} is a state-dict file: name its architecture and shape with "
                f"--arch, e.g. --arch rankbook-vit:d_model=64,depth=4,heads=4,d_head=16,"
                f"mlp_dim=128 or --arch hf:gpt2 (see --help)"
            )
        return fill(skeleton(arch), read_state_dict(path), path, arch)
    looks_like_hub = source.count("/") == 1 and not source.startswith((".", "/", "~"))
    if not looks_like_hub:
        raise InspectInputError(
            f"{role} {source}: no such file or folder. Fix: the path to an HF model folder "
            f"or a state-dict file"
        )
    if offline():
        raise InspectInputError(
            f"{role} {source}: no such file or folder, and the model hub is out of reach "
            f"(offline or HF_HUB_OFFLINE=1). Fix: download it where online with "
            f"save_pretrained, and pass the folder"
        )
    transformers = _require("transformers")
    try:
        return transformers.AutoModel.from_pretrained(source).eval()
    except Exception as exc:
        raise InspectInputError(
            f"{role} {source}: not a model on the hub or not loadable "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from exc
