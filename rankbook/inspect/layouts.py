"""Per-head W_Q, W_K, W_V, W_O of an attention module, in the book's convention, from many libraries' layouts.

The book's convention (:mod:`rankbook.models.vit`): head ``h`` holds ``W_Q^h, W_K^h, W_V^h, W_O^h`` of
shape ``[d_model, d_head]``, stacked as ``[heads, d_model, d_head]``; on tokens ``X`` (rows) the head
computes ``logits_h = (X W_Q^h + b_Q^h)(X W_K^h + b_K^h)^T / sqrt(d_head)`` (row ``i`` the query) and
the layer outputs ``sum_h softmax(logits_h) (X W_V^h + b_V^h) (W_O^h)^T + b_O``.

One small function per layout, chosen by the module's type (:data:`LAYOUTS`, first match wins; a matched
module's children are not searched again). Each returns a :class:`HeadWeights` whose ``leaves_out`` says
what the bilinear products ``W_K W_Q^T`` and ``W_V W_O^T`` do not contain for that module (biases, rotary
position embeddings, QK-norm). Grouped-query attention is expanded: query head ``h`` uses KV head
``h // (heads / kv_heads)``, so ``k`` and ``v`` are returned per *query* head.

The conversions, in one line each (``nn.Linear`` stores ``weight [out, in]`` and computes ``x W^T``;
GPT-2's ``Conv1D`` stores ``weight [in, out]`` and computes ``x W``):

* a Linear projection to ``heads·d_head`` outputs: ``W^h = weight[h·e:(h+1)·e, :]^T``
  (``weight.view(heads, e, d).transpose(1, 2)``);
* a Linear output projection from ``heads·d_head`` inputs: ``W_O^h = weight[:, h·e:(h+1)·e]``
  (``weight.view(d, heads, e).permute(1, 0, 2)``);
* a fused Linear ``qkv [3·d, d]`` (timm, ``nn.MultiheadAttention.in_proj_weight``): row blocks 0, d, 2d;
* GPT-2's ``c_attn`` Conv1D ``[d, 3·d]``: column blocks 0, d, 2d, ``W_Q^h = weight[:, h·e:(h+1)·e]``;
  ``c_proj [d, d]``: head ``h``'s output is rows ``h·e:(h+1)·e``, ``W_O^h = weight[h·e:(h+1)·e, :]^T``.

``tests/test_inspect.py`` pins every layout against the library's own pre-softmax scores and outputs.

To add a layout: write ``def _mylib(module) -> HeadWeights`` beside the others, add a
``Layout("name", "what it reads", _matches_mylib, _mylib)`` to :data:`LAYOUTS`, and a test in
``tests/test_inspect.py`` that builds a tiny random model of that library and compares the logits and
outputs (the tests of the other layouts show how).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import torch
from torch import nn


class UnsupportedModelError(ValueError):
    """No attention module of a known layout in the model."""


@dataclasses.dataclass
class HeadWeights:
    """One attention layer's per-head weights ``q, k, v, o [heads, d_model, d_head]`` (``k``, ``v`` per query
    head), its biases (``None`` where the module has none) and what the products leave out."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    o: torch.Tensor
    layout: str
    kv_heads: int
    b_q: torch.Tensor | None = None  # [heads, d_head]
    b_k: torch.Tensor | None = None
    b_v: torch.Tensor | None = None
    b_o: torch.Tensor | None = None  # [d_model]
    leaves_out: tuple[str, ...] = ()

    @property
    def heads(self) -> int:
        return self.q.shape[0]

    @property
    def d_head(self) -> int:
        return self.q.shape[2]

    def factors(self) -> dict[str, torch.Tensor]:
        """``{"q", "k", "v", "o"}``, the dict :mod:`rankbook.analysis.spectra` takes."""
        return {"q": self.q, "k": self.k, "v": self.v, "o": self.o}


@dataclasses.dataclass(frozen=True)
class Layout:
    name: str
    reads: str
    matches: Callable[[nn.Module], bool]
    extract: Callable[[nn.Module], HeadWeights]


# ---- conversions shared by the layouts -----------------------------------------------------------------


