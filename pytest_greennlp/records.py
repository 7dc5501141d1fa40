"""Report records: frozen dataclasses with units in their names, `to_dict` / strict `from_dict`.

Every figure says how it was obtained. Energy keeps measured and estimated joules apart
(``measured_j`` / ``estimated_j``); nothing adds the two into one bare number.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import types
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Mapping, TypeVar, Union

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "SCHEMA_VERSION",
    "Record",
    "CarbonIntensity",
    "Emissions",
    "Energy",
    "EnergyPart",
    "Fingerprint",
    "Flops",
    "Gpu",
    "Kind",
    "Memory",
    "Metric",
    "Report",
    "Settings",
    "TestRecord",
    "Timing",
    "Totals",
    "Trial",
    "TrialCost",
    "from_dict",
    "to_dict",
]

#: Bumped on any incompatible change of the report layout. Readers refuse newer versions.
SCHEMA_VERSION = 1

Kind = Literal["train", "infer"]
Outcome = Literal["passed", "failed", "skipped", "error", "xfailed", "xpassed"]
TrialStatus = Literal["ok", "failed", "stopped"]


class _DeferredFields:
    """``__dataclass_fields__`` of a record class: `dataclasses.dataclass` runs on first use.

    ``dataclasses.fields``, ``replace`` and ``is_dataclass`` all look this attribute up,
    which processes the class then; `dataclasses.dataclass` stores the real one on the
    class, which hides this descriptor from then on. Processing the 16 record classes
    at import cost about 2.5 ms of every ``pytest --green`` start-up, where the session
    itself needs none of it (only `from_dict`, `replace` and the JSON Schema do).
    """

    def __get__(self, instance: object, owner: type) -> dict[str, dataclasses.Field[Any]]:
        if owner is Record:  # the base itself is not a dataclass
            raise AttributeError("__dataclass_fields__")
        dataclass(init=False, repr=False, eq=False)(owner)
        return typing.cast(dict[str, "dataclasses.Field[Any]"], owner.__dict__["__dataclass_fields__"])


@typing.dataclass_transform(eq_default=True, frozen_default=True, field_specifiers=(field,))
class Record:
    """Base of every record: a dataclass that is immutable and compared and hashed by value.

    Subclasses are dataclasses: ``dataclasses.fields``, ``replace`` and ``is_dataclass``
    work on them (`dataclasses.dataclass` processes a class on the first such use, see
    `_DeferredFields`), and assignment raises ``dataclasses.FrozenInstanceError``. Their
    ``__init__``, ``__eq__``, ``__hash__``, ``__repr__`` and immutability are this class's
    methods rather than code that `dataclasses` generates and compiles for every class:
    for these 16 classes that compiling took about 20 ms, the largest fixed cost of
    ``pytest --green``. A test checks that the field names and defaults read here from
    the class body are the ones `dataclasses` finds.
    """

    __slots__ = ()
    __dataclass_fields__: typing.ClassVar[Any] = _DeferredFields()
    _names: typing.ClassVar[tuple[str, ...]] = ()
    _name_set: typing.ClassVar[frozenset[str]] = frozenset()
    _optional: typing.ClassVar[tuple[tuple[str, Any, Any], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The fields as `dataclasses` will find them: the class's own annotations, in
        # order, but class variables; a default is the class attribute, or a `field`'s.
        names = []
        optional = []
        for name, annotation in inspect.get_annotations(cls).items():
            if _is_class_var(annotation):
                continue
            names.append(name)
            if name in cls.__dict__:
                default = cls.__dict__[name]
                if isinstance(default, dataclasses.Field):
                    optional.append((name, default.default, default.default_factory))
                else:
                    optional.append((name, default, dataclasses.MISSING))
        cls._names = tuple(names)
        cls._name_set = frozenset(names)
        cls._optional = tuple(optional)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The instance's __dict__ holds the fields in declaration order (`fields_dict`
        # relies on it). ``kwargs`` is a new dict on every call: with every field given by
        # keyword in that order (how the session builds records, once per test) it is used
        # as it is.
        if args or tuple(kwargs) != self._names:
            kwargs = self._bind(args, kwargs)
        object.__setattr__(self, "__dict__", kwargs)

    @classmethod
    def _bind(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Map positional and keyword arguments to fields and fill in defaults, like a dataclass."""
        names = cls._names
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} positional arguments "
                            f"but {len(args)} were given")
        if not kwargs.keys() <= cls._name_set:
            unknown = sorted(kwargs.keys() - cls._name_set)[0]
            raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {unknown!r}")
        values = dict(zip(names, args))
        if not values.keys().isdisjoint(kwargs):
            twice = sorted(values.keys() & kwargs.keys())[0]
            raise TypeError(f"{cls.__name__}() got multiple values for argument {twice!r}")
        values.update(kwargs)
        for name, default, factory in cls._optional:
            if name not in values:
                values[name] = default if factory is dataclasses.MISSING else factory()
        if len(values) < len(names):
            missing = next(n for n in names if n not in values)
            raise TypeError(f"{cls.__name__}() missing required argument {missing!r}")
        return {name: values[name] for name in names}

    @classmethod
    def _trusted(cls, fields: dict[str, Any]) -> Self:
        """The record of ``fields``: every field by name, in declaration order, already valid.

        Nothing is checked, and ``fields`` becomes the record's own dict. For the session,
        which builds seven records per test: this costs half of a keyword call. The tests
        check that the records it builds this way have every field, in order.
        """
        record = _new_object(cls)
        _set_attribute(record, "__dict__", fields)
        return record

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def fields_dict(self) -> dict[str, Any]:
        """The fields by name, in declaration order (nested records stay records).

        The instance's own dict: read it, never change it.
        """
        return self.__dict__

    def _values(self) -> tuple[Any, ...]:
        return tuple(self.__dict__.values())

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == typing.cast(Record, other)._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items())
        return f"{type(self).__qualname__}({inner})"


