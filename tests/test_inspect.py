"""rankbook.inspect: every layout against its library's own pre-softmax scores and outputs; planted updates;
the ``inspect`` command on HF folders and state-dict files, and its errors.

Tiny randomly initialized models from configs (no downloads). Every parameter, biases included, is redrawn
at random so that a mis-sliced bias or weight cannot hide behind zeros or ones.
"""

from __future__ import annotations

import copy
import json
import math
from contextlib import contextmanager
from unittest import mock

import pytest
import torch
from torch import nn

from rankbook.inspect import cli as inspect_cli
from rankbook.inspect import compare, layouts, load

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")

D, HEADS, E = 32, 4, 8
TOL = 1e-5
VIT_ARCH = (f"rankbook-vit:image_size=8,patch_size=4,d_model={D},depth=2,heads={HEADS},d_head={E},mlp_dim=48,"
            "num_classes=3")


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model.eval()


@contextmanager
def captured_softmax():
    """Record the input of every softmax: the library's own logits (``F.softmax`` calls the Tensor method)."""
    seen: list[torch.Tensor] = []
    t_softmax = torch.Tensor.softmax

    def method(self, *args, **kwargs):
        seen.append(self.detach().clone())
        return t_softmax(self, *args, **kwargs)

    with mock.patch.object(torch.Tensor, "softmax", method):
        yield seen


def run_with_hooks(model: nn.Module, call, output_of=lambda module: module):
    """Run ``call()``; return per attention module (in order): its input tokens, kwargs, output (of
    ``output_of(module)``: BERT adds the residual and a LayerNorm after its output projection), and the
    softmax inputs seen during the run."""
    records = []
    handles = []
    for _, module, _ in layouts.attention_modules(model):
        rec: dict = {}
        records.append(rec)

        def pre(mod, args, kwargs, rec=rec):
            rec["x"] = (args[0] if args else kwargs.get("hidden_states", kwargs.get("query"))).detach()
            rec["kwargs"] = kwargs

        def post(mod, args, kwargs, out, rec=rec):
            rec["out"] = (out[0] if isinstance(out, tuple) else out).detach()

        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(output_of(module).register_forward_hook(post, with_kwargs=True))
    try:
        with captured_softmax() as seen:
            call()
    finally:
        for h in handles:
            h.remove()
    return records, seen


def heads_from(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """``X W^h (+ b^h)`` for every head: ``[batch, heads, tokens, d_head]``."""
    out = torch.einsum("bnd,hde->bhne", x.double(), w.double())
    return out if b is None else out + b.double()[None, :, None, :]


def check_layer(x, w: layouts.HeadWeights, scores, out, causal=False, rotary=None):
    """Logits and output of one layer recomputed from the extracted weights equal the library's."""
    q, k = heads_from(x, w.q, w.b_q), heads_from(x, w.k, w.b_k)
    if rotary is not None:
        q, k = rotary(q, k)
    logits = q @ k.transpose(-1, -2) / math.sqrt(w.d_head)
    n = x.shape[1]
    keep = torch.ones(n, n, dtype=torch.bool).tril() if causal else torch.ones(n, n, dtype=torch.bool)
    if scores is not None:
        scores = scores.double().reshape(logits.shape)
        assert (scores - logits)[..., keep].abs().max() < TOL
    probs = logits.masked_fill(~keep, -math.inf).softmax(-1)
    mixed = torch.einsum("bhnm,bhme,hde->bnd", probs, heads_from(x, w.v, w.b_v), w.o.double())
    if w.b_o is not None:
        mixed = mixed + w.b_o.double()
    assert (mixed - out.double()).abs().max() < TOL


def check_model(model, call, causal=False, rotary=None, with_scores=True, output_of=lambda module: module):
    records, seen = run_with_hooks(model, call, output_of)
    extracted = list(layouts.layers(model))
    assert len(extracted) == len(records) >= 2
    if with_scores:
        assert len(seen) == len(records), "one softmax per layer expected (eager attention)"
    for i, ((_, w), rec) in enumerate(zip(extracted, records)):
        assert w.q.shape[0] == w.k.shape[0] == w.v.shape[0] == w.o.shape[0]
        rot = None if rotary is None else (lambda q, k, rec=rec: rotary(q, k, rec["kwargs"]))
        check_layer(rec["x"], w, seen[i] if with_scores else None, rec["out"], causal, rot)
    return [w for _, w in extracted]


# ---- models of every supported layout ------------------------------------------------------------------


def hf_gpt2(layers=2):
    cfg = transformers.GPT2Config(
        n_embd=D,
        n_layer=layers,
        n_head=HEADS,
        n_positions=16,
        vocab_size=50,
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation="eager",
    )
    return randomize(transformers.GPT2Model(cfg))


def hf_vit():
    cfg = transformers.ViTConfig(
        hidden_size=D,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        intermediate_size=48,
        image_size=8,
        patch_size=4,
        attn_implementation="eager",
    )
    return randomize(transformers.ViTModel(cfg, add_pooling_layer=False))


def hf_bert():
    cfg = transformers.BertConfig(
        hidden_size=D,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        intermediate_size=48,
        vocab_size=50,
        max_position_embeddings=16,
        attn_implementation="eager",
    )
    return randomize(transformers.BertModel(cfg, add_pooling_layer=False))


def hf_llama(kv_heads=2):
    cfg = transformers.LlamaConfig(
        hidden_size=D,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        num_key_value_heads=kv_heads,
        intermediate_size=48,
        vocab_size=50,
        attention_bias=True,
        attn_implementation="eager",
    )
    return randomize(transformers.LlamaModel(cfg))


def llama_rotary(q, k, kwargs):
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    cos, sin = kwargs["position_embeddings"]
    return apply_rotary_pos_emb(q, k, cos.double(), sin.double())


def timm_vit():
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=8, patch_size=4, embed_dim=D, depth=2, num_heads=HEADS, num_classes=3, qkv_bias=True
    )
    for block in model.blocks:
        block.attn.fused_attn = False  # timm's explicit path calls softmax, which the test captures
    return randomize(model)


