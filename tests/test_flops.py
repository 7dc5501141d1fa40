"""Tests for `pytest_greennlp.measure.flops`: exact counts against analytic formulas."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch import nn
from torch.nn import functional as F
from torch.utils import flop_counter

from pytest_greennlp.errors import ConfigError, MeasurementError
from pytest_greennlp.measure import flops
from pytest_greennlp.measure.flops import (
    FLOP_CONVENTION,
    FlopCount,
    count_flops,
    extra_flop_formulas,
)

FUSED_CPU_OPS = (
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward,
)

# The small BERT: 2 layers, hidden 64, 4 heads, intermediate 128; batch 2, length 16.
LAYERS, HIDDEN, HEADS, INTERMEDIATE = 2, 64, 4, 128
BATCH, LENGTH = 2, 16


def bert_analytic(*, fused_backward: bool) -> dict[str, int]:
    """Analytic FLOPs of the small BERT, convention 1 multiply-add = 2 FLOPs.

    Per layer: Q, K, V and output projections ``4 * 2*B*L*H*H``, feed-forward
    ``2 * 2*B*L*H*I``, attention products ``Q K^T`` and ``P V`` ``2 * 2*B*L*L*H``
    (summed over heads). Pooler ``2*B*H*H``. Torch counts nothing else: embeddings,
    LayerNorm, softmax, GELU and bias adds count 0 (``addmm`` counts its product only),
    so the count is exact.

    Backward of ``last_hidden_state.sum()``: the pooler is not in the graph; each
    projection costs twice its forward (input grad and weight grad); attention costs
    four products (2x forward) on the unfused path and five (2.5x forward) through the
    fused kernel, which recomputes ``Q K^T`` first.
    """
    b, seq, h, i = BATCH, LENGTH, HIDDEN, INTERMEDIATE
    layer_linear = 4 * 2 * b * seq * h * h + 2 * 2 * b * seq * h * i
    layer_attention = 2 * 2 * b * seq * seq * h
    pooler = 2 * b * h * h
    attention_backward = (5 if fused_backward else 4) * layer_attention // 2
    return {
        "layer": layer_linear + layer_attention,
        "layer_attention": layer_attention,
        "pooler": pooler,
        "forward": LAYERS * (layer_linear + layer_attention) + pooler,
        "backward": LAYERS * (2 * layer_linear + attention_backward),
    }


@pytest.fixture(scope="module")
def make_bert() -> Any:
    """Build (once per implementation) a random-init BertModel, in eval mode."""
    transformers = pytest.importorskip("transformers")
    models: dict[str, Any] = {}

    def make(attn_implementation: str = "sdpa") -> Any:
        if attn_implementation not in models:
            torch.manual_seed(0)
            config = transformers.BertConfig(
                num_hidden_layers=LAYERS,
                hidden_size=HIDDEN,
                num_attention_heads=HEADS,
                intermediate_size=INTERMEDIATE,
                vocab_size=100,
                max_position_embeddings=LENGTH,
                attn_implementation=attn_implementation,
            )
            models[attn_implementation] = transformers.BertModel(config)
        return models[attn_implementation].eval()

    return make


@pytest.fixture
def bert(make_bert: Any) -> Any:
    """The SDPA BertModel in eval mode: attention runs the fused CPU kernel."""
    return make_bert("sdpa")


def bert_inputs(*, mask: bool) -> dict[str, Any]:
    inputs: dict[str, Any] = {"input_ids": torch.randint(0, 100, (BATCH, LENGTH))}
    if mask:
        attention_mask = torch.ones(BATCH, LENGTH, dtype=torch.long)
        attention_mask[1, LENGTH // 2 :] = 0
        inputs["attention_mask"] = attention_mask
    return inputs


def uses_fused_kernel(bert: Any) -> bool:
    """SDPA without dropout runs the fused CPU kernel; dropout or eager runs bmm."""
    return bool(bert.config._attn_implementation == "sdpa" and not bert.training)


class Attention(nn.Module):
    """Bare ``scaled_dot_product_attention`` with fixed keyword arguments."""

    def __init__(self, kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.kwargs = kwargs or {}

    def forward(self, q: Any, k: Any, v: Any) -> Any:
        return F.scaled_dot_product_attention(q, k, v, **self.kwargs)


# A single linear layer.


def test_linear_forward_is_exact() -> None:
    count = count_flops(nn.Linear(8, 4), torch.randn(3, 8))

    assert count.forward == 2 * 8 * 4 * 3
    assert count.backward == 0
    assert count.total == count.forward
    assert count.by_module["Global"] == count.forward
    assert count.by_module["Linear"] == count.forward
    assert count.convention == FLOP_CONVENTION == "1 multiply-add = 2 FLOPs"


def test_linear_backward_counts_weight_and_input_grads() -> None:
    x = torch.randn(3, 8, requires_grad=True)

    count = count_flops(nn.Linear(8, 4), x, backward=True)

    assert count.forward == 2 * 8 * 4 * 3
    assert count.backward == 2 * count.forward  # grad weight + grad input
    assert count.total == 3 * count.forward
    assert x.grad is None


def test_linear_backward_without_input_grad_counts_weight_grad_only() -> None:
    count = count_flops(nn.Linear(8, 4), torch.randn(3, 8), backward=True)

    assert count.backward == count.forward


# BERT against the analytic count.


@pytest.mark.parametrize(
    ("attn_implementation", "train", "mask"),
    [
        ("sdpa", False, False),
        ("sdpa", False, True),
        ("sdpa", True, True),  # dropout: the unfused path
        ("eager", False, True),
    ],
    ids=["sdpa-eval", "sdpa-eval-mask", "sdpa-train-mask", "eager-eval-mask"],
)
def test_bert_forward_and_backward_match_analytic(
    make_bert: Any, attn_implementation: str, train: bool, mask: bool
) -> None:
    bert = make_bert(attn_implementation).train(train)
    try:
        count = count_flops(bert, bert_inputs(mask=mask), backward=True)
        expected = bert_analytic(fused_backward=uses_fused_kernel(bert))
    finally:
        bert.eval()

    assert count.forward == expected["forward"]
    assert count.backward == expected["backward"]
    assert count.total == expected["forward"] + expected["backward"]


def test_bert_forward_only_matches_analytic(bert: Any) -> None:
    count = count_flops(bert, bert_inputs(mask=True))

    assert count.forward == bert_analytic(fused_backward=True)["forward"]
    assert count.backward == 0


def test_bert_by_module_has_per_layer_counts(bert: Any) -> None:
    count = count_flops(bert, bert_inputs(mask=False))
    expected = bert_analytic(fused_backward=True)
    layers = [count.by_module[f"BertModel.encoder.layer.{i}"] for i in range(LAYERS)]

    assert layers == [expected["layer"]] * LAYERS
    assert count.by_module["BertModel.encoder.layer.0.attention.self"] == (
        3 * 2 * BATCH * LENGTH * HIDDEN * HIDDEN + expected["layer_attention"]
    )
    assert count.by_module["BertModel.pooler"] == expected["pooler"]
    assert count.by_module["BertModel.encoder"] == sum(layers)
    assert count.by_module["Global"] == count.by_module["BertModel"] == count.forward
    assert sum(layers) + count.by_module["BertModel.pooler"] == count.forward


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_bert_counting_leaves_grads_and_mode_alone(bert: Any, train: bool) -> None:
    bert.train(train)
    try:
        before = {name: p.detach().clone() for name, p in bert.named_parameters()}
        word_embeddings = bert.embeddings.word_embeddings.weight
        existing = torch.full_like(word_embeddings, 3.0)
        word_embeddings.grad = existing

        count_flops(bert, bert_inputs(mask=True), backward=True)

        assert bert.training is train
        assert all(module.training is train for module in bert.modules())
        assert word_embeddings.grad is existing
        assert torch.equal(existing, torch.full_like(word_embeddings, 3.0))
        others = [p.grad for p in bert.parameters() if p is not word_embeddings]
        assert all(grad is None for grad in others)
        after = dict(bert.named_parameters())
        assert all(torch.equal(before[name], after[name]) for name in before)
    finally:
        word_embeddings.grad = None
        bert.eval()


def test_bert_without_our_formulas_misses_exactly_the_fused_attention(bert: Any) -> None:
    inputs = bert_inputs(mask=True)

    ours = count_flops(bert, inputs, backward=True)
    plain = count_flops(bert, inputs, backward=True, fill_gaps=False)
    expected = bert_analytic(fused_backward=True)

    assert ours.forward == expected["forward"]
    assert ours.backward == expected["backward"]
    if all(op not in flop_counter.flop_registry for op in FUSED_CPU_OPS):
        # This torch counts 0 for the fused CPU kernel: only our formulas close the gap.
        assert plain.forward == expected["forward"] - LAYERS * expected["layer_attention"]
        assert (
            plain.backward == expected["backward"] - LAYERS * 5 * expected["layer_attention"] // 2
        )
        assert "_scaled_dot_product_flash_attention_for_cpu" in ours.method
    assert "greennlp" not in plain.method


def test_hugging_face_classifier_with_labels() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        num_hidden_layers=1,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=50,
        max_position_embeddings=8,
        num_labels=3,
    )
    model = transformers.BertForSequenceClassification(config).eval()
    ids = torch.randint(0, 50, (2, 8))

    with_labels = count_flops(
        model, {"input_ids": ids, "labels": torch.tensor([0, 2])}, backward=True
    )
    logits_sum = count_flops(model, {"input_ids": ids}, backward=True)

    # `.loss` (cross-entropy) and the logits' sum both reach the classifier and pooler,
    # and neither adds a counted operator, so both passes match.
    assert with_labels.forward == logits_sum.forward > 0
    assert with_labels.backward == logits_sum.backward > 0
    assert with_labels.by_module["BertForSequenceClassification.classifier"] == 2 * 2 * 32 * 3


# The fused attention formulas themselves.


@pytest.mark.parametrize(
    ("q_shape", "kv_shape", "kwargs"),
    [
        ((2, 4, 16, 8), (2, 4, 12, 8), {}),
        ((2, 4, 16, 8), (2, 4, 12, 8), {"attn_mask": torch.zeros(2, 1, 16, 12)}),
        ((2, 4, 16, 8), (2, 4, 16, 8), {"is_causal": True}),
        ((2, 4, 16, 8), (2, 2, 12, 8), {"enable_gqa": True}),
    ],
    ids=["cross", "mask", "causal", "gqa"],
)
def test_fused_attention_formula_uses_schema_shapes(
    q_shape: tuple[int, ...], kv_shape: tuple[int, ...], kwargs: dict[str, Any]
) -> None:
    b, h, seq_q, e = q_shape
    seq_k = kv_shape[2]
    q = torch.randn(q_shape, requires_grad=True)
    k = torch.randn(kv_shape, requires_grad=True)
    v = torch.randn(kv_shape, requires_grad=True)
    product = 2 * b * h * seq_q * seq_k * e  # one (L, E) @ (E, S) product per head

    count = count_flops(Attention(kwargs), (q, k, v), backward=True)

    assert count.forward == 2 * product  # Q K^T and P V; causal and masks count in full
    assert count.backward == 5 * product  # recompute Q K^T, then dS, dV, dQ, dK
    assert q.grad is None and k.grad is None and v.grad is None


def test_extra_formulas_cover_only_what_torch_lacks() -> None:
    mapping = extra_flop_formulas()

    registry = dict(flop_counter.flop_registry)
    q, k, v = (torch.randn(1, 2, 6, 4, requires_grad=True) for _ in range(3))

    count_flops(Attention(), (q, k, v), backward=True)

    for op in FUSED_CPU_OPS:
        assert (op in mapping) != (op in flop_counter.flop_registry)
    assert not set(mapping) & set(flop_counter.flop_registry)
    assert flop_counter.flop_registry == registry  # torch's global registry is untouched


@pytest.mark.parametrize(
    "shapes",
    [((2, 4, 16, 8), (2, 4, 12, 8), (2, 4, 12, 6)), ((1, 8, 5, 4), (1, 2, 7, 4), (1, 2, 7, 3))],
)
def test_fallback_formulas_match_torch_helpers(shapes: tuple[tuple[int, ...], ...]) -> None:
    q_shape, _, v_shape = shapes
    grad_out_shape = (*q_shape[:3], v_shape[3])

    forward = flop_counter.sdpa_flop_count(*shapes)  # type: ignore[no-untyped-call]
    backward = flop_counter.sdpa_backward_flop_count(  # type: ignore[no-untyped-call]
        grad_out_shape, *shapes
    )

    assert flops._sdpa_flop_count_fallback(*shapes) == forward
    assert flops._sdpa_backward_flop_count_fallback(grad_out_shape, *shapes) == backward


def test_counts_without_torch_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    q, k, v = (torch.randn(1, 2, 6, 4, requires_grad=True) for _ in range(3))
    expected = count_flops(Attention(), (q, k, v), backward=True)
    monkeypatch.delattr(flop_counter, "sdpa_flop_count")
    monkeypatch.delattr(flop_counter, "sdpa_backward_flop_count")

    assert count_flops(Attention(), (q, k, v), backward=True) == expected


def test_transformer_encoder_fast_path_is_counted() -> None:
    d, heads, ff, b, seq = 32, 4, 64, 2, 10
    layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True).eval()
    x = torch.randn(b, seq, d)
    analytic = (
        2 * b * seq * d * 3 * d  # packed Q, K, V projection
        + 2 * 2 * b * seq * seq * d  # Q K^T and P V over all heads
        + 2 * b * seq * d * d  # output projection
        + 2 * 2 * b * seq * d * ff  # feed-forward
    )
    enabled = torch.backends.mha.get_fastpath_enabled()

    ours = count_flops(layer, x)
    plain = count_flops(layer, x, fill_gaps=False)

    assert ours.forward == analytic
    assert plain.forward == 0  # the fused fast path has no formula in torch
    assert torch.backends.mha.get_fastpath_enabled() == enabled


# Inputs, losses and model state.


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(8, 4)
        self.second = nn.Linear(6, 4)

    def forward(self, x: Any, y: Any = None) -> Any:
        out = self.first(x)
        return out if y is None else out + self.second(y)


@pytest.mark.parametrize("form", ["tensor", "tuple", "list", "dict"])
def test_inputs_forms(form: str) -> None:
    x, y = torch.randn(3, 8), torch.randn(3, 6)
    inputs: Any = {
        "tensor": x,
        "tuple": (x, y),
        "list": [x, y],
        "dict": {"x": x, "y": y},
    }[form]

    count = count_flops(TwoInputs(), inputs)

    first, second = 2 * 3 * 8 * 4, 2 * 3 * 6 * 4
    assert count.forward == (first if form == "tensor" else first + second)
    assert count.by_module["TwoInputs.first"] == first


class Recorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.grad_enabled: list[bool] = []

    def forward(self, x: Any) -> Any:
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.linear(x)


def test_forward_only_runs_without_grad_and_backward_forces_grad() -> None:
    model = Recorder()

    count_flops(model, torch.randn(2, 4))
    with torch.no_grad():
        count = count_flops(model, torch.randn(2, 4), backward=True)

    assert model.grad_enabled == [False, True]
    assert count.backward == count.forward


def test_loss_fn_flops_count_as_forward() -> None:
    model, head = nn.Linear(8, 4), nn.Linear(4, 2)

    count = count_flops(
        model, torch.randn(3, 8), backward=True, loss_fn=lambda out: head(out).sum()
    )

    assert count.forward == 2 * 3 * 8 * 4 + 2 * 3 * 4 * 2
    assert count.backward == 2 * 3 * 8 * 4 + 2 * (2 * 3 * 4 * 2)  # model weight; head both
    assert head.weight.grad is None and model.weight.grad is None


class TwoHeads(nn.Module):
    def __init__(self, loss: bool) -> None:
        super().__init__()
        self.a, self.b, self.loss = nn.Linear(4, 4), nn.Linear(4, 4), loss

    def forward(self, x: Any) -> Any:
        loss = self.b(x).sum() if self.loss else None
        return types.SimpleNamespace(loss=loss, logits=self.a(x))


@pytest.mark.parametrize("loss", [True, False], ids=["loss", "loss-none"])
def test_loss_attribute_is_preferred_to_logits(loss: bool) -> None:
    model = TwoHeads(loss)

    count = count_flops(model, torch.randn(2, 4), backward=True)

    product = 2 * 2 * 4 * 4
    assert count.forward == (2 if loss else 1) * product
    assert count.backward == product  # weight grad of `b` (loss) or of `a` (logits)
    assert count.by_module[f"TwoHeads.{'b' if loss else 'a'}"] == product


def test_first_tensor_of_nested_outputs_is_used() -> None:
    class Nested(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x: Any) -> Any:
            return ({"hidden": self.a(x)}, self.b(x.detach()))

    count = count_flops(Nested(), torch.randn(2, 4), backward=True)

    assert count.forward == 2 * (2 * 2 * 4 * 4)
    assert count.backward == 2 * 2 * 4 * 4  # only `a` is in the loss


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_buffers_rng_and_grads_are_restored(train: bool) -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))
    model.train(train)
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    model[0].weight.grad = existing = torch.ones_like(model[0].weight)
    x = torch.randn(5, 4)
    rng = torch.get_rng_state()

    count_flops(model, x, backward=True)

    assert model.training is train
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(b, buffers[name]) for name, b in model.named_buffers())
    assert model[0].weight.grad is existing
    assert torch.equal(existing, torch.ones_like(existing))
    assert model[3].weight.grad is None


# Errors and the record.


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": nn.Linear(2, 2), "inputs": 3}, "inputs must be a tensor.*got int"),
        ({"model": lambda x: x, "inputs": torch.ones(1)}, "model must be a torch.nn.Module"),
        (
            {"model": nn.Linear(2, 2), "inputs": torch.ones(1, 2), "loss_fn": lambda o: o.sum()},
            "loss_fn is only used with backward=True",
        ),
        (
            {"model": nn.Linear(2, 2), "inputs": torch.ones(1, 2), "backward": True, "loss_fn": 1},
            "loss_fn must be callable or None; got int",
        ),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        count_flops(**kwargs)
    assert "\n" not in str(info.value)


class Failing(nn.Module):
    def forward(self, x: Any) -> Any:
        raise ValueError("shape mismatch\nsecond line of detail")


@pytest.mark.parametrize(
    ("model", "kwargs", "match"),
    [
        (Failing(), {}, "forward pass of Failing failed: ValueError: shape mismatch$"),
        (nn.Linear(2, 3), {"loss_fn": lambda o: o}, r"one-element tensor.*got \(4, 3\)"),
        (nn.Linear(2, 3).requires_grad_(False), {}, "require grad"),
        (nn.Flatten(0), {"loss_fn": lambda o: 1.0}, "one-element tensor.*got float"),
    ],
)
def test_measurement_failures_raise_one_line(
    model: nn.Module, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(MeasurementError, match=match) as info:
        count_flops(model, torch.ones(4, 2), backward=True, **kwargs)
    assert "\n" not in str(info.value)


def test_output_without_tensor_raises() -> None:
    class Words(nn.Module):
        def forward(self, x: Any) -> Any:
            return {"label": "positive"}

    with pytest.raises(MeasurementError, match="tensor in the model output; got dict"):
        count_flops(Words(), torch.ones(1), backward=True)


def test_flop_count_record() -> None:
    count = FlopCount(forward=10, backward=20, by_module={"Global": 10}, method="m")

    assert count.total == 30
    assert dataclasses.asdict(count) == {
        "forward": 10,
        "backward": 20,
        "by_module": {"Global": 10},
        "method": "m",
        "convention": "1 multiply-add = 2 FLOPs",
        "total": 30,
    }
    assert hash(count) == hash(dataclasses.replace(count, by_module={}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        count.forward = 1  # type: ignore[misc]
    with pytest.raises(MeasurementError, match="backward FLOPs must be a non-negative int"):
        FlopCount(forward=1, backward=-1, by_module={}, method="m")


def test_importing_the_module_does_not_import_torch() -> None:
    code = "import sys, pytest_greennlp.measure.flops; sys.exit('torch' in sys.modules)"

    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