_new_object = object.__new__
_set_attribute = object.__setattr__


def _is_class_var(annotation: Any) -> bool:
    if isinstance(annotation, str):  # this module's annotations are strings (PEP 563)
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return annotation is typing.ClassVar or typing.get_origin(annotation) is typing.ClassVar


class EnergyPart(Record):
    """Energy of one domain (``cpu``, ``ram``, ``gpu:<uuid>``) from one reader."""

    domain: str
    energy_j: float
    method: str
    measured: bool
    source: str
    scope: Literal["machine", "process"]


class Energy(Record):
    """Energy of a window, measured and estimated joules kept apart.

    ``measured_j`` sums the parts read from counters or power sensors, ``estimated_j``
    the parts computed from a model; either is None when no part of that basis exists.
    With repeats, every figure is the median over the measured runs and the per-run
    totals are in ``samples_measured_j`` / ``samples_estimated_j``.
    """

    parts: tuple[EnergyPart, ...]
    measured_j: float | None
    estimated_j: float | None
    samples_measured_j: tuple[float, ...] = ()
    samples_estimated_j: tuple[float, ...] = ()
    attribution: str = "window"


class Emissions(Record):
    """CO2-equivalent grams: energy x PUE x grid intensity, per energy basis."""

    from_measured_g: float | None
    from_estimated_g: float | None


class Timing(Record):
    """Wall and process CPU time of the measured runs (median, and every sample)."""

    wall_s: float
    cpu_s: float
    wall_samples_s: tuple[float, ...]
    cpu_samples_s: tuple[float, ...]
    warmup_runs: int = 0
    synchronized: tuple[str, ...] = ()


class Flops(Record):
    """Floating-point operations; 1 multiply-add = 2 FLOPs."""

    forward: int
    backward: int
    total: int
    method: str
    convention: str = "1 multiply-add = 2 FLOPs"


class Memory(Record):
    """Peak memory of the test; ``rss_method`` says whether the peak is per test."""

    peak_rss_bytes: int | None
    rss_method: str
    cuda_peak_allocated_bytes: int | None = None


class Metric(Record):
    """A quality figure the test reported through ``green.metric``."""

    name: str
    value: float | None
    higher_is_better: bool = True