def rankbook_vit():
    from rankbook.models.vit import ViT, ViTConfig

    return randomize(
        ViT(
            ViTConfig(
                image_size=8,
                patch_size=4,
                d_model=D,
                depth=2,
                heads=HEADS,
                d_head=E,
                mlp_dim=48,
                num_classes=3,
            )
        )
    )


def rankbook_gpt():
    from rankbook.models.gpt import GPT, GPTConfig

    return randomize(
        GPT(GPTConfig(vocab_size=50, context=16, d_model=D, depth=2, heads=HEADS, d_head=E, mlp_dim=48))
    )


def tokens(seed=1, n=7):
    return torch.randint(0, 50, (2, n), generator=torch.Generator().manual_seed(seed))


def pixels(seed=1):
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


# ---- logits and outputs, layout by layout --------------------------------------------------------------


def test_hf_gpt2_conv1d_fused():
    model = hf_gpt2()
    ws = check_model(model, lambda: model(tokens()), causal=True)
    assert ws[0].layout == "gpt2" and "biases" in ws[0].leaves_out[0]


def test_hf_vit():
    model = hf_vit()
    ws = check_model(model, lambda: model(pixels()))
    assert ws[0].q.shape == (HEADS, D, E)


def test_hf_bert():
    model = hf_bert()
    ws = check_model(model, lambda: model(tokens()), output_of=lambda module: module.output.dense)
    assert ws[0].layout == "bert"


def test_hf_llama_grouped_query_attention():
    model = hf_llama(kv_heads=2)
    ws = check_model(model, lambda: model(tokens()), causal=True, rotary=llama_rotary)
    assert ws[0].kv_heads == 2 and ws[0].heads == HEADS
    assert torch.equal(ws[0].k[0], ws[0].k[1]) and not torch.equal(ws[0].k[1], ws[0].k[2])  # h // 2
    assert any("rotary" in note for note in ws[0].leaves_out)


def test_timm_vit_fused_qkv():
    model = timm_vit()
    assert check_model(model, lambda: model(pixels()))[0].layout == "timm"


def test_torch_multihead_attention_in_proj():
    torch.manual_seed(0)
    mha = randomize(nn.ModuleList([nn.MultiheadAttention(D, HEADS, batch_first=True) for _ in range(2)]))
    x = torch.randn(2, 6, D)
    check_model(mha, lambda: [m(x, x, x, need_weights=True, average_attn_weights=False) for m in mha])


