"""Driver rows folded into arrays: the Python work between a batch of rows and the columns the
run keeps, done in as few passes over the values as the results allow.

Why it matters: at a million customers this work, not the database, was most of what the read
cost above a bare fetch of the same statements. Each pass over a batch's values touches one
object per value; the passes here are C-level (``np.fromiter`` over the rows, numpy casts), the
few that must see every value from Python (sharing repeated text, the creation-date cache) go
through ``map``, and every value is touched while the batch is still in the CPU cache (the batch
is folded at once, into arrays that grow in place instead of being joined at the end).

Results are exactly those of the plain way (``zip(*batch)``, ``np.fromiter`` per column,
``np.array(batch, dtype=np.float64)``): same dtypes, same values, same shared objects, same
errors; ``tests/test_fold.py`` compares the two on every shape of value a driver returns.
"""

from __future__ import annotations

import datetime as dt
import itertools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

CUSTOMER_COLUMNS = ("ids", "number", "name", "parent_id", "active", "prospect", "config_id",
                    "created", "industry", "sales_rep", "branch", "has_value_row",
                    "current_value")
SHARED_COLUMNS = ("industry", "sales_rep", "branch", "current_value")
_NONES = itertools.repeat(None)
_FIRST_ROWS = 1 << 16  # first capacity of a growing column


class CreatedDates(dict[Any, "dt.datetime | None"]):
    """Raw creation dates (text from SQLite, date or datetime from other drivers) -> one shared
    datetime per distinct value, made the first time a value is seen: one dict lookup per row."""

    def __init__(self) -> None:
        super().__init__({None: None})

    def __missing__(self, raw: Any) -> dt.datetime:
        made = self[raw] = (raw if isinstance(raw, dt.datetime) else
                            dt.datetime.fromisoformat(raw) if isinstance(raw, str)
                            else dt.datetime.combine(raw, dt.time()))
        return made


def fold_customers(batch: Sequence[Sequence[Any]], share: Callable[[Any, Any], Any],
                   created: CreatedDates) -> dict[str, np.ndarray]:
    """One batch of customer rows (``CUSTOMER_COLUMNS`` order) as one array per column.

    ``share`` is a ``dict.setdefault`` kept for the whole read: repeated text (industry, rep,
    branch, the stored value) becomes one object per distinct value. The rows are laid into one
    object grid by a single C-level pass; the columns are cut from it.
    """
    n, width = len(batch), len(CUSTOMER_COLUMNS)
    grid = np.fromiter(itertools.chain.from_iterable(batch), object, n * width).reshape(n, width)
    cells = dict(zip(CUSTOMER_COLUMNS, grid.T))
    out = {"ids": cells["ids"].astype(np.int64),
           "number": cells["number"].copy(), "name": cells["name"].copy(),
           "parent_id": _ids(cells["parent_id"]),
           # truth as bool() has it: the cast calls it (text flags from SQLite included)
           "active": cells["active"].astype(bool), "prospect": cells["prospect"].astype(bool),
           "config_id": _ids_or_objects(cells["config_id"]),
           "created": np.fromiter(map(created.__getitem__, cells["created"].tolist()),
                                  object, n),
           "has_value_row": np.fromiter(map(operator.is_not, cells["has_value_row"].tolist(),
                                            _NONES), bool, n)}
    for name in SHARED_COLUMNS:
        values = cells[name].tolist()
        out[name] = np.fromiter(map(share, values, values), object, n)
    return out


def _ids(values: np.ndarray) -> np.ndarray:
    """An object column of ids as int64 with -1 for none; anything else raises as it would in
    ``np.fromiter(..., np.int64)``."""
    missing = np.fromiter(map(operator.is_, values.tolist(), _NONES), bool, len(values))
    if missing.any():
        values = values.copy()
        values[missing] = -1
    return values.astype(np.int64)


def _ids_or_objects(values: np.ndarray) -> np.ndarray:
    """Ids as int64 with -1 for none (8 bytes, not an object each); anything else as is."""
    try:
        return _ids(values)
    except (TypeError, ValueError, OverflowError):
        return values.copy()


class ColumnBuilder:
    """Columns that grow a batch at a time, in place: each batch's values are copied in while
    they are still in the CPU cache, and growing moves memory (``ndarray.resize``, a realloc)
    without touching the values again, where joining per-batch arrays at the end would visit
    every one of a million objects twice more (a reference added, then one dropped)."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}
        self.size = 0

    def add(self, parts: Mapping[str, np.ndarray]) -> None:
        if not parts:
            return
        lo = self.size
        hi = lo + len(next(iter(parts.values())))
        for name, part in parts.items():
            have = self._arrays.get(name)
            if have is None:
                have = self._arrays[name] = np.empty(max(_FIRST_ROWS, hi), dtype=part.dtype)
            elif have.dtype != part.dtype:  # ids with -1 for none, next to other values
                if part.dtype != object:
                    part = _with_nones(part)
                else:
                    filled = _with_nones(have[:lo])
                    have = self._arrays[name] = np.empty(len(have), dtype=object)
                    have[:lo] = filled
            if hi > len(have):
                have.resize(max(hi, 2 * len(have)), refcheck=False)
            have[lo:hi] = part
        self.size = hi

    def arrays(self) -> dict[str, np.ndarray]:
        """The columns, trimmed to the rows added (int64 and empty when there were none)."""
        if not self._arrays:
            return {}
        for values in self._arrays.values():
            values.resize(self.size, refcheck=False)
        return self._arrays


def _with_nones(ids: np.ndarray) -> np.ndarray:
    out = np.empty(len(ids), dtype=object)
    out[:] = [None if v < 0 else v for v in ids.tolist()]
    return out


def known_rows(ids: np.ndarray, rows: np.ndarray, key: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows whose column ``key`` is one of ``ids`` (sorted), and each one's position in
    ``ids``: a grouped statement's rows of customers the night does not know are dropped."""
    keys = rows[:, key].astype(np.int64)
    pos = np.searchsorted(ids, keys)
    pos[pos >= len(ids)] = 0
    known = ids[pos] == keys
    return rows[known], pos[known]


def float_rows(batch: Sequence[Sequence[Any]]) -> np.ndarray:
    """A batch of numeric rows as a float64 matrix, as ``np.array(batch, dtype=np.float64)``
    makes it, in one pass over the values (``np.array`` first works out the nesting of the
    batch, a second pass over every row). Whatever that pass refuses (None where a numpy has no
    NaN for it, text that is not a number) goes the ``np.array`` way: same values, same errors."""
    n, width = len(batch), len(batch[0])
    try:
        flat = np.fromiter(itertools.chain.from_iterable(batch), np.float64, n * width)
    except (TypeError, ValueError):
        return np.array(batch, dtype=np.float64)
    return flat.reshape(n, width)
