"""Hugging Face ``Trainer``: a callback that prices each epoch and evaluation of the running green test.

`GreenCallback` finds the test through `recorder.running_recorder` (the session
publishes the marked test whose call phase is running in this process), so it needs no
reference to the ``green`` fixture. It splits the test's window at epoch and evaluation
boundaries into segments with their own time, energy and FLOPs, records the evaluation
metrics as the test's metrics, and the runs (or every evaluation) as ``green.trial``.

Two ways in:

* ``Trainer(..., callbacks=[GreenCallback()])``, or ``trainer.add_callback(...)``: the
  explicit way, with options;
* automatic: in a ``green_train`` test under ``pytest --green``, if
  ``transformers.trainer`` is imported before the test's call starts (a module-level
  ``from transformers import Trainer``), the session appends `GreenCallback` to
  ``transformers.trainer.DEFAULT_CALLBACKS`` for the duration of that call only (see
  `auto_callback`; no function is replaced, the list is restored afterwards). An explicit
  `GreenCallback` in the same ``Trainer`` takes precedence, so nothing is counted twice.

FLOPs are *counted*, not estimated: once per training run, `measure.flops.count_flops`
runs one forward and backward pass over a sample training batch (the first
``per_device_train_batch_size`` examples of the training set, collated by the
``Trainer``'s own collator) outside the timed window, and each segment gets that count
times its micro-batches; evaluations likewise get a forward count of one evaluation
batch times their batches. The ``Trainer``'s own ``total_flos`` (``6 x parameters x
tokens``, an estimate) is kept in the record for comparison and used only with
``flops="trainer"`` or when counting fails, labelled as such.

Importing this module imports ``transformers`` (``pip install pytest-greennlp[transformers]``).
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

from transformers.trainer_callback import TrainerCallback

from pytest_greennlp.errors import ConfigError, GreenNLPError, GreenNLPWarning
from pytest_greennlp.recorder import Recorder, running_recorder

if TYPE_CHECKING:
    from pytest_greennlp.records import TrialCost
    from pytest_greennlp.session import Snapshot, TestRun

__all__ = ["GreenCallback", "auto_callback"]

log = logging.getLogger(__name__)

#: Entries of a metrics dict that describe the evaluation run, not the model's quality.
_NOT_QUALITY = ("_runtime", "_samples_per_second", "_steps_per_second", "epoch", "total_flos")
_COST_FIELDS = ("wall_s", "cpu_s", "measured_j", "estimated_j", "flops")
_CODECARBON = "CodeCarbonCallback"
_warned: set[str] = set()


# -- private helpers -------------------------------------------------------------------


def _warn_once(message: str) -> None:
    """Tell the user once per process; never escalated to an error by warning filters."""
    if message in _warned:
        return
    _warned.add(message)
    log.info("%s", message)
    with warnings.catch_warnings():
        warnings.simplefilter("always", GreenNLPWarning)
        warnings.warn(f"greennlp: {message}", GreenNLPWarning, stacklevel=3)


def _find_handler(callback: object) -> Any:
    """The ``CallbackHandler`` calling ``callback`` now, from the call stack (or None)."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(8):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        callbacks = getattr(owner, "callbacks", None)
        if isinstance(callbacks, list) and any(c is callback for c in callbacks):
            return owner
        frame = frame.f_back
    return None


def _is_quality(name: str) -> bool:
    return not any(name == n or name.endswith(n) for n in _NOT_QUALITY)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)  # type: ignore[arg-type]  # numpy and torch scalars
        except (TypeError, ValueError):
            return None
    number = float(value)
    return number if math.isfinite(number) else None


def _to_device(batch: Any, device: Any) -> Any:
    if hasattr(batch, "to") and callable(batch.to) and hasattr(batch, "device"):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _sample_batch(dataloader: Any, size: int) -> Any:
    """The first ``size`` examples of the loader's dataset, collated by the loader's collator."""
    dataset = getattr(dataloader, "dataset", None)
    collate = getattr(dataloader, "collate_fn", None)
    if dataset is None or collate is None or not hasattr(dataset, "__getitem__"):
        raise ConfigError("the data loader has no indexable dataset and collator to sample from")
    n = min(size, len(dataset))
    if n < 1:
        raise ConfigError("the dataset is empty")
    return collate([dataset[i] for i in range(n)])


