"""Trial import: `Trial` records from the files other tuning tools write.

Four sources, one result (a tuple of `records.Trial`, failed and stopped trials kept):

* **CSV** (`read_csv`): one row per trial under a header row. Columns:

  ==========================  ========================================================
  column                      meaning
  ==========================  ========================================================
  ``score`` (required)        the validation score; empty or ``nan``: a failed trial
  ``status``                  ``ok``, ``failed`` or ``stopped`` (aliases below);
                              empty: ``ok``, or ``failed`` when the score is empty
  ``cost``                    what the trial cost, in ``cost_unit`` (default ``wall_s``)
  ``wall_s``, ``cpu_s``       wall and CPU seconds
  ``measured_j``,             joules, from a counter or from a model
  ``estimated_j``
  ``flops``                   FLOPs (an integer; ``1e12`` is accepted)
  ``seed``                    an integer
  ``config``                  a JSON object of hyperparameters
  ``config.NAME``,            one hyperparameter per column; numbers, ``true``/
  ``config/NAME``             ``false`` and ``null`` are read as JSON, the rest as text
  ``group``                   the trial group, overriding the ``group`` argument
  ==========================  ========================================================

  Any other column is an error (a typo must not silently drop a cost). ``score_column``
  names the score column when it is not ``score``.
* **JSON** (`read_json`): a list of row objects with the same keys (``cost`` may also be
  an object of the cost keys; ``config`` an object), the same list under a top-level
  ``"trials"`` key, JSON Lines (``.jsonl``: one row object per line), or the file
  `write_trials` writes (``{"format": "pytest-greennlp trials", "version": 1,
  "trials": [...]}``, read strictly with `records.from_dict`).
* **Optuna** (`read_optuna`): a study object, or a storage URL (``sqlite:///study.db``)
  or an SQLite file path, loaded with ``optuna.load_study`` (optuna is imported only
  then, and is not a dependency). COMPLETE is ``ok``, PRUNED is ``stopped`` (score: the
  value Optuna stored, else the last intermediate value), FAIL is ``failed``; RUNNING
  and WAITING trials are left out. Cost: the ``wall_s``, ``cpu_s``, ``measured_j``,
  ``estimated_j`` and ``flops`` user attributes (``trial.set_user_attr("flops", n)``),
  and wall seconds from the trial's start and completion times when ``wall_s`` is not
  set. The direction comes from the study.
* **Ray Tune** (`read_ray_tune`): an experiment folder, read without importing ray.
  Each sub-folder with a ``result.json`` (JSON Lines, one row per reported iteration)
  or ``progress.csv`` is a trial; ``params.json`` is its config. A trial with an
  ``error.txt`` or ``error.pkl`` is ``failed``; one that reported fewer iterations
  (``training_iteration``) than the longest trial, or none, was stopped early by a
  scheduler or stopper: ``stopped``; the others are ``ok``, except that a trial that
  never reported the metric is ``failed``. Score: the metric's last reported value
  (``scope="last"``, Ray's default) or its best (``scope="all"``); a metric in a nested
  result is named with ``/`` (``eval/acc``), as in ``progress.csv``. Cost: wall seconds,
  the last ``time_total_s``.

Status aliases (any case): ``ok`` = ``complete``, ``completed``, ``success``,
``succeeded``, ``done``, ``terminated``; ``failed`` = ``fail``, ``error``, ``errored``;
``stopped`` = ``pruned``, ``early_stopped``. A row without a score is a failed trial
unless it says ``stopped``.

Every problem with a file is one `ReportError` line that names the file and line
(``lr.csv:4: score 'abc' is not a number``); a bad argument is a `ConfigError`.
`record_trials` adds imported trials to a test's price tag through the ``green``
fixture; `write_trials` saves them for ``greennlp plot``.
"""

from __future__ import annotations

import bisect
import csv
import importlib
import io
import json
import logging
import math
import os
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

from pytest_greennlp.errors import ConfigError, ReportError
from pytest_greennlp.records import Trial, TrialCost, TrialStatus, from_dict, to_dict

__all__ = [
    "COST_KEYS",
    "TRIALS_FORMAT",
    "TRIALS_VERSION",
    "CostKey",
    "SourceFormat",
    "guess_format",
    "read_csv",
    "read_json",
    "read_optuna",
    "read_ray_tune",
    "read_trials",
    "record_trials",
    "trials_to_dict",
    "write_trials",
]

logger = logging.getLogger(__name__)