def test_torch_multihead_attention_separate_projections_are_cross_attention():
    # torch keeps q/k/v_proj_weight apart only when kdim/vdim differ from embed_dim: the layout reads them
    # and refuses, because W_K W_Q^T is then not a bilinear form of one token stream
    mha = nn.MultiheadAttention(D, HEADS, batch_first=True, kdim=D + 8, vdim=D + 8)
    assert mha.in_proj_weight is None and mha.q_proj_weight is not None
    with pytest.raises(layouts.UnsupportedModelError, match="cross-attention"):
        list(layouts.layers(mha))


def test_torch_transformer_encoder_layer():
    layer = nn.TransformerEncoderLayer(D, HEADS, dim_feedforward=48, dropout=0.0, batch_first=True)
    model = randomize(nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False))
    x = torch.randn(2, 6, D)
    ws = check_model(model, lambda: model(x), with_scores=False)  # the encoder asks for no weights: SDPA
    assert [w.layout for w in ws] == ["torch-mha"] * 2


def test_rankbook_models():
    vit, gpt = rankbook_vit(), rankbook_gpt()
    records, _ = run_with_hooks(vit, lambda: vit(pixels()))
    for rec, (_, module, _), (_, w) in zip(records, layouts.attention_modules(vit), layouts.layers(vit)):
        check_layer(rec["x"], w, module.logits(rec["x"]), rec["out"])
    records, _ = run_with_hooks(gpt, lambda: gpt(tokens()))
    for rec, (_, module, _), (_, w) in zip(records, layouts.attention_modules(gpt), layouts.layers(gpt)):
        check_layer(rec["x"], w, module.logits(rec["x"]), rec["out"], causal=True)


def test_unknown_model_lists_the_layouts():
    with pytest.raises(layouts.UnsupportedModelError, match="supported layouts:(.|\n)*gpt2(.|\n)*to add one"):
        list(layouts.layers(nn.Sequential(nn.Linear(4, 4))))


# ---- a planted update of known rank --------------------------------------------------------------------


def plant(model, where, head, rank, seed=3):
    """Add a rank-``rank`` update to one head's native slice; ``where`` returns (tensor, index of that head's
    W_Q block, index of its W_O block), sliced the library's way (written out here, independently)."""
    gen = torch.Generator().manual_seed(seed)
    after = copy.deepcopy(model)
    with torch.no_grad():
        for tensor, index in where(after, head):
            block = tensor[index]
            update = torch.randn(block.shape[0], rank, generator=gen) @ torch.randn(
                rank, block.shape[1], generator=gen
            )
            tensor[index] += update
    return after


