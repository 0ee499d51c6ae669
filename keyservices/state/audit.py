"""The audit rows: stored chunk by chunk as the write goes, and read back for won and lost.

Stored: each chunk's rows (``AuditRows``) laid into the driver's parameters and sent through
``executemany`` of an INSERT compiled once, many rows per statement on SQLite. At 100k values a
mapping per row, or a statement per row, cost as much as the insert itself.

Read back for won and lost: streamed newest first, as little work per row as the answer needs.
Why: on a baseline night the audit holds a row for every value written (462,409 at a million
customers), and ``calls.wonlost.won_lost`` reads them all (they are tonight's) only to skip them
(a baseline is not a night of wins). Through SQLAlchemy's rows, with every row's annual values
decoded from JSON, that cost 3.2 s, against 0.9 s for the statement itself. Here the driver's
rows are used (each distinct date and service list converted once) and a row's annual values
are decoded only when won_lost asks for one (``StoredValues``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

import sqlalchemy as sa

from ..model import Change
from .bulk import driver_rows, fetch_batches
from .schema import changes

log = logging.getLogger(__name__)
STREAM_ROWS = 5000  # won_lost often stops early: no need to fetch far ahead


def codes_of(joined: str | None) -> tuple[str, ...]:
    """Service codes as stored in ``changes.added``/``removed``: joined with ';'."""
    return tuple(code for code in (joined or "").split(";") if code)


def values_of(text: str | None) -> dict[str, float]:
    """The stored annual values; an unreadable one (edited by hand) counts as none."""
    if not text:
        return {}
    try:
        data = json.loads(text)
        return {str(k): float(v) for k, v in data.items()}
    except (ValueError, TypeError, AttributeError):
        log.warning("state store: unreadable annual_values %r ignored", text[:80])
        return {}


class StoredValues(Mapping[str, float]):
    """A row's annual values, decoded from their JSON text the first time they are read."""

    __slots__ = ("_text", "_values")

    def __init__(self, text: str | None) -> None:
        self._text = text
        self._values: dict[str, float] | None = None

    def _decoded(self) -> dict[str, float]:
        if self._values is None:
            self._values = values_of(self._text)
        return self._values

    def __getitem__(self, code: str) -> float:
        return self._decoded()[code]

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())


def stream_won_lost(engine: sa.Engine, stmt: sa.Select) -> Iterator[dict[str, Any]]:
    """The rows of ``stmt`` (as_of, baseline, customer id, number, branch, sales rep, added,
    removed, annual values) as won_lost reads them; closing the iterator lets the cursor go."""
    codes: dict[str | None, tuple[str, ...]] = {}
    with engine.connect() as conn:
        batches = fetch_batches(conn, stmt, STREAM_ROWS)
        try:
            for batch in batches:
                for as_of, baseline, cid, number, branch, rep, added, removed, values in batch:
                    yield {"as_of": as_of, "customer_id": cid, "customer_number": number,
                           "branch": branch, "sales_rep": rep,
                           "added": codes[added] if added in codes
                           else codes.setdefault(added, codes_of(added)),
                           "removed": codes[removed] if removed in codes
                           else codes.setdefault(removed, codes_of(removed)),
                           "baseline": bool(baseline), "annual_values": StoredValues(values)}
        finally:
            batches.close()


# SQLite: audit rows per INSERT (16 x 62 = 992 parameters, under old builds' limit of 999)
ROWS_PER_INSERT = 62
# the audit row's columns in the table's order (what a positional driver is given)
AUDIT_KEYS = ("run_id", "customer_id", "customer_number", "customer_name", "before", "after",
              "added", "removed", "status", "at", "branch", "sales_rep", "annual_values",
              "follows", "causes", "company")


