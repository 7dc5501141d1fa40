"""The Hugging Face Trainer callback, in real pytest sessions run with `pytester`."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from pytest_greennlp.errors import ConfigError
from pytest_greennlp.hf import _CODECARBON, GreenCallback

#: A tiny model and data set: Linear(16, 3), 64 training and 32 evaluation examples,
#: batches of 8, so one micro-batch is 2 * 8 * 16 * 3 = 768 forward FLOPs and 768
#: backward FLOPs (the weight gradient; the inputs need none).
TINY = '''
import pytest
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

torch.manual_seed(0)


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(16, 3)

    def forward(self, x, labels=None):
        logits = self.linear(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
        return out


class Data(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 16, generator=g)
        self.y = (self.x[:, 0] > 0).long() + (self.x[:, 1] > 1).long()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def accuracy(pred):
    return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}


def make_trainer(tmp_path, callbacks=None, **overrides):
    options = dict(
        output_dir=str(tmp_path), num_train_epochs=2, per_device_train_batch_size=8,
        per_device_eval_batch_size=8, eval_strategy="epoch", report_to="none",
        logging_strategy="no", save_strategy="no", use_cpu=True, disable_tqdm=True,
        learning_rate=0.05, seed=3,
    )
    options.update(overrides)
    return Trainer(model=Tiny(), args=TrainingArguments(**options), train_dataset=Data(64, 0),
                   eval_dataset=Data(32, 1), compute_metrics=accuracy, callbacks=callbacks)
'''


@pytest.fixture
def report(pytester: pytest.Pytester) -> Any:
    def run(body: str, *args: str, passed: int) -> dict[str, Any]:
        pytester.makepyfile(tinymodel=TINY, test_trainer=body)
        # A subprocess: torch warns when its kernels are registered twice, which in-process
        # runs would do; -W error shows that greennlp's own warnings are never escalated.
        result = pytester.runpytest_subprocess("--green", "-p", "no:cacheprovider", "-W", "error", *args)
        result.assert_outcomes(passed=passed)
        data = json.loads((pytester.path / "green-report.json").read_text())
        run.result = result  # type: ignore[attr-defined]
        return {t["nodeid"].split("::")[-1]: t for t in data["tests"]}

    return run


@pytest.mark.slow
def test_callback_prices_epochs_evaluations_and_the_run(report: Any) -> None:
    tests = report(
        """
        import pytest
        from transformers import TrainerCallback
        from tinymodel import make_trainer
        from pytest_greennlp.hf import GreenCallback

        @pytest.mark.green_train
        def test_explicit(tmp_path):
            make_trainer(tmp_path, callbacks=[GreenCallback(metric="accuracy")]).train()

        @pytest.mark.green_train
        def test_automatic(tmp_path):  # no callback passed: the session adds one
            make_trainer(tmp_path).train()

        @pytest.mark.green_train
        def test_explicit_and_automatic_count_once(tmp_path):
            make_trainer(tmp_path, callbacks=[GreenCallback(trials="evaluation")]).train()

        @pytest.mark.green_train
        def test_trainer_estimate(tmp_path):
            make_trainer(tmp_path, callbacks=[GreenCallback(flops="trainer")]).train()

        def test_unmarked(tmp_path):  # the callback is idle outside marked tests
            make_trainer(tmp_path, callbacks=[GreenCallback()]).train()

        class CodeCarbonCallback(TrainerCallback):  # stands in for report_to="codecarbon"
            pass

        @pytest.mark.green_train
        def test_with_codecarbon(tmp_path):
            make_trainer(tmp_path, callbacks=[CodeCarbonCallback()], num_train_epochs=1).train()
        """,
        passed=6,
    )
    explicit = tests["test_explicit"]
    per_batch = 2 * 8 * 16 * 3
    # 2 epochs x 8 micro-batches of forward + backward; 2 evaluations x 4 forward batches.
    assert explicit["flops"]["forward"] == per_batch * 16 + per_batch * 8
    assert explicit["flops"]["backward"] == per_batch * 16
    assert "sample batch of 8 training examples" in explicit["flops"]["method"]
    assert {m["name"] for m in explicit["metrics"]} == {"eval_loss", "eval_accuracy"}
    loss = next(m for m in explicit["metrics"] if m["name"] == "eval_loss")
    assert loss["higher_is_better"] is False
    (trial,) = explicit["trials"]
    assert trial["seed"] == 3 and trial["config"]["learning_rate"] == 0.05
    assert trial["score"] == next(m["value"] for m in explicit["metrics"] if m["name"] == "eval_accuracy")
    assert trial["cost"]["flops"] == explicit["flops"]["total"]
    (run,) = explicit["extra"]["hf_trainer"]["runs"]
    assert run["complete"] and [e["epoch"] for e in run["epochs"]] == [1, 2]
    assert [e["steps"] for e in run["epochs"]] == [8, 8]
    assert [e["batches"] for e in run["evaluations"]] == [4, 4]
    assert run["trainer_total_flos"] == 0.0  # not a PreTrainedModel: the Trainer cannot estimate
    segments = run["epochs"] + run["evaluations"]
    assert sum(s["flops"] for s in segments) == explicit["flops"]["total"]
    assert sum(s["wall_s"] for s in segments) <= explicit["timing"]["wall_s"]
    assert sum(s["wall_s"] for s in segments) == pytest.approx(run["total"]["wall_s"], rel=0.05)
    for s in segments:
        assert s["wall_s"] > 0 and s["estimated_j"] > 0

    automatic = tests["test_automatic"]
    assert automatic["flops"] == explicit["flops"]
    assert len(automatic["trials"]) == 1 and automatic["trials"][0]["score"] is not None
    assert automatic["trials"][0]["higher_is_better"] is False  # scored by eval_loss

    both = tests["test_explicit_and_automatic_count_once"]
    assert both["flops"] == explicit["flops"]
    assert len(both["extra"]["hf_trainer"]["runs"]) == 1
    assert [t["config"]["epoch"] for t in both["trials"]] == [1.0, 2.0]

    estimate = tests["test_trainer_estimate"]
    assert estimate["flops"] is None  # total_flos is 0 for a plain module: nothing to add
    assert estimate["extra"]["hf_trainer"]["runs"][0]["flops_method"].startswith("Trainer's total_flos")

    # A codecarbon integration in the same Trainer is said, once, and never added in.
    record = tests["test_with_codecarbon"]
    (run,) = record["extra"]["hf_trainer"]["runs"]
    assert "CodeCarbonCallback" in run["codecarbon"] and "do not add the two" in run["codecarbon"]
    assert any("CodeCarbonCallback" in note for note in record["notes"])
    assert record["flops"]["total"] == explicit["flops"]["total"] // 2  # one epoch of the same work
    assert explicit["extra"]["hf_trainer"]["runs"][0]["codecarbon"] is None
    report.result.stdout.fnmatch_lines(["*GreenNLPWarning: greennlp: transformers' CodeCarbonCallback*"])


def test_real_codecarbon_callback_is_recognised() -> None:
    from transformers.integrations import CodeCarbonCallback

    assert _CODECARBON in (t.__name__ for t in CodeCarbonCallback.__mro__)


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="trials must be 'run' or 'evaluation', got 'epoch'"):
        GreenCallback(trials="epoch")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="flops must be 'count', 'trainer' or 'none'"):
        GreenCallback(flops="guess")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="metric must be a non-empty string"):
        GreenCallback(metric="")
    assert GreenCallback(metric="eval_f1").metric == "eval_f1"


def test_auto_callback_restores_the_defaults() -> None:
    import transformers.trainer as trainer_module

    from pytest_greennlp.hf import auto_callback

    before = list(trainer_module.DEFAULT_CALLBACKS)
    with pytest.raises(RuntimeError), auto_callback():
        assert len(trainer_module.DEFAULT_CALLBACKS) == len(before) + 1
        raise RuntimeError("boom")
    assert trainer_module.DEFAULT_CALLBACKS == before