#: The ``format`` value of a file `write_trials` writes.
TRIALS_FORMAT = "pytest-greennlp trials"
#: Its layout version; readers refuse newer ones.
TRIALS_VERSION = 1

CostKey = Literal["wall_s", "cpu_s", "measured_j", "estimated_j", "flops"]
#: The cost fields of `records.TrialCost`, in the order they are listed.
COST_KEYS: tuple[CostKey, ...] = get_args(CostKey)
SourceFormat = Literal["auto", "csv", "json", "optuna", "ray"]

_STATUS_ALIASES: Mapping[str, TrialStatus] = {
    "ok": "ok", "complete": "ok", "completed": "ok", "success": "ok", "succeeded": "ok",
    "done": "ok", "terminated": "ok",
    "failed": "failed", "fail": "failed", "error": "failed", "errored": "failed",
    "stopped": "stopped", "pruned": "stopped", "early_stopped": "stopped",
}
_ROW_KEYS = frozenset({"score", "status", "cost", "config", "seed", "group", *COST_KEYS})
_CONFIG_PREFIXES = ("config.", "config/")
_OPTUNA_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_RAY_ERROR_FILES = ("error.txt", "error.pkl")


class _Invalid(ValueError):
    """A bad value in one row; the reader adds the file and line."""


# --- one row --------------------------------------------------------------------------


def _check_group(group: object, where: str = "group") -> str:
    if not isinstance(group, str) or not group.strip():
        raise ConfigError(f"{where} must be a non-empty string, got {group!r}")
    return group