def _cost_dict(cost: TrialCost) -> dict[str, float]:
    return {k: float(getattr(cost, k)) for k in _COST_FIELDS if getattr(cost, k) is not None}


@dataclass
class _Segment:
    """Figures of one epoch's training or one evaluation, built up between boundaries."""

    kind: Literal["train", "evaluate"]
    epoch: int
    cost: dict[str, float] = field(default_factory=dict)
    micro_batches: int = 0
    steps: int = 0

    def add(self, cost: Mapping[str, float]) -> None:
        for key, value in cost.items():
            self.cost[key] = self.cost.get(key, 0.0) + value


@dataclass
class _Tracking:
    """What one ``train()`` call of one ``Trainer`` has measured so far."""

    run: TestRun
    green: Recorder
    started: Snapshot
    mark: Snapshot
    trial_mark: Snapshot
    phase: Literal["train", "evaluate"] = "train"
    epoch: int = 1
    micro_batches: int = 0
    steps: int = 0
    eval_batches: int = 0
    train_flops: tuple[int, int] | None = None
    eval_flops: int | None = None
    flops_method: str | None = None
    trainer_flos_mark: float = 0.0
    epochs: dict[int, _Segment] = field(default_factory=dict)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    last_score: float | None = None
    notes: list[str] = field(default_factory=list)
    codecarbon: str | None = None
    slot: int | None = None


# -- the callback ----------------------------------------------------------------------