def _in_heads(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Linear ``weight [heads·e, d]`` → ``[heads, d, e]``."""
    out, d = weight.shape
    return weight.detach().reshape(heads, out // heads, d).transpose(1, 2)


def _out_heads(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Linear output ``weight [d, heads·e]`` → ``[heads, d, e]``."""
    d, inner = weight.shape
    return weight.detach().reshape(d, heads, inner // heads).permute(1, 0, 2)


def _bias_heads(bias: torch.Tensor | None, heads: int) -> torch.Tensor | None:
    return None if bias is None else bias.detach().reshape(heads, -1)


def _grouped(t: torch.Tensor | None, heads: int) -> torch.Tensor | None:
    """KV-head tensor ``[kv_heads, ...]`` → per query head ``[heads, ...]`` (query head h uses h // group)."""
    if t is None or t.shape[0] == heads:
        return t
    return t.repeat_interleave(heads // t.shape[0], dim=0)


def _linear_heads(
    q: nn.Module,
    k: nn.Module,
    v: nn.Module,
    o: nn.Module,
    heads: int,
    kv_heads: int,
    layout: str,
    leaves_out: list[str],
) -> HeadWeights:
    """Separate Linear q/k/v/o projections (BERT, HF ViT, LLaMA): the common case."""
    bias = lambda m: getattr(m, "bias", None)  # noqa: E731
    biases = [n for n, m in zip("QKV", (q, k, v)) if bias(m) is not None]
    if biases:
        leaves_out = [f"biases b_{'/b_'.join(biases)} (terms linear in X outside the products)", *leaves_out]
    return HeadWeights(
        q=_in_heads(q.weight, heads),
        k=_grouped(_in_heads(k.weight, kv_heads), heads),
        v=_grouped(_in_heads(v.weight, kv_heads), heads),
        o=_out_heads(o.weight, heads),
        b_q=_bias_heads(bias(q), heads),
        b_k=_grouped(_bias_heads(bias(k), kv_heads), heads),
        b_v=_grouped(_bias_heads(bias(v), kv_heads), heads),
        b_o=None if bias(o) is None else bias(o).detach(),
        layout=layout,
        kv_heads=kv_heads,
        leaves_out=tuple(leaves_out),
    )


def _fused_qkv(weight: torch.Tensor, bias: torch.Tensor | None, heads: int) -> tuple:
    """Linear ``[3·d, d]`` (row blocks q, k, v) → three ``[heads, d, e]`` and their biases."""
    ws = [_in_heads(w, heads) for w in weight.chunk(3, dim=0)]
    bs = [None] * 3 if bias is None else [_bias_heads(b, heads) for b in bias.chunk(3)]
    return ws, bs


def _biases_note(bs) -> list[str]:
    return ["biases b_Q/b_K/b_V (terms linear in X outside the products)"] if bs[0] is not None else []


def _children(module: nn.Module, *names: str) -> bool:
    return all(isinstance(getattr(module, n, None), nn.Module) for n in names)


# ---- one function per layout ---------------------------------------------------------------------------


def _matches_rankbook(m: nn.Module) -> bool:
    from rankbook.models.vit import Attention

    return isinstance(m, Attention)


def _rankbook(m: nn.Module) -> HeadWeights:
    """rankbook's ViT and GPT: the weights are already ``[heads, d_model, d_head]``."""
    return HeadWeights(
        q=m.w_q.detach(),
        k=m.w_k.detach(),
        v=m.w_v.detach(),
        o=m.w_o.detach(),
        b_o=m.b_o.detach(),
        layout="rankbook",
        kv_heads=m.heads,
    )


def _matches_bert(m: nn.Module) -> bool:
    # BertAttention (.self.query, .output.dense); HF ViT 4.x's ViTAttention (.attention.query, .output.dense)
    inner = getattr(m, "self", None) or getattr(m, "attention", None)
    return (
        type(m).__name__.endswith("Attention")
        and inner is not None
        and _children(inner, "query", "key", "value")
        and _children(m, "output")
        and _children(m.output, "dense")
    )


def _bert(m: nn.Module) -> HeadWeights:
    """BERT-style encoders and HF ViT 4.x: ``query/key/value`` Linear, ``output.dense`` Linear."""
    inner = getattr(m, "self", None) or m.attention
    heads = inner.num_attention_heads
    notes = []
    if getattr(inner, "position_embedding_type", "absolute") != "absolute":
        notes.append(f"relative position scores ({inner.position_embedding_type})")
    return _linear_heads(inner.query, inner.key, inner.value, m.output.dense, heads, heads, "bert", notes)


def _matches_qkvo(m: nn.Module) -> bool:
    return type(m).__name__.endswith("Attention") and _children(m, "q_proj", "k_proj", "v_proj", "o_proj")


def _qkvo(m: nn.Module) -> HeadWeights:
    """``q_proj/k_proj/v_proj/o_proj`` Linear: the LLaMA family (grouped-query), HF ViT 5.x, Mistral, Qwen."""
    cfg = getattr(m, "config", None)
    head_dim = getattr(m, "head_dim", None) or getattr(m, "attention_head_size", None)
    if head_dim is None:
        head_dim = cfg.hidden_size // cfg.num_attention_heads
    heads = m.q_proj.out_features // head_dim
    kv_heads = m.k_proj.out_features // head_dim
    notes = []
    if cfg is not None and (
        getattr(cfg, "rope_theta", None) is not None
        or "rope"
        in str(getattr(cfg, "rope_parameters", "") or getattr(cfg, "rope_scaling", "") or "").lower()
        or getattr(cfg, "model_type", "") in ("llama", "mistral", "qwen2", "qwen3", "gemma", "phi3")
    ):
        notes.append("rotary position embeddings (applied to X W_Q and X W_K before their product)")
    for name in ("q_norm", "k_norm"):
        if isinstance(getattr(m, name, None), nn.Module) and not isinstance(getattr(m, name), nn.Identity):
            notes.append("QK-norm (q_norm/k_norm act between the projection and the product)")
            break
    name = "llama" if kv_heads != heads or notes else "qkvo"
    return _linear_heads(m.q_proj, m.k_proj, m.v_proj, m.o_proj, heads, kv_heads, name, notes)


def _matches_gpt2(m: nn.Module) -> bool:
    return (
        _children(m, "c_attn", "c_proj")
        and type(m.c_attn).__name__ == "Conv1D"
        and not getattr(m, "is_cross_attention", False)
    )


def _gpt2(m: nn.Module) -> HeadWeights:
    """HF GPT-2: ``Conv1D`` (weight ``[in, out]``), fused ``c_attn [d, 3d]`` and ``c_proj [d, d]``."""
    heads = m.num_heads
    d = m.c_attn.weight.shape[0]
    w = m.c_attn.weight.detach()
    q, k, v = (w[:, i * d : (i + 1) * d].T for i in range(3))  # [d_out, d_in] as a Linear would hold it
    bias = m.c_attn.bias.detach()
    b_q, b_k, b_v = (bias[i * d : (i + 1) * d].reshape(heads, -1) for i in range(3))
    notes = ["biases b_Q/b_K/b_V (terms linear in X outside the products)"]
    if getattr(m, "scale_attn_by_inverse_layer_idx", False):
        notes.append("the 1/(layer+1) logit scale (scale_attn_by_inverse_layer_idx)")
    return HeadWeights(
        q=_in_heads(q, heads),
        k=_in_heads(k, heads),
        v=_in_heads(v, heads),
        o=_in_heads(m.c_proj.weight.detach(), heads),
        b_q=b_q,
        b_k=b_k,
        b_v=b_v,
        b_o=m.c_proj.bias.detach(),
        layout="gpt2",
        kv_heads=heads,
        leaves_out=tuple(notes),
    )


def _matches_timm(m: nn.Module) -> bool:
    return (
        _children(m, "qkv", "proj")
        and isinstance(m.qkv, nn.Linear)
        and hasattr(m, "num_heads")
        and type(m).__module__.startswith("timm.")
    )


def _timm(m: nn.Module) -> HeadWeights:
    """timm ``Attention`` (VisionTransformer): fused ``qkv`` Linear ``[3d, d]``, ``proj`` Linear."""
    heads = m.num_heads
    (q, k, v), bs = _fused_qkv(m.qkv.weight, m.qkv.bias, heads)
    notes = _biases_note(bs)
    if any(not isinstance(getattr(m, n, nn.Identity()), nn.Identity) for n in ("q_norm", "k_norm")):
        notes.append("QK-norm (q_norm/k_norm act between the projection and the product)")
    return HeadWeights(
        q=q,
        k=k,
        v=v,
        o=_out_heads(m.proj.weight, heads),
        b_q=bs[0],
        b_k=bs[1],
        b_v=bs[2],
        b_o=None if m.proj.bias is None else m.proj.bias.detach(),
        layout="timm",
        kv_heads=heads,
        leaves_out=tuple(notes),
    )


def _matches_mha(m: nn.Module) -> bool:
    return isinstance(m, nn.MultiheadAttention)


def _mha(m: nn.Module) -> HeadWeights:
    """``torch.nn.MultiheadAttention`` (also inside ``nn.TransformerEncoderLayer``): ``in_proj_weight
    [3d, d]``, or ``q/k/v_proj_weight`` when ``kdim``/``vdim`` differ; ``out_proj`` Linear."""
    heads = m.num_heads
    if m.in_proj_weight is not None:
        (q, k, v), bs = _fused_qkv(m.in_proj_weight, m.in_proj_bias, heads)
    else:
        q, k, v = (_in_heads(w, heads) for w in (m.q_proj_weight, m.k_proj_weight, m.v_proj_weight))
        bs = (
            [None] * 3 if m.in_proj_bias is None else [_bias_heads(b, heads) for b in m.in_proj_bias.chunk(3)]
        )
    if q.shape[1] != k.shape[1] or q.shape[1] != v.shape[1]:
        raise UnsupportedModelError(
            f"nn.MultiheadAttention with kdim={m.kdim}, vdim={m.vdim} != embed_dim={m.embed_dim} is "
            f"cross-attention: W_K W_Q^T is not a square bilinear form of one token stream"
        )
    notes = _biases_note(bs)
    if m.bias_k is not None:
        notes.append("the extra key/value bias tokens (add_bias_kv)")
    return HeadWeights(
        q=q,
        k=k,
        v=v,
        o=_out_heads(m.out_proj.weight, heads),
        b_q=bs[0],
        b_k=bs[1],
        b_v=bs[2],
        b_o=None if m.out_proj.bias is None else m.out_proj.bias.detach(),
        layout="torch-mha",
        kv_heads=heads,
        leaves_out=tuple(notes),
    )


#: every supported layout, first match wins
LAYOUTS: tuple[Layout, ...] = (
    Layout(
        "rankbook",
        "rankbook's ViT and GPT: w_q/w_k/w_v/w_o [heads, d_model, d_head]",
        _matches_rankbook,
        _rankbook,
    ),
    Layout(
        "bert",
        "BERT-style encoders and HF ViT 4.x: (self|attention).query/key/value + output.dense",
        _matches_bert,
        _bert,
    ),
    Layout(
        "llama",
        "q_proj/k_proj/v_proj/o_proj: LLaMA family with grouped-query attention, HF ViT 5.x",
        _matches_qkvo,
        _qkvo,
    ),
    Layout("gpt2", "HF GPT-2: Conv1D c_attn [d, 3d] (Q, K, V column blocks) + c_proj", _matches_gpt2, _gpt2),
    Layout("timm", "timm VisionTransformer: fused qkv Linear [3d, d] + proj", _matches_timm, _timm),
    Layout(
        "torch-mha",
        "torch.nn.MultiheadAttention (in_proj_weight or q/k/v_proj_weight) and nn.TransformerEncoderLayer",
        _matches_mha,
        _mha,
    ),
)


def supported() -> str:
    """The supported layouts, one a line, and how to add one (for error messages)."""
    lines = [f"  {layout.name}: {layout.reads}" for layout in LAYOUTS]
    return (
        "supported layouts:\n" + "\n".join(lines) + "\nto add one: a function in "
        "rankbook/inspect/layouts.py registered in LAYOUTS, pinned by a test in tests/test_inspect.py "
        "(see the module's docstring)"
    )


def find_layout(module: nn.Module) -> Layout | None:
    return next((layout for layout in LAYOUTS if layout.matches(module)), None)


def attention_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module, Layout]]:
    """Every attention module of ``model`` in order, with its layout (children of a match are skipped)."""
    matched: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in matched):
            continue
        layout = find_layout(module)
        if layout is not None:
            matched.append(name)
            yield name, module, layout


