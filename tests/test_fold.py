"""The fold of driver rows into arrays (``keyservices.erp.fold``) against the plain way it stands
in for (``zip(*batch)``, one ``np.fromiter`` per column, ``np.array(batch, dtype=np.float64)``),
on every shape of value the drivers return, across batches and the growth of the columns."""

from __future__ import annotations

import datetime as dt
import decimal
import operator
from typing import Any

import numpy as np
import pytest

from keyservices.erp import ErpTables, attribute_id, facts, fold
from keyservices.erp.facts import read_customers
from keyservices.erp.fold import (
    CUSTOMER_COLUMNS,
    ColumnBuilder,
    CreatedDates,
    float_rows,
    fold_customers,
)
from keyservices.resources import example_rules_dir
from keyservices.rules import load_rules
from tests.conftest import ErpBuilder

AS_OF = dt.date(2026, 11, 24)
D = decimal.Decimal


def _plain(batches: list[list[tuple]]) -> dict[str, np.ndarray]:
    """What the columns must hold: the plain fold, one column at a time, joined at the end."""
    shared: dict[Any, Any] = {}
    dates: dict[Any, Any] = {None: None}
    cols: dict[str, list[Any]] = {name: [] for name in CUSTOMER_COLUMNS}
    for batch in batches:
        for name, values in zip(CUSTOMER_COLUMNS, zip(*batch)):
            cols[name] += values
    for name in fold.SHARED_COLUMNS:
        cols[name] = [shared.setdefault(v, v) for v in cols[name]]
    for raw in cols["created"]:
        if raw not in dates:
            dates[raw] = (raw if isinstance(raw, dt.datetime) else
                          dt.datetime.fromisoformat(raw) if isinstance(raw, str)
                          else dt.datetime.combine(raw, dt.time()))
    out = {name: _objects(cols[name]) for name in CUSTOMER_COLUMNS}
    out["created"] = _objects([dates[raw] for raw in cols["created"]])
    out["ids"] = np.array(cols["ids"], dtype=np.int64)
    out["parent_id"] = np.array([-1 if v is None else v for v in cols["parent_id"]], np.int64)
    for name in ("active", "prospect"):
        out[name] = np.array([bool(v) for v in cols[name]], dtype=bool)
    out["has_value_row"] = np.array([v is not None for v in cols["has_value_row"]], dtype=bool)
    try:
        out["config_id"] = np.fromiter((-1 if v is None else v for v in cols["config_id"]),
                                       np.int64)
    except (TypeError, ValueError, OverflowError):
        pass
    return out


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _folded(batches: list[list[tuple]]) -> dict[str, np.ndarray]:
    shared: dict[Any, Any] = {}
    created = CreatedDates()
    builder = ColumnBuilder()
    for batch in batches:
        builder.add(fold_customers(batch, shared.setdefault, created))
    return builder.arrays()


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for name, expected in want.items():
        values = got[name]
        assert values.dtype == expected.dtype, name
        assert len(values) == len(expected), name
        for a, b in zip(values.tolist(), expected.tolist()):
            assert type(a) is type(b) and (a == b or (a is None and b is None)), (name, a, b)


def _row(cid: Any, *, parent: Any = None, active: Any = 1, prospect: Any = 0, config: Any = 101,
         created: Any = "2015-01-01 00:00:00.000000", industry: Any = "Legal",
         value: Any = "CPY") -> tuple:
    return (cid, f"N{cid}", f"Name {cid}", parent, active, prospect, config, created, industry,
            "Dana Rep", "Main", None if value is None else cid, value)


