"""A multi-exit MiniLM-L6 on BBC News: one training run, a whole speed/accuracy curve.

``test_fine_tune`` fits exits after layers 1, 2, 4 and 6 on frozen features, then
fine-tunes everything jointly (sum of the exits' cross-entropies); its price tag is
the training cost. ``test_sweep`` calibrates each
exit on dev and records, from one all-exits pass over test, the accuracy and FLOPs
of every confidence threshold, the Pareto front, named operating points and the
measured speedup of real early exit at ``dev:within_1pt``: the fastest threshold
whose 95% upper bound on the accuracy drop from the full model, on dev, is within
1 point (chosen on dev, so the test figures are honest).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from pytest_greennlp.multiexit import (
    MultiExitModel,
    collect_exit_logits,
    fine_tune,
    fit_heads,
)


def train(bbc: dict[str, Any]) -> MultiExitModel:
    torch.manual_seed(0)
    model = MultiExitModel.from_encoder(
        bbc["model_dir"], len(bbc["label_names"]), exit_layers=(1, 2, 4, 6),
        label_names=bbc["label_names"],
    )
    fit_heads(model, bbc["train"])  # linear probe on frozen features first
    fine_tune(model, bbc["train"], epochs=1, batch_size=16, seed=0)
    return model


@pytest.mark.green_train
def test_fine_tune(green: Any, bbc: dict[str, Any], trained: dict[str, Any]) -> None:
    model = train(bbc)
    green.examples(len(bbc["train"]))
    batch = {**bbc["train"].batch(0, 16), "labels": torch.tensor(bbc["train"].labels[:16])}
    green.model(model, batch, backward=True, calls=-(-len(bbc["train"]) // 16))
    logits = collect_exit_logits(model, bbc["dev"])
    labels = np.asarray(bbc["dev"].labels)
    for e, layer in enumerate(model.exit_layers):
        accuracy = float(np.mean(logits[:, e].argmax(-1) == labels))
        green.metric(f"dev_accuracy_layer{layer}", accuracy)
    trained["model"] = model
    assert np.mean(logits[:, -1].argmax(-1) == labels) > 0.9


@pytest.mark.green_infer
def test_sweep(green: Any, bbc: dict[str, Any], trained: dict[str, Any]) -> None:
    model = trained["model"] if "model" in trained else train(bbc)
    result = green.sweep(
        model, bbc["test"], dev=bbc["dev"],
        measured_thresholds=("dev:within_1pt",), measure_batch_sizes=(1, 32),
        measure_examples=120,
    )
    green.examples(len(bbc["test"]))
    point = result.payload["operating_points"]["within_1pt"]  # read off test's own curve
    chosen = result.payload["dev_operating_points"]["points"]["dev:within_1pt"]
    green.metric("full_model_accuracy", result.sweep.full_model_accuracy)
    green.metric("accuracy_within_1pt", point["accuracy"])
    green.metric("flops_speedup_within_1pt", point["speedup"])
    green.metric("accuracy_dev_within_1pt", chosen["accuracy"])
    green.metric("flops_speedup_dev_within_1pt", chosen["speedup"])
    for e in range(len(model.exit_layers)):
        assert result.calibration.ece_after[e] <= result.calibration.ece_before[e] + 0.02
    assert point["speedup"] > 1.5  # topic classification is easy: most articles leave early
    assert chosen["dev_accuracy_drop_bound"] <= 0.01