class TrialCost(Record):
    """What one trial cost; None where it was not measured."""

    wall_s: float | None = None
    cpu_s: float | None = None
    measured_j: float | None = None
    estimated_j: float | None = None
    flops: int | None = None


class Trial(Record):
    """One hyperparameter or seed trial; failed and stopped trials count in the budget."""

    group: str
    score: float | None
    status: TrialStatus = "ok"
    cost: TrialCost = field(default_factory=TrialCost)
    config: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    higher_is_better: bool = True


class TestRecord(Record):
    """The price tag of one marked test."""

    __test__ = False  # not a pytest test class

    nodeid: str
    kind: Kind
    outcome: Outcome
    worker: str | None = None
    examples: int | None = None
    tokens: int | None = None
    timing: Timing | None = None
    flops: Flops | None = None
    energy: Energy | None = None
    co2e: Emissions | None = None
    memory: Memory | None = None
    metrics: tuple[Metric, ...] = ()
    trials: tuple[Trial, ...] = ()
    limits: Mapping[str, float] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


class Gpu(Record):
    """One GPU as NVML reports it."""

    index: int
    name: str
    uuid: str
    driver: str
    memory_total_bytes: int | None = None


class Fingerprint(Record):
    """The hardware and software a report was measured on."""

    cpu_model: str
    cpu_count: int
    memory_total_bytes: int | None
    platform: str
    python: str
    device: str
    torch: str | None = None
    cuda: str | None = None
    gpus: tuple[Gpu, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


class CarbonIntensity(Record):
    """Grid carbon intensity and PUE used for every CO2e figure of the run."""

    region: str
    g_per_kwh: float
    source: str
    year: int | None
    pue: float


class Settings(Record):
    """The measurement settings of the run."""

    repeats: int
    warmup: int
    energy_sources: tuple[str, ...]
    xdist_workers: int = 0


class Totals(Record):
    """Sums over the report's tests, per basis; None where no test had the figure."""

    tests: int
    wall_s: float
    cpu_s: float
    flops: int | None
    measured_j: float | None
    estimated_j: float | None
    co2e_from_measured_g: float | None
    co2e_from_estimated_g: float | None


class Report(Record):
    """A whole ``green-report.json``."""

    tool_version: str
    complete: bool
    exit_status: int | None
    started_at: str
    finished_at: str | None
    fingerprint: Fingerprint
    carbon: CarbonIntensity
    settings: Settings
    tests: tuple[TestRecord, ...]
    totals: Totals
    run_energy: Energy | None = None
    notes: tuple[str, ...] = ()
    schema_version: int = SCHEMA_VERSION


# --- serialisation -----------------------------------------------------------------

T = TypeVar("T")


def to_dict(record: Any) -> dict[str, Any]:
    """Return a JSON-ready dict of a record (tuples become lists, NaN becomes None)."""
    return typing.cast(dict[str, Any], _jsonable(record))


_ATOMS = frozenset({str, int, bool, type(None)})


def _jsonable(value: Any) -> Any:
    # Like dataclasses.asdict, without its deep copies or ABC checks: it runs for every
    # figure of every test when a report is written.
    cls = type(value)
    if cls in _ATOMS:
        return value
    if cls is float:
        return value if math.isfinite(value) else None
    if isinstance(value, Record):
        return {name: _jsonable(field) for name, field in value.__dict__.items()}
    if cls is tuple or cls is list:
        return [_jsonable(v) for v in value]
    if cls is dict:
        return {_key(k): _jsonable(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    return value


def _key(key: Any) -> str:
    # Object keys as the json module writes them (True -> "true", None -> "null").
    if key is True or key is False or key is None:
        return "true" if key else "false" if key is False else "null"
    return str(key)


@functools.cache
def _fields_and_hints(cls: type) -> tuple[dict[str, dataclasses.Field[Any]], dict[str, Any]]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}, typing.get_type_hints(cls)


class _Invalid(ValueError):
    """A value that does not fit a field; carries the dotted path for the message."""


def from_dict(cls: type[T], data: Any, *, where: str = "") -> T:
    """Build ``cls`` from ``data`` strictly: unknown keys, missing keys and wrong types fail.

    Raises
    ------
    ValueError
        One line naming the path of the offending field and what was expected.
    """
    return typing.cast(T, _build(cls, data, where or cls.__name__))


def _build(tp: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _build_dataclass(tp, data, where)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if data is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _build(arg, data, where)
            except _Invalid as exc:
                errors.append(str(exc))
        raise _Invalid(errors[0] if len(errors) == 1 else f"{where}: unexpected value {_short(data)}")
    if origin is Literal:
        if data not in typing.get_args(tp):
            allowed = ", ".join(repr(a) for a in typing.get_args(tp))
            raise _Invalid(f"{where}: expected one of {allowed}, got {_short(data)}")
        return data
    if origin is tuple:
        if not isinstance(data, list):
            raise _Invalid(f"{where}: expected a list, got {_short(data)}")
        (item,) = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return tuple(_build(item, v, f"{where}[{i}]") for i, v in enumerate(data))
    if origin in (dict, Mapping) or tp in (dict, Mapping) or origin is typing.get_origin(Mapping[str, Any]):
        if not isinstance(data, dict):
            raise _Invalid(f"{where}: expected an object, got {_short(data)}")
        args = typing.get_args(tp)
        value_tp = args[1] if args else Any
        return {str(k): _build(value_tp, v, f"{where}.{k}") for k, v in data.items()}
    if tp is Any:
        return data
    if tp is bool:
        if not isinstance(data, bool):
            raise _Invalid(f"{where}: expected true or false, got {_short(data)}")
        return data
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise _Invalid(f"{where}: expected an integer, got {_short(data)}")
        return data
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise _Invalid(f"{where}: expected a number, got {_short(data)}")
        return float(data)
    if tp is str:
        if not isinstance(data, str):
            raise _Invalid(f"{where}: expected a string, got {_short(data)}")
        return data
    raise TypeError(f"unsupported field type {tp!r}")  # a bug in this module, not bad input


def _build_dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise _Invalid(f"{where}: expected an object, got {_short(data)}")
    fields, hints = _fields_and_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise _Invalid(f"{where}: unknown key {unknown[0]!r}")
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _Invalid(f"{where}: missing key {name!r}")
            continue
        kwargs[name] = _build(hints[name], data[name], f"{where}.{name}")
    return cls(**kwargs)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- JSON Schema ---------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of a report, derived from these dataclasses.

    The shipped ``schema/green-report.schema.json`` is this function's output; a test
    keeps the two identical.
    """
    defs: dict[str, Any] = {}
    root = _schema_of(Report, defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://pytest-greennlp.invalid/green-report.v{SCHEMA_VERSION}.schema.json",
        "title": "pytest-greennlp report",
        **root,
        "$defs": dict(sorted(defs.items())),
    }


def _schema_of(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if tp is Report:
            return _object_schema(tp, defs)
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}  # placeholder against recursion
            defs[tp.__name__] = _object_schema(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if origin in (Union, types.UnionType):
        return {"anyOf": [_schema_of(a, defs) for a in typing.get_args(tp)]}
    if origin is Literal:
        return {"enum": list(typing.get_args(tp))}
    if origin is tuple:
        (item,) = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return {"type": "array", "items": _schema_of(item, defs)}
    if origin in (dict, Mapping) or origin is typing.get_origin(Mapping[str, Any]):
        value_tp = typing.get_args(tp)[1]
        return {"type": "object"} if value_tp is Any else {
            "type": "object", "additionalProperties": _schema_of(value_tp, defs)}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
    if tp is Any:
        return {}
    return {"type": simple[tp]}


def _object_schema(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    props = {f.name: _schema_of(hints[f.name], defs) for f in fields}
    if cls is Report:
        props["schema_version"] = {"const": SCHEMA_VERSION}
    required = [f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if cls is Report:
        required.append("schema_version")
    doc = (cls.__doc__ or "").strip().splitlines()[0]
    return {"type": "object", "description": doc, "properties": props,
            "required": required, "additionalProperties": False}