PLANTS = {
    # Conv1D c_attn [d, 3d]: head h's W_Q is columns h·e..; c_proj [d, d]: head h's output is rows h·e..
    "gpt2": (
        hf_gpt2,
        lambda m, h: [
            (m.h[1].attn.c_attn.weight.data, (slice(None), slice(h * E, (h + 1) * E))),
            (m.h[1].attn.c_proj.weight.data, (slice(h * E, (h + 1) * E), slice(None))),
        ],
    ),
    # fused qkv Linear [3d, d]: head h's W_Q is rows h·e..; proj Linear [d, d]: columns h·e..
    "timm": (
        timm_vit,
        lambda m, h: [
            (m.blocks[1].attn.qkv.weight.data, (slice(h * E, (h + 1) * E), slice(None))),
            (m.blocks[1].attn.proj.weight.data, (slice(None), slice(h * E, (h + 1) * E))),
        ],
    ),
    "llama": (
        hf_llama,
        lambda m, h: [
            (m.layers[1].self_attn.q_proj.weight.data, (slice(h * E, (h + 1) * E), slice(None))),
            (m.layers[1].self_attn.o_proj.weight.data, (slice(None), slice(h * E, (h + 1) * E))),
        ],
    ),
    "bert": (
        hf_bert,
        lambda m, h: [
            (m.encoder.layer[1].attention.self.query.weight.data, (slice(h * E, (h + 1) * E), slice(None))),
            (m.encoder.layer[1].attention.output.dense.weight.data, (slice(None), slice(h * E, (h + 1) * E))),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(PLANTS))
def test_planted_update_is_recovered_in_its_head_only(name):
    build, where = PLANTS[name]
    before = build().double()  # float64: the planted sum is exact to 1e-16, so "exactly rank r" is sharp
    head, rank = 2, 3
    after = plant(before, where, head, rank)
    result = compare.compare(before, after)
    for rec in result.heads:
        svals = torch.tensor(rec["singular_values"])
        if rec["layer"] == 1 and rec["head"] == head:
            assert svals[rank - 1] > 1e-3 * svals[0], (rec["kind"], svals)  # exactly `rank` non-zero
            # the factored eigensolve resolves σ/σ_1 to ~1e-8 (rankbook.analysis.spectra)
            assert svals[rank:].max() < 1e-6 * svals[0], (rec["kind"], svals)
        else:
            assert rec["stable_rank"] is None and svals.abs().max() == 0, (
                rec["layer"],
                rec["head"],
                rec["kind"],
            )


def test_planted_update_matches_the_dense_difference():
    before = rankbook_vit()
    after = copy.deepcopy(before)
    with torch.no_grad():
        after.blocks[0].attn.w_v[1] += torch.randn(D, 1) @ torch.randn(1, E)
    result = compare.compare(before, after)
    rec = next(r for r in result.heads if (r["layer"], r["head"], r["kind"]) == (0, 1, "vo"))
    dense = (
        after.blocks[0].attn.w_v[1] @ after.blocks[0].attn.w_o[1].T
        - before.blocks[0].attn.w_v[1] @ before.blocks[0].attn.w_o[1].T
    ).double()
    expected = torch.linalg.svdvals(dense)[: len(rec["singular_values"])]
    assert torch.allclose(torch.tensor(rec["singular_values"], dtype=torch.float64), expected, atol=1e-6)
    assert rec["stable_rank"] == pytest.approx(1.0)
    assert result.null and compare.format_table(result).count("\n") >= 3


def test_architectures_that_differ_name_the_parameter():
    with pytest.raises(compare.ArchitectureMismatchError, match=r"h\.2\.ln_1\.weight .* missing"):
        compare.compare(hf_gpt2(layers=3), hf_gpt2(layers=2))


# ---- the command ---------------------------------------------------------------------------------------


def test_command_on_two_hf_folders(tmp_path, capsys):
    before = hf_gpt2()
    after = plant(before, PLANTS["gpt2"][1], head=1, rank=2)
    before.save_pretrained(tmp_path / "a")
    after.save_pretrained(tmp_path / "b")
    out = tmp_path / "spectra.json"
    fig = tmp_path / "fig.png"
    assert (
        inspect_cli.main(
            ["inspect", str(tmp_path / "a"), str(tmp_path / "b"), "--json", str(out), "--figure", str(fig)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "stable rank" in printed and "leave out" in printed and fig.stat().st_size > 1000
    data = json.loads(out.read_text())
    assert len(data["heads"]) == 2 * 2 * HEADS
    first = data["heads"][0]
    assert set(first) >= {"layer", "head", "kind", "stable_rank", "singular_values"}
    moved = [(h["layer"], h["head"], h["kind"]) for h in data["heads"] if h["stable_rank"] is not None]
    assert moved == [(1, 1, "qk"), (1, 1, "vo")]


def test_command_on_two_state_dict_files(tmp_path, capsys):
    from safetensors.torch import save_file

    before = rankbook_vit()
    after = copy.deepcopy(before)
    with torch.no_grad():
        after.blocks[1].attn.w_q[3] += 0.1
    save_file({k: v.contiguous() for k, v in before.state_dict().items()}, str(tmp_path / "a.safetensors"))
    torch.save(after.state_dict(), tmp_path / "b.pt")
    arch = VIT_ARCH
    out = tmp_path / "s.json"
    assert (
        inspect_cli.main(
            [
                "inspect",
                str(tmp_path / "a.safetensors"),
                str(tmp_path / "b.pt"),
                "--arch",
                arch,
                "--json",
                str(out),
            ]
        )
        == 0
    )
    heads = json.loads(out.read_text())["heads"]
    moved = [(h["layer"], h["head"], h["kind"]) for h in heads if h["stable_rank"] is not None]
    assert moved == [(1, 3, "qk")]
    direct = compare.compare(before, after)
    assert heads[0]["singular_values"] == direct.heads[0]["singular_values"]


def run_cli(args, capsys):
    code = inspect_cli.main(["inspect", *map(str, args)])
    return code, capsys.readouterr().err


def test_command_errors(tmp_path, capsys):
    vit = rankbook_vit()
    good = tmp_path / "good.pt"
    torch.save(vit.state_dict(), good)
    arch = VIT_ARCH

    code, err = run_cli([tmp_path / "missing.pt", good, "--arch", arch], capsys)
    assert code == 2 and "missing.pt: no such file" in err and "Traceback" not in err

    code, err = run_cli([good, good, "--arch", "keras:resnet"], capsys)
    assert code == 2 and "unknown architecture 'keras'" in err and "rankbook-vit" in err

    code, err = run_cli([good, good], capsys)
    assert code == 2 and "--arch" in err and str(good) in err

    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00not a checkpoint" * 10)
    code, err = run_cli([good, corrupt, "--arch", arch], capsys)
    assert code == 2 and "corrupt.safetensors is not a readable checkpoint" in err

    code, err = run_cli([good, good, "--arch", arch.replace("depth=2", "depth=3")], capsys)
    assert code == 2 and "blocks.2" in err and "good.pt" in err

    code, err = run_cli([good, good, "--arch", arch.replace(f"d_model={D}", "d_model=16")], capsys)
    assert code == 2 and "in the file but" in err

    a, b = hf_gpt2(layers=2), hf_gpt2(layers=3)
    a.save_pretrained(tmp_path / "two")
    b.save_pretrained(tmp_path / "three")
    code, err = run_cli([tmp_path / "two", tmp_path / "three"], capsys)
    assert code == 2 and "h.2." in err and "not the same architecture" in err

    code, err = run_cli(["nobody/no-such-model", good], capsys)  # offline here: no network wait
    assert code == 2 and "nobody/no-such-model" in err

    code, err = run_cli([good, good, "--arch", arch, "--json", tmp_path / "no" / "x.json"], capsys)
    assert code == 2 and "its folder does not exist" in err


def test_arch_parsing():
    assert load.parse_arch("hf:gpt2:n_layer=2,n_embd=32") == ("hf", "gpt2", {"n_layer": 2, "n_embd": 32})
    assert load.parse_arch("rankbook-vit:depth=4") == ("rankbook-vit", None, {"depth": 4})
    with pytest.raises(load.InspectInputError, match="not key=value"):
        load.parse_arch("rankbook-vit:depth")


def test_hf_state_dict_with_task_prefix(tmp_path):
    cfg = transformers.ViTConfig(
        hidden_size=D,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        intermediate_size=48,
        image_size=8,
        patch_size=4,
        num_labels=3,
    )
    model = randomize(transformers.ViTForImageClassification(cfg))
    torch.save(model.state_dict(), tmp_path / "m.bin")
    arch = (f"hf:vit:hidden_size={D},num_hidden_layers=2,num_attention_heads={HEADS},intermediate_size=48,"
            "image_size=8,patch_size=4")
    loaded = load.load(str(tmp_path / "m.bin"), arch)
    got = list(layouts.layers(loaded))[1][1]
    want = list(layouts.layers(model))[1][1]
    assert torch.equal(got.q, want.q) and torch.equal(got.o, want.o)


def test_import_rankbook_inspect_is_light():
    import subprocess
    import sys

    code = (
        "import sys, rankbook, rankbook.inspect.compare, rankbook.inspect.layouts, rankbook.inspect.load; "
        "print(any(m in sys.modules for m in ('transformers', 'timm', 'safetensors')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_conversions_of_the_books_vit_compute_the_same_function():
    from rankbook.inspect import convert

    vit = rankbook_vit()
    x = pixels()
    hf, tv = convert.to_hf_vit(vit), convert.to_timm_vit(vit)
    with torch.no_grad():
        native = vit(x)
        assert (hf(pixel_values=x).logits - native).abs().max() < TOL
        assert (tv(x) - native).abs().max() < TOL
    after = copy.deepcopy(vit)
    with torch.no_grad():
        for p in after.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ref = compare.compare(vit, after)
    for other in (compare.compare(convert.to_hf_vit(vit), convert.to_hf_vit(after)),
                  compare.compare(convert.to_timm_vit(vit), convert.to_timm_vit(after))):
        for a, b in zip(ref.heads, other.heads):
            assert (a["layer"], a["head"], a["kind"]) == (b["layer"], b["head"], b["kind"])
            assert max(abs(u - v) for u, v in zip(a["singular_values"], b["singular_values"])) < 1e-6
