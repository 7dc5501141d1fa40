"""Start many seeds, stop early, continue some: a seed search on MiniLM-L6 / BBC News.

Run with ``pytest --green examples/seed_search``. Twenty seeds of a small classifier
head on cached MiniLM-L6 embeddings train for a quarter of their 3-epoch budget; the
best five continue to 3 epochs (Dodge et al. 2020). Every seed is a trial in the report,
the fifteen stopped ones with ``status: "stopped"`` and what they cost, and
``extra.early_stopping`` says what was spent (26.25 epochs), what the full search would
have cost (60 epochs) and the expected best dev accuracy of both.
"""

from __future__ import annotations

import pytest
import seedsearch
import torch

from pytest_greennlp.halving import one_round, run_search

SEEDS, EPOCHS = 20, 3.0


@pytest.mark.green_train(examples=seedsearch.N_TRAIN)
def test_seed_search_with_early_stopping(green, embeddings):
    head = seedsearch.make_head(0)
    x, y = embeddings.train_x[:seedsearch.BATCH], embeddings.train_y[:seedsearch.BATCH]
    # FLOPs of one training batch, counted once (calls=0 adds nothing); each step declares its own.
    count = green.model(head, x, backward=True, calls=0,
                        loss_fn=lambda logits: torch.nn.functional.cross_entropy(logits, y))
    flops = (count.forward, count.backward) if count is not None else None
    step = seedsearch.make_step(embeddings, green, flops)

    schedule = one_round(SEEDS, EPOCHS, fraction=0.25, keep=5)
    result = run_search(step, SEEDS, schedule, green=green, unit="epoch")

    summary = result.summary
    assert summary["compute"]["spent_units"] == 26.25 and summary["compute"]["full_units"] == 60.0
    assert [t.status for t in result.trials].count("stopped") == SEEDS - 5
    assert result.best is not None and result.best.score > 0.85
    green.metric("dev_accuracy", result.best.score)
    green.metric("expected_best_dev_accuracy", summary["evp"]["search"]["expected_best"])
