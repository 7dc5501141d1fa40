"""The `green` fixture: what only the test knows (model, examples, metrics, trials, regions)."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Mapping

from pytest_greennlp.errors import ConfigError
from pytest_greennlp.records import Metric, Trial, TrialCost

if TYPE_CHECKING:
    from pytest_greennlp.measure.flops import FlopCount
    from pytest_greennlp.session import TestRun

__all__ = ["Recorder", "running_recorder"]


class Recorder:
    """The object the ``green`` fixture returns.

    Under ``pytest --green`` in a test marked ``green_train`` or ``green_infer`` every call
    is recorded in the test's price tag. Otherwise each call does nothing (and
    `model` counts nothing), so tests can use the fixture unconditionally.
    """

    def __init__(self, run: TestRun | None) -> None:
        self._run = run

    @property
    def enabled(self) -> bool:
        """True when this test's calls are being recorded."""
        return self._run is not None

    def model(
        self,
        model: Any,
        example_inputs: Any,
        *,
        backward: bool | None = None,
        calls: int = 1,
        loss_fn: Any = None,
    ) -> FlopCount | None:
        """Count the FLOPs of ``model`` on ``example_inputs`` in a separate counting pass.

        The pass runs now, outside the timed window, with torch's ``FlopCounterMode``.
        ``backward`` defaults to True in ``green_train`` tests. ``calls`` is how many
        such batches the test processes; the test's FLOPs grow by ``calls`` times the count.
        Returns the count for one call (None when not recording).
        """
        if calls < 0:
            raise ConfigError(f"green.model: calls must be >= 0, got {calls!r}")
        run = self._run
        if run is None or not run.recording:
            return None
        return run.count_model(model, example_inputs, backward=backward, calls=calls, loss_fn=loss_fn)

    def flops(self, forward: int, backward: int = 0) -> None:
        """Add FLOPs the test computed itself (for non-torch code or analytic counts)."""
        for name, value in (("forward", forward), ("backward", backward)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"green.flops: {name} must be an integer >= 0, got {value!r}")
        if self._run is not None and self._run.recording:
            self._run.add_flops(forward, backward, method="declared by the test (green.flops)")

    def examples(self, n: int) -> None:
        """Add ``n`` processed examples (overrides the marker's ``examples=`` for this test)."""
        if self._run is not None and self._run.recording:
            self._run.add_count("examples", _count(n, "green.examples"))

    def tokens(self, n: int) -> None:
        """Add ``n`` processed tokens (overrides the marker's ``tokens=`` for this test)."""
        if self._run is not None and self._run.recording:
            self._run.add_count("tokens", _count(n, "green.tokens"))

    def metric(self, name: str, value: float, *, higher_is_better: bool = True) -> None:
        """Record a quality figure such as accuracy; the last value for a name wins."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"green.metric: name must be a non-empty string, got {name!r}")
        number = _number(value, f"green.metric({name!r})")
        if self._run is not None and self._run.recording:
            self._run.metrics[name] = Metric(name, number, bool(higher_is_better))

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
    ) -> None:
        """Record one hyperparameter or seed trial.

        Without ``cost`` the trial costs what was measured since the previous trial (or
        the start of the test): wall and CPU seconds, energy and counted FLOPs. A failed
        trial passes ``score=None`` (or NaN) and ``status="failed"``; it still counts in
        the budget. ``group`` defaults to the test function's name, so the cases of a
        parametrized test form one group.
        """
        if status not in ("ok", "failed", "stopped"):
            raise ConfigError(f"green.trial: status must be 'ok', 'failed' or 'stopped', got {status!r}")
        number = None if score is None else _number(score, "green.trial score")
        if number is not None and math.isnan(number):
            number = None
        if number is None and status == "ok":
            status = "failed"
        explicit = _trial_cost(cost) if cost is not None else None
        if config is not None:
            _check_json(dict(config), "green.trial config")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError(f"green.trial: seed must be an integer, got {seed!r}")
        run = self._run
        if run is None or not run.recording:
            return
        measured = run.trial_boundary()
        run.trials.append(
            Trial(
                group=group or run.default_group,
                score=number,
                status=status,
                cost=explicit if explicit is not None else measured,
                config=dict(config or {}),
                seed=seed,
                higher_is_better=bool(higher_is_better),
            )
        )

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        """Measure only this region of the test; several regions add up.

        Once a test enters a region its time and energy figures cover the regions only,
        not set-up work such as loading data.
        """
        run = self._run
        if run is None:
            yield
            return
        run.enter_region()
        try:
            yield
        finally:
            run.exit_region()

    def sweep(self, model: Any, data: Any, **options: Any) -> Any:
        """Sweep a multi-exit model's thresholds and record the curve in the price tag.

        Calls `pytest_greennlp.multiexit.record_sweep` (see it for ``options``: ``dev``
        for temperature calibration, ``thresholds``, ``measured_thresholds``, ...) and
        returns its `SweepResult`. The sweep runs without ``--green`` too (tests may
        assert on it); it is recorded only when this test is being recorded.
        """
        from pytest_greennlp.multiexit import record_sweep

        return record_sweep(self if self.test_run is not None else None, model, data, **options)

    def note(self, text: str) -> None:
        """Attach a short free-text note to the test's price tag."""
        if self._run is not None and self._run.recording:
            self._run.notes.append(str(text)[:500])

    def extra(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under ``extra[key]`` in the test's record.

        Raises `ConfigError` for a value JSON cannot hold (an object, a cycle), so the
        mistake shows in this test rather than as a report that cannot be written.
        """
        _check_json(value, f"green.extra({key!r})")
        if self._run is not None and self._run.recording:
            self._run.extra[str(key)] = value


    # -- for hf, halving and distributed ------------------------------------------------

    @property
    def test_run(self) -> TestRun | None:
        """The test's measurement state; None when not recording (for hf, halving, distributed)."""
        return self._run if self._run is not None and self._run.recording else None

    def spawn(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        nprocs: int = 2,
        *,
        backend: str = "gloo",
        init: bool = True,
    ) -> None:
        """Run ``fn(rank, *args)`` in ``nprocs`` processes with ``torch.distributed`` set up.

        Like ``torch.multiprocessing.spawn``, plus one price tag for the whole job: each
        rank's CPU time, process-scope energy and reported FLOPs are added to this test's
        figures; machine-wide counters are read by this process only. ``init=False``
        only sets the ``env://`` variables, for code that calls ``init_process_group``
        itself. See `pytest_greennlp.distributed.spawn`.
        """
        from pytest_greennlp.distributed import spawn

        spawn(self.test_run, fn, args, nprocs=nprocs, backend=backend, init=init)


def running_recorder() -> Recorder:
    """Return the recorder of the marked test whose call is running in this process.

    For code that cannot reach the ``green`` fixture (a ``transformers`` callback). It
    records nothing when no marked test runs under ``--green``.
    """
    session = sys.modules.get("pytest_greennlp.session")
    return Recorder(session.running_test() if session is not None else None)



def _count(n: object, where: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"{where}: expected an integer >= 0, got {n!r}")
    return n


def _check_json(value: object, where: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        reason = "it contains itself" if isinstance(exc, (RecursionError, ValueError)) else exc
        raise ConfigError(f"{where}: the value must be JSON-serialisable ({reason})") from None


def _number(value: object, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None


_COST_KEYS = {"wall_s", "cpu_s", "measured_j", "estimated_j", "flops"}


def _trial_cost(cost: Mapping[str, float]) -> TrialCost:
    unknown = sorted(set(cost) - _COST_KEYS)
    if unknown:
        raise ConfigError(
            f"green.trial: unknown cost key {unknown[0]!r}; expected {', '.join(sorted(_COST_KEYS))}"
        )
    values: dict[str, Any] = {}
    for key, value in cost.items():
        number = _number(value, f"green.trial cost {key!r}")
        if number < 0 or math.isnan(number):
            raise ConfigError(f"green.trial: cost {key!r} must be >= 0, got {value!r}")
        values[key] = int(number) if key == "flops" else number
    return TrialCost(**values)