class GreenCallback(TrainerCallback):
    """Attribute a ``Trainer``'s time, FLOPs and energy to the running green test.

    Per training epoch and per evaluation it records wall and CPU time, energy
    (measured and estimated apart) and FLOPs in the test's ``extra["hf_trainer"]``; the
    segments add up to the training part of the test's price tag. Evaluation metrics
    become the test's metrics (``eval_loss`` lower-is-better), and each ``train()`` call
    (or each evaluation) one ``green.trial``. Outside a marked test under ``--green`` it
    does nothing.

    Parameters
    ----------
    metric : str or None, optional
        The evaluation metric a trial is scored by, with or without the ``eval_``
        prefix; default: ``args.metric_for_best_model``, else ``loss``.
    higher_is_better : bool or None, optional
        Direction of ``metric``; default: ``args.greater_is_better`` if set, else False
        for names containing ``loss``, True otherwise.
    trials : {"run", "evaluation"}, optional
        ``"run"``: one trial per ``train()`` call, scored by its last evaluation (its
        best with ``load_best_model_at_end``) and costing the whole run, evaluations
        included; the right unit for expected validation performance over seeds or
        configurations. ``"evaluation"``: one trial per evaluation, costing what was
        spent since the previous one (checkpoints of one run are not independent
        trials: use it for budget curves, not for `evp.expected_max`).
    flops : {"count", "trainer", "none"}, optional
        ``"count"``: count a sample batch (see the module docs). ``"trainer"``: add the
        ``Trainer``'s ``total_flos`` estimate instead. ``"none"``: add no FLOPs.
    group : str or None, optional
        The trials' group (default: the test's name).

    Examples
    --------
    >>> callback = GreenCallback(metric="accuracy", trials="run")
    >>> callback.trials, callback.metric
    ('run', 'eval_accuracy')
    """

    #: True for the instance the session adds automatically; an explicit one wins.
    auto = False
    extra_key = "hf_trainer"

    def __init__(
        self,
        *,
        metric: str | None = None,
        higher_is_better: bool | None = None,
        trials: Literal["run", "evaluation"] = "run",
        flops: Literal["count", "trainer", "none"] = "count",
        group: str | None = None,
    ) -> None:
        # Validate the arguments.
        if metric is not None and (not isinstance(metric, str) or not metric):
            raise ConfigError(f"GreenCallback: metric must be a non-empty string, got {metric!r}")
        if trials not in ("run", "evaluation"):
            raise ConfigError(f"GreenCallback: trials must be 'run' or 'evaluation', got {trials!r}")
        if flops not in ("count", "trainer", "none"):
            raise ConfigError(f"GreenCallback: flops must be 'count', 'trainer' or 'none', got {flops!r}")
        if higher_is_better is not None and not isinstance(higher_is_better, bool):
            raise ConfigError(f"GreenCallback: higher_is_better must be a bool, got {higher_is_better!r}")

        self.metric = None if metric is None else (metric if metric.startswith("eval_") else f"eval_{metric}")
        self.higher_is_better = higher_is_better
        self.trials = trials
        self.flops = flops
        self.group = group
        self._tracking: _Tracking | None = None

    # -- binding ------------------------------------------------------------------------

    def _bind(self, args: Any, handler: Any) -> None:
        self._tracking = None
        green = running_recorder()
        run = green.test_run
        if run is None:
            return
        callbacks: list[Any] = list(getattr(handler, "callbacks", None) or [])
        if callbacks:
            greens = [c for c in callbacks if isinstance(c, GreenCallback)]
            explicit = [c for c in greens if not c.auto]
            winner = explicit[-1] if explicit else greens[0]
            if winner is not self:
                log.debug("another GreenCallback in this Trainer records it; %r stays idle", self)
                return
            codecarbon = any(_CODECARBON in (t.__name__ for t in type(c).__mro__) for c in callbacks)
        else:  # the handler was not found: judge by the Trainer's report_to
            codecarbon = "codecarbon" in (getattr(args, "report_to", None) or [])
        now = run.snapshot()
        tracking = _Tracking(run=run, green=green, started=now, mark=now, trial_mark=now)
        if codecarbon:
            tracking.codecarbon = (
                "transformers' CodeCarbonCallback (report_to='codecarbon') also tracks this "
                "training: its emissions.csv covers the same energy as this price tag, so do "
                "not add the two; greennlp's figures come from its own readers only"
            )
            _warn_once(tracking.codecarbon)
            run.notes.append(tracking.codecarbon)
        self._tracking = tracking

    # -- boundaries ---------------------------------------------------------------------

    def _close(self, t: _Tracking) -> dict[str, float]:
        """End the current segment at now; return its cost with its FLOPs added first."""
        fwd = bwd = 0
        method: str | None = None
        if t.phase == "train" and t.train_flops is not None:
            fwd, bwd = t.train_flops[0] * t.micro_batches, t.train_flops[1] * t.micro_batches
            method = t.flops_method
        elif t.phase == "evaluate" and t.eval_flops is not None:
            fwd, method = t.eval_flops * t.eval_batches, t.flops_method
        if method is not None and (fwd or bwd):
            t.run.add_flops(fwd, bwd, method=method)
        now = t.run.snapshot()
        cost = _cost_dict(t.run.cost_between(t.mark, now))
        t.mark = now
        return cost

    def _end_train_segment(self, t: _Tracking, state: Any) -> None:
        if self.flops == "trainer":
            self._add_trainer_flops(t, state)
        cost = self._close(t)
        segment = t.epochs.setdefault(t.epoch, _Segment("train", t.epoch))
        segment.add(cost)
        segment.micro_batches += t.micro_batches
        segment.steps += t.steps
        t.micro_batches = t.steps = 0

    def _add_trainer_flops(self, t: _Tracking, state: Any) -> None:
        total = _number(getattr(state, "total_flos", 0.0)) or 0.0
        delta = max(0.0, total - t.trainer_flos_mark)
        t.trainer_flos_mark = total
        if delta > 0:
            t.run.add_flops(int(delta / 3), int(delta - int(delta / 3)), method=_TRAINER_METHOD)

    def _count_train_flops(self, t: _Tracking, args: Any, model: Any, loader: Any) -> None:
        if self.flops == "trainer":
            t.flops_method = _TRAINER_METHOD
            return
        if self.flops == "none" or model is None or loader is None:
            return
        try:
            from pytest_greennlp.measure.flops import count_flops

            size = int(getattr(args, "per_device_train_batch_size", 8))
            batch = _sample_batch(loader, size)
            device = next(model.parameters()).device
            with t.run.paused():
                count = count_flops(model, _to_device(batch, device), backward=True)
        except (GreenNLPError, StopIteration, TypeError, ValueError, KeyError, IndexError) as exc:
            message = f"FLOPs of the Trainer's training could not be counted ({exc}); using its total_flos estimate"
            t.notes.append(message)
            _warn_once(message)
            self.flops = "trainer"
            t.flops_method = _TRAINER_METHOD
            return
        t.train_flops = (count.forward, count.backward)
        t.flops_method = (
            f"{count.method}, counted on one sample batch of {size} training examples "
            "x micro-batches (hf.GreenCallback); optimizer updates not counted"
        )

    def _count_eval_flops(self, t: _Tracking, args: Any, model: Any, loader: Any) -> None:
        if self.flops != "count" or t.eval_flops is not None or model is None or loader is None:
            return
        try:
            from pytest_greennlp.measure.flops import count_flops

            batch = _sample_batch(loader, int(getattr(args, "per_device_eval_batch_size", 8)))
            device = next(model.parameters()).device
            with t.run.paused():
                t.eval_flops = count_flops(model, _to_device(batch, device)).forward
        except (GreenNLPError, StopIteration, TypeError, ValueError, KeyError, IndexError) as exc:
            t.notes.append(f"evaluation FLOPs could not be counted ({exc}); left out")
            t.eval_flops = 0

    # -- scores -------------------------------------------------------------------------

    def _score_key(self, args: Any) -> str:
        if self.metric is not None:
            return self.metric
        name = getattr(args, "metric_for_best_model", None) or "loss"
        return name if name.startswith("eval_") else f"eval_{name}"

    def _direction(self, args: Any, key: str) -> bool:
        if self.higher_is_better is not None:
            return self.higher_is_better
        greater = getattr(args, "greater_is_better", None)
        if getattr(args, "metric_for_best_model", None) and isinstance(greater, bool) and self.metric is None:
            return greater
        return "loss" not in key

    # -- events -------------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._bind(args, _find_handler(self))
        t = self._tracking
        if t is None:
            return
        t.trainer_flos_mark = _number(getattr(state, "total_flos", 0.0)) or 0.0
        self._count_train_flops(t, args, kwargs.get("model"), kwargs.get("train_dataloader"))

    def on_substep_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._tracking is not None:
            self._tracking.micro_batches += 1

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        t = self._tracking
        if t is None:
            return
        t.micro_batches += 1
        t.steps += 1
        if control.should_evaluate and t.phase == "train":
            self._end_train_segment(t, state)
            t.phase = "evaluate"

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        t = self._tracking
        if t is None:
            return
        if t.phase == "train":
            self._end_train_segment(t, state)
        if control.should_evaluate:
            t.phase = "evaluate"
        t.epoch += 1

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._tracking is not None:
            self._tracking.eval_batches += 1

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        t = self._tracking
        if t is None:
            # evaluate() outside train(): a test may still want the metrics.
            green = running_recorder()
            if green.test_run is not None:
                self._record_metrics(green, args, metrics or {})
            return
        if t.phase == "train" and (t.micro_batches or t.steps):
            self._end_train_segment(t, state)
        self._count_eval_flops(t, args, kwargs.get("model"), kwargs.get("eval_dataloader"))
        t.phase = "evaluate"
        cost = self._close(t)
        batches, t.eval_batches = t.eval_batches, 0
        t.phase = "train"
        quality = self._record_metrics(t.green, args, metrics or {})
        key = self._score_key(args)
        t.last_score = quality.get(key)
        t.evaluations.append({
            "epoch": _number(getattr(state, "epoch", None)),
            "step": int(getattr(state, "global_step", 0)),
            "batches": batches,
            "metrics": quality,
            **cost,
        })
        if self.trials == "evaluation":
            self._trial(t, args, state, t.last_score, per="evaluation")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        t = self._tracking
        if t is None:
            return
        if t.phase == "train" and (t.micro_batches or t.steps):
            self._end_train_segment(t, state)
        if self.trials == "run":
            score = t.last_score
            best = _number(getattr(state, "best_metric", None))
            if getattr(args, "load_best_model_at_end", False) and best is not None:
                score = best
            if score is None:
                t.notes.append("no evaluation during training: no trial recorded (set eval_strategy)")
            else:
                self._trial(t, args, state, score, per="run")
        self._publish(t, args, state)
        self._tracking = None

    # -- recording ----------------------------------------------------------------------

    def _record_metrics(self, green: Recorder, args: Any, metrics: Mapping[str, Any]) -> dict[str, float]:
        quality: dict[str, float] = {}
        for name, value in metrics.items():
            number = _number(value)
            if number is None or not _is_quality(name):
                continue
            quality[name] = number
            green.metric(name, number, higher_is_better=self._direction(args, name) if name == self._score_key(args)
                         else "loss" not in name)
        return quality

    def _trial(self, t: _Tracking, args: Any, state: Any, score: float | None, *, per: str) -> None:
        now = t.run.snapshot()
        cost = _cost_dict(t.run.cost_between(t.trial_mark, now))
        t.trial_mark = now
        config: dict[str, Any] = {
            "learning_rate": getattr(args, "learning_rate", None),
            "num_train_epochs": getattr(args, "num_train_epochs", None),
            "per_device_train_batch_size": getattr(args, "per_device_train_batch_size", None),
            "weight_decay": getattr(args, "weight_decay", None),
        }
        config.update(dict(getattr(state, "trial_params", None) or {}))
        if per == "evaluation":
            config.update(epoch=_number(getattr(state, "epoch", None)), step=int(getattr(state, "global_step", 0)))
        seed = getattr(args, "seed", None)
        t.green.trial(
            score,
            cost=cost,
            config={k: v for k, v in config.items() if v is not None},
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            group=self.group,
            higher_is_better=self._direction(args, self._score_key(args)),
        )

    def _publish(self, t: _Tracking, args: Any, state: Any) -> None:
        """Write this run's figures into ``extra["hf_trainer"]["runs"]`` (one entry per run)."""
        data = t.run.extra.get(self.extra_key)
        runs: list[Any] = data["runs"] if isinstance(data, dict) and isinstance(data.get("runs"), list) else []
        entry = {
            "score_metric": self._score_key(args),
            "trials": self.trials,
            "flops_method": t.flops_method or "not counted",
            "trainer_total_flos": _number(getattr(state, "total_flos", None)),
            "trainer_total_flos_method": (
                "Trainer.floating_point_ops: 6 x parameters x tokens, an estimate; kept for "
                "comparison" + ("" if self.flops == "trainer" else ", not added to the test's FLOPs")
            ),
            "epochs": [
                {"epoch": s.epoch, "steps": s.steps, "micro_batches": s.micro_batches, **s.cost}
                for s in t.epochs.values()
            ],
            "evaluations": list(t.evaluations),
            "total": _cost_dict(t.run.cost_between(t.started, t.run.snapshot())),
            "complete": True,
            "codecarbon": t.codecarbon,
            "notes": list(t.notes),
        }
        if t.slot is None or t.slot >= len(runs):
            runs.append(entry)
            t.slot = len(runs) - 1
        else:
            runs[t.slot] = entry
        t.green.extra(self.extra_key, {"runs": runs})