class AuditRows:
    """The audit rows of a write, stored range by range: the write path stores each chunk's rows
    just before that chunk (``statements`` gives a range as the driver takes it).

    A range's values are laid straight into one flat list of the driver's parameters when it is
    asked for (memory stays with a chunk, not with the write: at a million customers the whole
    write's rows were 80 MB), the timestamp (the same in every row) converted for the dialect
    once, codes and causes joined once per distinct list across the write.
    """

    def __init__(self, dialect: sa.Dialect, run_id: int, planned: Sequence[Change],
                 status: str, at: dt.datetime, company: str | None = None) -> None:
        self.compiled = changes.insert().compile(dialect=dialect, column_keys=list(AUDIT_KEYS))
        self.run_id = run_id
        self.company = company
        self.planned = planned
        self.status = status
        self.dialect = dialect.name
        proc = changes.c.at.type.dialect_impl(dialect).bind_processor(dialect)
        self.stamp = proc(at) if proc is not None else at
        self._joined: dict[tuple[str, ...], str] = {}  # codes and causes repeat across customers
        self._texts: dict[tuple[str, ...], str | None] = {}

    def _flat(self, start: int, stop: int) -> list[Any]:
        """Every value of rows ``start`` to ``stop``, one row after the other."""
        run_id, status, stamp, company = self.run_id, self.status, self.stamp, self.company
        joined, texts = self._joined, self._texts
        flat: list[Any] = []
        put = flat.extend
        for c in self.planned[start:stop]:
            added = joined.get(c.added)
            if added is None:
                added = joined[c.added] = ";".join(c.added)
            removed = joined.get(c.removed)
            if removed is None:
                removed = joined[c.removed] = ";".join(c.removed)
            causes = texts.get(c.causes, "")
            if causes == "":  # not seen yet (or an empty text, simply worked out again)
                causes = texts[c.causes] = causes_text(c.causes)
            put((run_id, c.customer_id, c.number, c.name, c.before, c.after, added, removed,
                 status, stamp, c.branch, c.sales_rep,
                 values_json(c.annual_values) if c.annual_values else None, c.follows, causes,
                 company))
        return flat

    def statements(self, start: int = 0, stop: int | None = None) -> list[tuple[str, list[Any]]]:
        """Rows ``start`` to ``stop`` (the whole write by default) as (INSERT, driver rows) to
        run in one transaction: on SQLite ``ROWS_PER_INSERT`` rows per statement (SQLite's
        cost per statement run, about half a narrow row's insert, paid once per group). Built
        by the caller's thread, so that the thread storing them does next to no Python work."""
        width = len(AUDIT_KEYS)
        flat = self._flat(start, len(self.planned) if stop is None else stop)
        at, end = 0, len(flat)
        sql = str(self.compiled)
        out: list[tuple[str, list[Any]]] = []
        if self.dialect == "sqlite" and list(self.compiled.positiontup or ()) == list(AUDIT_KEYS):
            group = width * ROWS_PER_INSERT
            at = end - end % group
            if at:
                head, _, one = sql.rpartition(" VALUES ")
                out.append((f"{head} VALUES {', '.join([one] * ROWS_PER_INSERT)}",
                            [tuple(flat[i:i + group]) for i in range(0, at, group)]))
        if at < end:
            out.append((sql, driver_rows(self.compiled, AUDIT_KEYS, [
                tuple(flat[i:i + width]) for i in range(at, end, width)])))
        return out


def causes_text(causes: Sequence[str]) -> str | None:
    """``Change.causes`` as stored: one per line (cheaper than JSON at a million rows)."""
    return "\n".join(c.replace("\n", " ") for c in causes) if causes else None


def causes_of(text: str | None) -> list[str]:
    return text.split("\n") if text else []


def values_json(values: Sequence[tuple[str, float]]) -> str | None:
    """``Change.annual_values`` as stored: a JSON object, or NULL when there is none; the same
    text as ``json.dumps(dict(values), separators=(",", ":"))``, written out (3 µs a call at
    hundreds of thousands of rows), each code quoted once per process."""
    if not values:
        return None
    keys = _KEYS
    parts = []
    for code, amount in values:
        key = keys.get(code)
        if key is None:
            key = keys.setdefault(code, _quote(str(code)) + ":")
        if type(amount) is float and amount - amount == 0.0:  # a finite float, as planned
            parts.append(key + repr(amount))
        else:
            number = float(amount)
            parts.append(key + (repr(number) if math.isfinite(number) else json.dumps(number)))
    if len(parts) > 1 and len({code for code, _ in values}) < len(parts):
        return values_json(tuple(dict(values).items()))  # a code twice: the last amount counts
    return "{" + ",".join(parts) + "}"


_KEYS: dict[str, str] = {}  # service code -> its JSON key and colon


__all__ = ["AUDIT_KEYS", "ROWS_PER_INSERT", "AuditRows", "StoredValues", "causes_of",
           "causes_text", "codes_of", "stream_won_lost", "values_json", "values_of"]
