"""The records' shared base: dataclass behaviour without generated methods."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from pytest_greennlp.records import Metric, Record, TestRecord, Timing, Trial, TrialCost


def timing(**changes: object) -> Timing:
    values: dict[str, object] = {"wall_s": 1.0, "cpu_s": 0.5, "wall_samples_s": (1.0,),
                                 "cpu_samples_s": (0.5,)}
    return Timing(**{**values, **changes})  # type: ignore[arg-type]


def test_records_are_dataclasses_with_fields_and_replace() -> None:
    assert dataclasses.is_dataclass(Timing) and issubclass(Timing, Record)
    assert [f.name for f in dataclasses.fields(Metric)] == ["name", "value", "higher_is_better"]
    changed = dataclasses.replace(timing(), wall_s=2.0)
    assert (changed.wall_s, changed.cpu_s, changed.warmup_runs) == (2.0, 0.5, 0)


def test_positional_keyword_and_default_arguments() -> None:
    assert Timing(1.0, 0.5, (1.0,), (0.5,)) == timing()
    assert Metric("acc", 0.9) == Metric(value=0.9, name="acc", higher_is_better=True)
    assert Metric("acc", 0.9) != Metric("acc", 0.9, False)
    assert Metric("acc", 0.9) != ("acc", 0.9, True)  # a record equals only its own class
    first, second = Trial("g", 1.0), Trial("g", 1.0)
    assert first.cost == TrialCost() and first.config == {}
    assert first.config is not second.config  # a default factory runs per instance


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Timing(1.0), "Timing() missing required argument 'cpu_s'"),
        (lambda: Metric("a", 1.0, True, 4), "Metric() takes 3 positional arguments but 4 were given"),
        (lambda: Metric("a", 1.0, name="b"), "Metric() got multiple values for argument 'name'"),
        (lambda: Metric("a", 1.0, unit="%"), "Metric() got an unexpected keyword argument 'unit'"),
    ],
)
def test_bad_arguments_fail_like_a_dataclass(call: object, message: str) -> None:
    with pytest.raises(TypeError) as info:
        call()  # type: ignore[operator]
    assert str(info.value) == message


def test_records_are_immutable_and_hashable_by_value() -> None:
    record = timing()
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.wall_s = 3.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del record.cpu_s  # type: ignore[misc]
    assert hash(record) == hash(timing()) and len({record, timing(), timing(wall_s=2.0)}) == 2
    with pytest.raises(TypeError):
        hash(Trial("g", 1.0))  # a dict field: unhashable, as with a frozen dataclass


def test_repr_lists_fields_in_order() -> None:
    assert repr(Metric(value=0.5, name="acc")) == "Metric(name='acc', value=0.5, higher_is_better=True)"


def test_copy_and_pickle_round_trip() -> None:
    record = TestRecord(nodeid="t::x", kind="train", outcome="passed", timing=timing(),
                        trials=(Trial("g", 0.5, config={"lr": 0.1}),))
    assert pickle.loads(pickle.dumps(record)) == record
    assert copy.deepcopy(record) == record and copy.copy(record) == record


def test_fields_read_from_the_class_body_are_the_ones_dataclasses_finds() -> None:
    """`Record` reads field names and defaults itself and lets `dataclasses` process a
    class only on first use: both must agree, for every record class."""
    from pytest_greennlp import records

    classes = [c for c in vars(records).values()
               if isinstance(c, type) and issubclass(c, Record) and c is not Record]
    assert len(classes) >= 16
    for cls in classes:
        fields = dataclasses.fields(cls)
        assert cls._names == tuple(f.name for f in fields), cls.__name__
        assert cls._optional == tuple(
            (f.name, f.default, f.default_factory) for f in fields
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        ), cls.__name__
    assert not dataclasses.is_dataclass(Record)


def test_a_record_class_becomes_a_dataclass_on_first_use() -> None:
    class Late(Record):
        """A record class nobody has asked about yet."""

        name: str
        size: int = 3
        tags: tuple[str, ...] = dataclasses.field(default_factory=tuple)

    assert "__dataclass_fields__" not in vars(Late)  # not processed at definition
    assert Late("x") == Late(name="x", size=3, tags=())
    assert dataclasses.is_dataclass(Late)
    assert [f.name for f in dataclasses.fields(Late)] == ["name", "size", "tags"]
    assert dataclasses.replace(Late("x"), size=4).size == 4