_TRAINER_METHOD = (
    "Trainer's total_flos estimate (6 x parameters x tokens; forward 1/3, backward 2/3)"
)


class _AutoGreenCallback(GreenCallback):
    """The instance the session adds by itself; an explicit `GreenCallback` replaces it."""

    auto = True


@contextmanager
def auto_callback() -> Iterator[None]:
    """Add `GreenCallback` to every ``Trainer`` built inside this block.

    Appends it to ``transformers.trainer.DEFAULT_CALLBACKS`` (a module-level list the
    ``Trainer`` reads when it is built) and removes it at exit. The session does this
    around the call of each ``green_train`` test, only when ``transformers.trainer`` is
    already imported; no function is replaced.

    Examples
    --------
    >>> import transformers.trainer as trainer_module
    >>> with auto_callback():
    ...     any(cb.__name__ == "_AutoGreenCallback" for cb in trainer_module.DEFAULT_CALLBACKS)
    True
    >>> any(cb.__name__ == "_AutoGreenCallback" for cb in trainer_module.DEFAULT_CALLBACKS)
    False
    """
    module = sys.modules.get("transformers.trainer")
    if module is None:
        import transformers.trainer as module
    defaults = getattr(module, "DEFAULT_CALLBACKS", None)
    if not isinstance(defaults, list) or _AutoGreenCallback in defaults:
        yield
        return
    defaults.append(_AutoGreenCallback)
    try:
        yield
    finally:
        while _AutoGreenCallback in defaults:
            defaults.remove(_AutoGreenCallback)
