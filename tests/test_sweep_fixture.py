"""`green.sweep` under pytest --green: the curve lands in the test's record, and compare reads it."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

TEST_FILE = '''
import pytest, torch, transformers
from pytest_greennlp.multiexit import Examples, MultiExitModel

def tiny(seed):
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=4,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=64)
    model = MultiExitModel(transformers.BertModel(config).eval(), 3, (1, 2, 4))
    with torch.no_grad():
        for head in model.heads:
            head.classifier.weight.mul_(30.0)
    return model.eval()

def data(n, seed):
    g = torch.Generator().manual_seed(seed)
    ids = tuple(torch.randint(3, 60, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g)
                for _ in range(n))
    return Examples(ids, tuple(i % 3 for i in range(n)), 0)

@pytest.mark.green_infer(examples=12)
def test_sweep(green):
    result = green.sweep(tiny(0), data(12, 3), dev=data(12, 4), measured_thresholds=())
    assert len(result.sweep.thresholds) > 1
'''


def test_green_sweep_records_the_curve(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tiny=TEST_FILE)
    result = pytester.runpytest_subprocess("--green", "--green-energy", "none", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    report = json.loads((pytester.path / "green-report.json").read_text())
    test = report["tests"][0]
    sweep = test["extra"]["sweep"]
    assert sweep["exit_layers"] == [1, 2, 4]
    assert len(sweep["curve"]["accuracy"]) == len(sweep["curve"]["flops_per_example"]) > 1
    assert set(sweep["calibration"]) >= {"ece_before", "ece_after"}
    assert test["flops"]["forward"] > 0  # the all-exits pass is priced
    from pytest_greennlp.compare import compare_reports
    from pytest_greennlp.report import read_report

    same = read_report(pytester.path / "green-report.json")
    delta = compare_reports(same, same).tests[0].sweep
    assert delta is not None and delta.speedup_at_equal_accuracy == pytest.approx(1.0)


def test_green_sweep_without_green_still_sweeps(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tiny=TEST_FILE)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert not (pytester.path / "green-report.json").exists()