def _check_cost_unit(cost_unit: object) -> CostKey:
    if cost_unit not in COST_KEYS:
        raise ConfigError(f"cost_unit must be one of {', '.join(COST_KEYS)}, got {cost_unit!r}")
    return cost_unit


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: object, name: str) -> float | None:
    """A float from a JSON number or CSV text; None for empty, null or NaN."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise _Invalid(f"{name} {_short(value)} is not a number")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _Invalid(f"{name} {_short(value)} is not a number") from None
    else:
        raise _Invalid(f"{name} {_short(value)} is not a number")
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise _Invalid(f"{name} {_short(value)} is not finite")
    return number


def _cost_value(value: object, key: str) -> float | int | None:
    number = _number(value, f"cost {key!r}")
    if number is None:
        return None
    if number < 0:
        raise _Invalid(f"cost {key!r} must be >= 0, got {_short(value)}")
    if key == "flops":
        if number != int(number):
            raise _Invalid(f"cost 'flops' must be an integer, got {_short(value)}")
        return int(number)
    return number


def _status(value: object) -> TrialStatus | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        status = _STATUS_ALIASES.get(value.strip().lower())
        if status is not None:
            return status
    raise _Invalid(f"status {_short(value)} is not one of ok, failed, stopped (or an alias)")


def _seed(value: object) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _Invalid(f"seed {_short(value)} is not an integer")


def _config_cell(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _make_trial(
    row: Mapping[str, Any],
    *,
    group: str | None,
    cost_unit: CostKey,
    higher_is_better: bool,
    score_key: str = "score",
) -> Trial:
    """One `Trial` from a row whose keys were checked; cells may be text (CSV) or JSON."""
    score = _number(row.get(score_key), "score")
    status = _status(row.get("status"))
    if status is None or (status == "ok" and score is None):
        status = "ok" if score is not None else "failed"
    costs: dict[str, float | int | None] = {}
    raw_cost = row.get("cost")
    if isinstance(raw_cost, Mapping):
        unknown = sorted(set(raw_cost) - set(COST_KEYS))
        if unknown:
            raise _Invalid(f"unknown cost key {unknown[0]!r}; expected {', '.join(COST_KEYS)}")
        for key, value in raw_cost.items():
            costs[key] = _cost_value(value, key)
    elif raw_cost is not None:
        costs[cost_unit] = _cost_value(raw_cost, cost_unit)
    for key in COST_KEYS:
        if key in row:
            if costs.get(key) is not None and row[key] not in (None, ""):
                raise _Invalid(f"cost {key!r} is given twice")
            value = _cost_value(row[key], key)
            if value is not None or key not in costs:
                costs[key] = value
    config: dict[str, Any] = {}
    raw_config = row.get("config")
    if isinstance(raw_config, str) and raw_config.strip():
        try:
            raw_config = json.loads(raw_config)
        except ValueError:
            raise _Invalid(f"config {_short(raw_config)} is not a JSON object") from None
    if isinstance(raw_config, Mapping):
        config.update({str(k): v for k, v in raw_config.items()})
    elif raw_config not in (None, ""):
        raise _Invalid(f"config {_short(raw_config)} is not a JSON object")
    for key, value in row.items():
        if key.startswith(_CONFIG_PREFIXES):
            name = key[len("config.") :]
            if isinstance(value, str):
                if value == "":
                    continue
                value = _config_cell(value)
            config[name] = value
    row_group = row.get("group")
    if row_group not in (None, ""):
        if not isinstance(row_group, str):
            raise _Invalid(f"group {_short(row_group)} is not a string")
        group = row_group
    if group is None:
        raise _Invalid("no group: give a group column or the group argument")
    return Trial(
        group=group,
        score=score,
        status=status,
        cost=TrialCost(**costs),  # type: ignore[arg-type]
        config=config,
        seed=_seed(row.get("seed")),
        higher_is_better=higher_is_better,
    )


def _check_keys(keys: Iterable[str], score_key: str) -> None:
    for key in keys:
        if key == score_key or key in _ROW_KEYS or (
            key.startswith(_CONFIG_PREFIXES) and len(key) > len("config.")
        ):
            continue
        expected = ", ".join(sorted((_ROW_KEYS - {"score"}) | {score_key}))
        raise _Invalid(f"unknown column {key!r}; expected {expected} or config.NAME")


# --- files ----------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ReportError(path, "no such file") from None
    except IsADirectoryError:
        raise ReportError(path, "is a directory, not a trials file") from None
    except UnicodeDecodeError:
        raise ReportError(path, "is not UTF-8 text") from None
    except OSError as exc:
        raise ReportError(path, f"cannot read ({exc.strerror or exc})") from exc


def read_csv(
    path: str | os.PathLike[str],
    *,
    group: str | None = None,
    cost_unit: CostKey = "wall_s",
    higher_is_better: bool = True,
    score_column: str = "score",
) -> tuple[Trial, ...]:
    """Read trials from a CSV file with a header row (columns: see the module docstring).

    Parameters
    ----------
    path : path, required
        The CSV file (UTF-8, a byte-order mark is fine).
    group : str or None, optional
        The trial group of rows without a ``group`` column; required if there is none.
    cost_unit : {"wall_s", "cpu_s", "measured_j", "estimated_j", "flops"}, optional
        What the ``cost`` column counts.
    higher_is_better : bool, optional
        False for losses and perplexities.
    score_column : str, optional
        The name of the score column.

    Returns
    -------
    tuple of Trial
        In file order, failed and stopped trials included.

    Raises
    ------
    ReportError
        ``FILE:LINE: problem`` for a missing file, a bad header or a bad cell.
    ConfigError
        For a bad argument.
    """
    # Validate the arguments.
    file = Path(path)
    if group is not None:
        _check_group(group)
    unit = _check_cost_unit(cost_unit)
    _check_group(score_column, "score_column")

    # Read the rows.
    text = _read_text(file)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ReportError(f"{file}:1", f"is not valid CSV ({exc})") from None
    if header is None or not any(h.strip() for h in header):
        raise ReportError(f"{file}:1",
                          f"is empty; expected a header row with a {score_column!r} column")
    names = [h.strip() for h in header]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ReportError(f"{file}:1", f"column {name!r} appears twice")
        seen.add(name)
    if score_column not in seen:
        raise ReportError(f"{file}:1",
                          f"has no {score_column!r} column (columns: {', '.join(names)})")
    try:
        _check_keys(names, score_column)
    except _Invalid as exc:
        raise ReportError(f"{file}:1", str(exc)) from None
    if "cost" in seen and unit in seen:
        raise ReportError(f"{file}:1", f"has both a 'cost' column and a {unit!r} column")
    if group is None and "group" not in seen:
        raise ConfigError(f"{file}: no group column; give the trial group (--group NAME)")
    trials: list[Trial] = []
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ReportError(f"{file}:{reader.line_num}", f"is not valid CSV ({exc})") from None
        line = reader.line_num
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            raise ReportError(f"{file}:{line}",
                              f"has {len(cells)} fields, the header has {len(names)}")
        try:
            trials.append(_make_trial(dict(zip(names, cells)), group=group, cost_unit=unit,
                                      higher_is_better=higher_is_better, score_key=score_column))
        except _Invalid as exc:
            raise ReportError(f"{file}:{line}", str(exc)) from None
    return tuple(trials)


class _Lines:
    """Line numbers of character offsets in a text."""

    def __init__(self, text: str) -> None:
        self._breaks = [match.start() for match in re.finditer("\n", text)]

    def __call__(self, offset: int) -> int:
        return bisect.bisect_left(self._breaks, offset) + 1


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _scan_array(text: str, pos: int, decoder: json.JSONDecoder,
                lines: _Lines) -> tuple[list[tuple[int, Any]], int]:
    """Items of the (valid) JSON array at ``text[pos]``, each with its line."""
    items: list[tuple[int, Any]] = []
    pos = _skip(text, pos + 1)
    if text[pos] == "]":
        return items, pos + 1
    while True:
        value, end = decoder.raw_decode(text, pos)
        items.append((lines(pos), value))
        pos = _skip(text, end)
        if text[pos] == "]":
            return items, pos + 1
        pos = _skip(text, pos + 1)  # the comma


def _json_rows(text: str, file: Path) -> tuple[Any, list[tuple[int, Any]] | None]:
    """The parsed document and its trial rows with their lines (None: no row list)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{file}:{exc.lineno}", f"is not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise ReportError(file, "is nested too deeply") from None
    decoder = json.JSONDecoder()
    lines = _Lines(text)
    pos = _skip(text, 0)
    if isinstance(document, list):
        return document, _scan_array(text, pos, decoder, lines)[0]
    if not isinstance(document, dict) or not isinstance(document.get("trials"), list):
        return document, None
    pos = _skip(text, pos + 1)  # past "{"
    found: list[tuple[int, Any]] | None = None
    while True:
        key, end = decoder.raw_decode(text, pos)
        pos = _skip(text, _skip(text, end) + 1)  # past ":"
        if key == "trials" and text[pos] == "[":
            rows, end = _scan_array(text, pos, decoder, lines)
        else:
            rows = None
            _, end = decoder.raw_decode(text, pos)
        pos = _skip(text, end)
        if rows is not None:
            found = rows
        if text[pos] == "}":
            return document, found
        pos = _skip(text, pos + 1)  # the comma