@pytest.fixture
def small_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Columns that start tiny, so that three rows already make them grow."""
    monkeypatch.setattr(fold, "_FIRST_ROWS", 2)


def test_sqlite_shapes_fold_like_the_plain_way(small_columns: None) -> None:
    batches = [[_row(1), _row(2, parent=1, active=0, value=None), _row(3, config=None)],
               [_row(4, parent=2, created="2016-02-03 04:05:06", industry=None),
                # SQLite hands back whatever a flag column holds: text "0" is true to bool()
                _row(5, active="0", prospect="", created=None)],
               [_row(6, active=None, prospect=2, created="2016-02-03")]]
    got = _folded(batches)
    _assert_same(got, _plain(batches))
    assert got["active"].tolist() == [True, False, True, True, True, False]
    assert got["parent_id"].tolist() == [-1, 1, -1, 2, -1, -1]
    assert got["config_id"].tolist() == [101, 101, -1, 101, 101, 101]
    assert got["has_value_row"].tolist() == [True, False, True, True, True, True]
    assert got["created"][3] == dt.datetime(2016, 2, 3, 4, 5, 6)


def test_other_drivers_shapes_fold_like_the_plain_way(small_columns: None) -> None:
    """pyodbc: Decimal ids, datetime and date values; PostgreSQL: bool flags."""
    batches = [[_row(D(10), parent=D(3), config=D(7), active=True, prospect=False,
                     created=dt.datetime(2020, 1, 2, 3, 4)),
                _row(11, created=dt.date(2021, 5, 6), active=False)],
               [_row(12, created=dt.datetime(2020, 1, 2, 3, 4), value=None)]]
    got = _folded(batches)
    _assert_same(got, _plain(batches))
    assert got["ids"].tolist() == [10, 11, 12] and got["parent_id"].tolist() == [3, -1, -1]
    assert got["created"][1] == dt.datetime(2021, 5, 6)
    assert got["created"][0] is got["created"][2]  # one datetime per distinct value


def _fresh(text: str) -> str:
    """An equal string that is another object, as a driver makes one per row."""
    return text.encode().decode()


def test_repeated_text_is_one_object_across_batches_and_columns(small_columns: None) -> None:
    batches = [[_row(1, industry=_fresh("Legal"))],
               [_row(2, industry=_fresh("Legal"), value=_fresh("Legal"))],
               [_row(3, industry=_fresh("Legal"))]]
    assert batches[0][0][8] is not batches[1][0][8]  # the driver made two objects
    got = _folded(batches)
    industries = got["industry"].tolist()
    assert industries[0] is industries[1] is industries[2] is got["current_value"][1]
    names = got["name"].tolist()
    assert [n is r[2] for n, r in zip(names, [b[0] for b in batches])] == [True] * 3


def test_config_ids_that_are_not_all_ids_stay_objects_whatever_the_batch(
        small_columns: None) -> None:
    """A batch whose configuration ids are not all integers keeps them as they are; the batches
    before and after it (int64 with -1) then become objects with None, in their places."""
    batches = [[_row(1), _row(2, config=None), _row(3)],
               [_row(4, config="CFG-A"), _row(5, config=None)],
               [_row(6, config=None), _row(7, config=8)]]
    got = _folded(batches)
    _assert_same(got, _plain(batches))
    assert got["config_id"].dtype == object
    assert got["config_id"].tolist() == [101, None, 101, "CFG-A", None, None, 8]


def test_an_id_that_is_no_number_fails_as_before() -> None:
    with pytest.raises(ValueError):
        _folded([[_row(1, parent="x")]])
    with pytest.raises(TypeError):
        _folded([[_row(None)]])


def test_no_rows_no_columns() -> None:
    builder = ColumnBuilder()
    builder.add({})
    assert builder.arrays() == {} and builder.size == 0


@pytest.mark.parametrize("batch", [
    [(1, 2), (3, 4)],
    [(1, 2.5, None), (2, None, -0.0)],  # NULL aggregates are NaN
    [(1, D("1.10"), D("1E+400")), (2, True, 2 ** 70)],
    [(1, "1.5", " 2 ")],  # text numbers (SQLite MAX over a text column)
])
def test_float_rows_are_what_np_array_makes(batch: list[tuple]) -> None:
    got, want = float_rows(batch), np.array(batch, dtype=np.float64)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64))  # NaN and -0.0 too


def test_float_rows_refuse_what_np_array_refuses() -> None:
    with pytest.raises(ValueError):
        np.array([(1, "abc")], dtype=np.float64)
    with pytest.raises(ValueError):
        float_rows([(1, "abc")])


def test_read_customers_over_many_small_batches(erp: ErpBuilder, small_columns: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole read, a few rows per fetch: the columns are those of one plain fold."""
    monkeypatch.setattr(facts, "NATIVE_ROWS", 2)
    top = erp.customer("P1", "Parent", value="CPY")
    for i in range(6):
        erp.customer(f"L{i}", f"Location {i}", parent=top, active=i % 2 == 0,
                     config=None if i == 3 else 101, value=None if i == 4 else "CPY")
    rules = load_rules(example_rules_dir())
    with erp.engine.connect() as conn:
        attr = attribute_id(conn, ErpTables(), rules.property)
        table = read_customers(conn, ErpTables(), rules, attr, AS_OF)
        stmt = facts.customers_query(ErpTables(), rules, attr)
        rows = [tuple(r) for r in conn.execute(stmt)]
    want = _plain([rows])
    assert np.array_equal(table.ids, want.pop("ids"))
    _assert_same(table.columns, want)
    assert table.columns["parent_id"].tolist() == [-1] + [top] * 6
    values = table.columns["current_value"].tolist()
    assert values[0] is values[1] and values[5] is None
    assert len({id(v) for v in table.columns["created"].tolist()}) == 1


def test_is_not_none_is_identity_not_equality() -> None:
    """``has_value_row`` asks whether the joined row is there, not what its id compares to."""

    class Odd:
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = object.__hash__

    row = _row(1)[:11] + (Odd(),) + _row(1)[12:]
    got = fold_customers([row], {}.setdefault, CreatedDates())
    assert got["has_value_row"].tolist() == [operator.is_not(row[11], None)] == [True]