def layers(model: nn.Module) -> Iterator[tuple[str, HeadWeights]]:
    """``(module name, HeadWeights)`` per attention layer, one at a time; UnsupportedModelError if none."""
    found = False
    for name, module, layout in attention_modules(model):
        found = True
        yield name, layout.extract(module)
    if not found:
        raise UnsupportedModelError(
            f"no attention module of a known layout in {type(model).__name__}.\n{supported()}"
        )


#: the test of tests/test_inspect.py that pins each layout against its library's logits and outputs
PINNED_BY = {
    "rankbook": "test_rankbook_models",
    "bert": "test_hf_bert, test_planted_update_is_recovered_in_its_head_only[bert]",
    "llama": "test_hf_llama_grouped_query_attention, test_hf_vit, test_planted_update_…[llama]",
    "gpt2": "test_hf_gpt2_conv1d_fused, test_planted_update_…[gpt2], test_command_on_two_hf_folders",
    "timm": "test_timm_vit_fused_qkv, test_planted_update_…[timm]",
    "torch-mha": "test_torch_multihead_attention_in_proj, test_torch_transformer_encoder_layer",
}


def layout_rows() -> list[dict[str, str]]:
    """One row per supported layout: its name, what it reads, the test that pins it (for chapter 09)."""
    return [{"layout": layout.name, "reads": layout.reads, "pinned by (tests/test_inspect.py)":
             PINNED_BY[layout.name]} for layout in LAYOUTS]