def _row_trials(
    rows: Sequence[tuple[int, Any]],
    file: Path,
    *,
    group: str | None,
    cost_unit: CostKey,
    higher_is_better: bool,
) -> tuple[Trial, ...]:
    trials = []
    for line, row in rows:
        try:
            if not isinstance(row, dict):
                raise _Invalid(f"expected a trial object, got {_short(row)}")
            _check_keys(row, "score")
            if "score" not in row:
                raise _Invalid("missing key 'score' (null for a failed trial)")
            trials.append(_make_trial(row, group=group, cost_unit=cost_unit,
                                      higher_is_better=higher_is_better))
        except _Invalid as exc:
            raise ReportError(f"{file}:{line}", str(exc).replace("column", "key")) from None
    return tuple(trials)


def read_json(
    path: str | os.PathLike[str],
    *,
    group: str | None = None,
    cost_unit: CostKey = "wall_s",
    higher_is_better: bool = True,
) -> tuple[Trial, ...]:
    """Read trials from JSON, JSON Lines (``.jsonl``) or a file `write_trials` wrote.

    Parameters
    ----------
    path : path, required
        The file.
    group : str or None, optional
        The trial group of rows without a ``"group"`` key (ignored for `write_trials`
        files, whose trials name their group).
    cost_unit : {"wall_s", "cpu_s", "measured_j", "estimated_j", "flops"}, optional
        What a numeric ``"cost"`` counts.
    higher_is_better : bool, optional
        False for losses and perplexities (ignored for `write_trials` files).

    Returns
    -------
    tuple of Trial

    Raises
    ------
    ReportError
        ``FILE:LINE: problem``, the line being the start of the offending row.
    ConfigError
        For a bad argument.
    """
    # Validate the arguments.
    file = Path(path)
    if group is not None:
        _check_group(group)
    unit = _check_cost_unit(cost_unit)

    text = _read_text(file)
    if file.suffix.lower() == ".jsonl":
        rows: list[tuple[int, Any]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise ReportError(f"{file}:{number}", f"is not valid JSON ({exc.msg})") from None
        return _row_trials(rows, file, group=group, cost_unit=unit,
                           higher_is_better=higher_is_better)
    document, found = _json_rows(text, file)
    if isinstance(document, dict) and "format" in document:
        return _own_format(document, found or [], file)
    if found is None:
        raise ReportError(file, "is not a trials file (expected a list of trial objects, "
                                "or an object with a \"trials\" list)")
    if isinstance(document, dict):
        unknown = sorted(set(document) - {"trials"})
        if unknown:
            raise ReportError(file, f"unknown top-level key {unknown[0]!r}; expected \"trials\"")
    if group is None and any(isinstance(r, dict) and r.get("group") in (None, "")
                             for _, r in found):
        raise ConfigError(f"{file}: a trial has no \"group\"; give the trial group (--group NAME)")
    return _row_trials(found, file, group=group, cost_unit=unit, higher_is_better=higher_is_better)


def _own_format(document: dict[str, Any], rows: Sequence[tuple[int, Any]],
                file: Path) -> tuple[Trial, ...]:
    if document.get("format") != TRIALS_FORMAT:
        raise ReportError(file, f"has format {_short(document.get('format'))}, "
                                f"expected {TRIALS_FORMAT!r}")
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ReportError(file, "has no integer \"version\"")
    if version > TRIALS_VERSION:
        raise ReportError(file, f"has version {version}, newer than this version reads "
                                f"({TRIALS_VERSION}); upgrade pytest-greennlp")
    unknown = sorted(set(document) - {"format", "version", "trials"})
    if unknown:
        raise ReportError(file, f"unknown top-level key {unknown[0]!r}")
    if not isinstance(document.get("trials"), list):
        raise ReportError(file, "has no \"trials\" list")
    trials = []
    for index, (line, row) in enumerate(rows):
        try:
            trials.append(from_dict(Trial, row, where=f"trials[{index}]"))
        except ValueError as exc:
            raise ReportError(f"{file}:{line}", str(exc)) from None
    return tuple(trials)


def trials_to_dict(trials: Iterable[Trial]) -> dict[str, Any]:
    """Return the JSON document `write_trials` writes (and `read_json` reads back).

    Examples
    --------
    >>> trials_to_dict([Trial("lr", 0.5, cost=TrialCost(wall_s=2.0))])["trials"][0]["cost"]
    {'wall_s': 2.0, 'cpu_s': None, 'measured_j': None, 'estimated_j': None, 'flops': None}
    """
    return {
        "format": TRIALS_FORMAT,
        "version": TRIALS_VERSION,
        "trials": [to_dict(t) for t in trials],
    }


def write_trials(trials: Iterable[Trial], path: str | os.PathLike[str]) -> Path:
    """Write trials as JSON (`trials_to_dict`), one trial per line; return the path.

    Raises
    ------
    ReportError
        If the file cannot be written.
    """
    file = Path(path)
    document = trials_to_dict(trials)
    rows = ",\n".join("  " + json.dumps(t, allow_nan=False, sort_keys=True)
                      for t in document["trials"])
    text = (f'{{"format": {json.dumps(TRIALS_FORMAT)}, "version": {TRIALS_VERSION}, '
            f'"trials": [\n{rows}\n]}}\n')
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(file, f"cannot write ({exc.strerror or exc})") from exc
    return file


# --- Optuna ---------------------------------------------------------------------------


def _load_optuna_study(storage: str, study_name: str | None) -> Any:
    if "://" not in storage:
        file = Path(storage)
        if not file.is_file():
            raise ReportError(file, "no such file (expected an Optuna SQLite storage)")
        storage = f"sqlite:///{file.resolve()}"
    elif storage.startswith("sqlite:///"):
        file = Path(storage[len("sqlite:///") :])
        if not file.is_file():  # SQLAlchemy would create an empty database
            raise ReportError(file, "no such file (expected an Optuna SQLite storage)")
    try:
        optuna = importlib.import_module("optuna")
    except ImportError:
        raise ConfigError("reading an Optuna storage needs optuna: pip install optuna") from None
    try:
        names = optuna.get_all_study_names(storage=storage)
    except Exception as exc:  # each storage back end raises its own errors
        logger.debug("optuna storage %s", storage, exc_info=True)
        raise ReportError(storage, f"cannot open the Optuna storage ({_one_line(exc)})") from None
    if study_name is None:
        if len(names) != 1:
            listed = ", ".join(repr(n) for n in names) or "none"
            raise ConfigError(f"{storage}: holds {len(names)} studies ({listed}); "
                              "name one (--study NAME)")
        study_name = names[0]
    elif study_name not in names:
        listed = ", ".join(repr(n) for n in names) or "none"
        raise ConfigError(f"{storage}: no study {study_name!r} (studies: {listed})")
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except Exception as exc:  # noqa: BLE001 - each back end raises its own errors
        raise ReportError(storage, f"cannot load study {study_name!r} ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _seconds(start: object, end: object) -> float | None:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return max(0.0, (end - start).total_seconds())
    return None


def read_optuna(
    study: Any,
    *,
    study_name: str | None = None,
    group: str | None = None,
    objective: int = 0,
) -> tuple[Trial, ...]:
    """Read the trials of an Optuna study (a ``Study``, a storage URL or an SQLite file).

    Parameters
    ----------
    study : optuna.Study or str or path, required
        A study object (optuna is then not imported here), or a storage: a URL such
        as ``"sqlite:///study.db"`` or the path of an SQLite file.
    study_name : str or None, optional
        Which study of the storage; may be left out when it holds only one.
    group : str or None, optional
        The trial group; default: the study's name.
    objective : int, optional
        Which objective of a multi-objective study is the score.

    Returns
    -------
    tuple of Trial
        In trial-number order; RUNNING and WAITING trials are left out.

    Raises
    ------
    ConfigError
        If optuna is needed and not installed, or the storage holds no such study.
    ReportError
        If the storage cannot be read or a user attribute cost is not a number.
    """
    # Validate the arguments.
    if group is not None:
        _check_group(group)
    if isinstance(objective, bool) or not isinstance(objective, int) or objective < 0:
        raise ConfigError(f"objective must be an integer >= 0, got {objective!r}")
    if isinstance(study, (str, os.PathLike)):
        study = _load_optuna_study(os.fspath(study), study_name)

    name = str(getattr(study, "study_name", "optuna"))
    directions = list(study.directions)
    if objective >= len(directions):
        raise ConfigError(f"optuna study {name!r} has {len(directions)} objective(s); "
                          f"objective {objective} does not exist")
    higher_is_better = getattr(directions[objective], "name", "") == "MAXIMIZE"
    where = f"optuna study {name!r}"
    trials = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        state = getattr(trial.state, "name", str(trial.state))
        status: TrialStatus
        if state == "COMPLETE":
            status = "ok"
        elif state == "PRUNED":
            status = "stopped"
        elif state == "FAIL":
            status = "failed"
        else:
            continue
        values = trial.values
        score = values[objective] if values and len(values) > objective else None
        if score is None and status == "stopped" and trial.intermediate_values:
            score = trial.intermediate_values[max(trial.intermediate_values)]
        attrs = dict(trial.user_attrs)
        try:
            number = None if status == "failed" else _number(score, "score")
            costs = {key: _cost_value(attrs[key], key) for key in COST_KEYS if key in attrs}
        except _Invalid as exc:
            raise ReportError(f"{where}, trial {trial.number}", str(exc)) from None
        if costs.get("wall_s") is None:
            costs["wall_s"] = _seconds(trial.datetime_start, trial.datetime_complete)
        seed = attrs.get("seed", trial.params.get("seed"))
        trials.append(Trial(
            group=group or name,
            score=number,
            status="failed" if number is None and status == "ok" else status,
            cost=TrialCost(**costs),  # type: ignore[arg-type]
            config=dict(trial.params),
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            higher_is_better=higher_is_better,
        ))
    return tuple(trials)


# --- Ray Tune -------------------------------------------------------------------------


def _ray_rows(folder: Path) -> tuple[Path | None, list[tuple[int, dict[str, Any]]]]:
    """The reported rows of one trial folder, from result.json, else progress.csv."""
    result = folder / "result.json"
    if result.is_file():
        rows = []
        for number, line in enumerate(_read_text(result).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReportError(f"{result}:{number}", f"is not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ReportError(f"{result}:{number}",
                                  f"expected a result object, got {_short(row)}")
            rows.append((number, row))
        if rows:
            return result, rows
    progress = folder / "progress.csv"
    if progress.is_file():
        reader = csv.DictReader(io.StringIO(_read_text(progress), newline=""))
        rows = []
        try:
            for row in reader:
                rows.append((reader.line_num, {k: _config_cell(v) if isinstance(v, str) else v
                                               for k, v in row.items() if k is not None}))
        except csv.Error as exc:
            raise ReportError(f"{progress}:{reader.line_num}",
                              f"is not valid CSV ({exc})") from None
        return progress, rows
    return (result if result.is_file() else None), []


def _lookup(row: Mapping[str, Any], name: str) -> Any:
    if name in row:
        return row[name]
    value: Any = row
    for part in name.split("/"):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _flat_keys(row: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in row.items():
        if isinstance(value, Mapping) and key != "config":
            keys.extend(_flat_keys(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            keys.append(prefix + str(key))
    return keys


def read_ray_tune(
    folder: str | os.PathLike[str],
    *,
    metric: str,
    mode: Literal["max", "min"] = "max",
    group: str | None = None,
    scope: Literal["last", "all"] = "last",
) -> tuple[Trial, ...]:
    """Read the trials of a Ray Tune experiment folder, without importing ray.

    Parameters
    ----------
    folder : path, required
        The experiment folder (``~/ray_results/NAME``), or one trial's folder.
    metric : str, required
        The reported metric that is the score; ``a/b`` for a nested result.
    mode : {"max", "min"}, optional
        Whether higher or lower is better.
    group : str or None, optional
        The trial group; default: the folder's name.
    scope : {"last", "all"}, optional
        The last reported value of the metric, or its best over all iterations.

    Returns
    -------
    tuple of Trial
        One per trial folder, in name order (Ray numbers them).

    Raises
    ------
    ReportError
        If the folder has no trials, a result line is not JSON, a metric value is not
        a number, or no trial reported the metric.
    ConfigError
        For a bad argument.
    """
    # Validate the arguments.
    root = Path(folder)
    _check_group(metric, "metric")
    if mode not in ("max", "min"):
        raise ConfigError(f"mode must be 'max' or 'min', got {mode!r}")
    if scope not in ("last", "all"):
        raise ConfigError(f"scope must be 'last' or 'all', got {scope!r}")
    if group is not None:
        _check_group(group)
    if not root.is_dir():
        raise ReportError(root, "no such folder (expected a Ray Tune experiment folder)")

    def is_trial(path: Path) -> bool:
        return any((path / name).is_file() for name in
                   ("result.json", "progress.csv", "params.json", *_RAY_ERROR_FILES))

    folders = [root] if is_trial(root) else sorted(
        p for p in root.iterdir() if p.is_dir() and is_trial(p))
    if not folders:
        raise ReportError(root, "has no Ray Tune trial folders (with result.json or progress.csv)")
    higher = mode == "max"
    pick = max if higher else min
    parsed = []
    metrics_seen: set[str] = set()
    reported_any = False
    for trial_dir in folders:
        source, rows = _ray_rows(trial_dir)
        failed = any((trial_dir / name).is_file() for name in _RAY_ERROR_FILES)
        values = []
        for line, row in rows:
            metrics_seen.update(_flat_keys(row))
            try:
                value = _number(_lookup(row, metric), f"metric {metric!r}")
            except _Invalid as exc:
                raise ReportError(f"{source}:{line}", str(exc)) from None
            if value is not None:
                values.append(value)
        reported_any = reported_any or bool(values)
        score = (values[-1] if scope == "last" else pick(values)) if values else None
        last = rows[-1][1] if rows else {}
        iteration = last.get("training_iteration")
        config: Any = last.get("config")
        params = trial_dir / "params.json"
        if params.is_file():
            config, _ = _json_rows(_read_text(params), params)
        if not isinstance(config, dict):
            config = {key[len("config/") :]: value for key, value in last.items()
                      if key.startswith("config/")}
        try:
            wall = _cost_value(last.get("time_total_s"), "wall_s")
        except _Invalid as exc:
            raise ReportError(f"{source}:{rows[-1][0]}", str(exc)) from None
        parsed.append((failed, score, iteration, wall, config, bool(rows)))
    if not reported_any:
        listed = ", ".join(sorted(metrics_seen)[:12]) or "none"
        raise ReportError(root, f"no trial reported metric {metric!r} (reported: {listed})")
    iterations = [it for failed, _, it, _, _, reported in parsed if not failed and reported]
    longest: int | None = None
    if iterations and all(isinstance(it, int) and not isinstance(it, bool) for it in iterations):
        longest = max(typing.cast(list[int], iterations))
    trials = []
    for failed, score, iteration, wall, config, reported in parsed:
        status: TrialStatus
        if failed:
            status, score = "failed", None
        elif not reported:
            status = "stopped"
        elif score is None:
            status = "failed"
        elif longest is not None and isinstance(iteration, int) and iteration < longest:
            status = "stopped"
        else:
            status = "ok"
        seed = config.get("seed")
        trials.append(Trial(
            group=group or root.name,
            score=score,
            status=status,
            cost=TrialCost(wall_s=wall),
            config=config,
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            higher_is_better=higher,
        ))
    return tuple(trials)


# --- any source -----------------------------------------------------------------------


def guess_format(source: str | os.PathLike[str]) -> SourceFormat:
    """Return the reader for a path or URL: by URL scheme, folder, or file suffix.

    ``scheme://...`` and ``.db`` / ``.sqlite`` / ``.sqlite3`` files are Optuna storages, a
    folder is a Ray Tune experiment, ``.csv`` / ``.tsv`` is CSV, ``.json`` / ``.jsonl`` JSON.

    Raises
    ------
    ConfigError
        If nothing matches.

    Examples
    --------
    >>> guess_format("sqlite:///study.db"), guess_format("sweep.csv"), guess_format("t.jsonl")
    ('optuna', 'csv', 'json')
    """
    text = os.fspath(source)
    if "://" in text:
        return "optuna"
    path = Path(text)
    suffix = path.suffix.lower()
    if path.is_dir():
        return "ray"
    if suffix in _OPTUNA_SUFFIXES:
        return "optuna"
    if suffix == ".csv":
        return "csv"
    if suffix in (".json", ".jsonl"):
        return "json"
    raise ConfigError(f"{text}: cannot tell the format from the name; give it "
                      "(csv, json, optuna or ray)")


def read_trials(
    source: str | os.PathLike[str],
    *,
    format: SourceFormat = "auto",
    group: str | None = None,
    higher_is_better: bool | None = None,
    cost_unit: CostKey = "wall_s",
    metric: str | None = None,
    study_name: str | None = None,
    scope: Literal["last", "all"] = "last",
) -> tuple[Trial, ...]:
    """Read trials from any supported source (`guess_format` picks the reader).

    ``higher_is_better`` defaults to True for CSV, JSON and Ray Tune (``mode="max"``) and
    to the study's direction for Optuna, where giving the opposite is an error.
    ``metric`` is required for Ray Tune; ``cost_unit`` applies to CSV and JSON;
    ``study_name`` to Optuna; ``scope`` to Ray Tune.
    """
    kind = guess_format(source) if format == "auto" else format
    if kind not in get_args(SourceFormat):
        raise ConfigError(f"format must be one of {', '.join(get_args(SourceFormat))}, "
                          f"got {format!r}")
    direction = True if higher_is_better is None else bool(higher_is_better)
    if kind == "csv":
        return read_csv(source, group=group, cost_unit=cost_unit, higher_is_better=direction)
    if kind == "json":
        return read_json(source, group=group, cost_unit=cost_unit, higher_is_better=direction)
    if kind == "ray":
        if metric is None:
            raise ConfigError(
                "a Ray Tune folder needs the metric that is the score (--metric NAME)")
        return read_ray_tune(source, metric=metric, mode="max" if direction else "min",
                             group=group, scope=scope)
    trials = read_optuna(os.fspath(source), study_name=study_name, group=group)
    if higher_is_better is not None and trials and trials[0].higher_is_better != direction:
        wanted = "max" if direction else "min"
        raise ConfigError(f"{os.fspath(source)}: the study's direction is not {wanted!r}")
    return trials


class _TrialSink(Protocol):
    """The part of the ``green`` fixture `record_trials` uses."""

    def trial(
        self,
        score: float | None,
        *,
        cost: Mapping[str, float] | None = None,
        config: Mapping[str, Any] | None = None,
        seed: int | None = None,
        group: str | None = None,
        status: Literal["ok", "failed", "stopped"] = "ok",
        higher_is_better: bool = True,
    ) -> None: ...


def record_trials(green: _TrialSink, trials: Iterable[Trial]) -> int:
    """Add imported trials to the current test's price tag; return how many.

    Each trial keeps the cost its file gave (an empty cost when none: the test's own
    measurements are not attributed to trials run elsewhere).

    Examples
    --------
    In a test marked ``green_train``::

        def test_lr_sweep(green):
            record_trials(green, read_trials("sweeps/lr.csv", group="lr"))
    """
    count = 0
    for trial in trials:
        cost: dict[str, float] = {key: getattr(trial.cost, key) for key in COST_KEYS
                                  if getattr(trial.cost, key) is not None}
        green.trial(trial.score, cost=cost, config=trial.config, seed=trial.seed,
                    group=trial.group, status=trial.status,
                    higher_is_better=trial.higher_is_better)
        count += 1
    return count
