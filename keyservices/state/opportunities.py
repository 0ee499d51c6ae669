"""The opportunity store: one row per (customer, service) opportunity, kept across nights.

The nightly run upserts the life cycle (``keyservices.calls.lifecycle``); ``keyservices
opportunity`` sets and clears the overrides (snooze, dismiss), which the upsert never touches.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import unicodedata
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..calls.frame import PRIORITY_ORDER
from ..calls.lifecycle import Key, LifecycleResult, OpportunityRecord, Stored
from ..errors import ConfigError
from .bulk import execute_many_tuples, fetch_batches, fetch_tuples
from .schema import LIFECYCLE_FIELDS, opportunities

# the columns whose driver form save_life makes itself (dates, the flag; scores are floats)
_DRIVER_READY = {"first_seen", "last_seen", "closed_on", "snoozed_until", "dismissed", "score"}
SAVE_ROWS = 50_000  # opportunities per executemany while a night's life cycle is saved
_ON_CONFLICT: dict[str, Any] = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}
_STATUS_ORDER = {"new": 0, "open": 1, "won": 2, "closed": 3, "withdrawn": 3, "lost": 3}


class OpportunityTable:
    """The opportunity methods of ``StateStore`` (which provides ``engine``)."""

    engine: sa.Engine

    # -- opportunities ----------------------------------------------------------------------------
    def load_opportunities(self) -> dict[Key, OpportunityRecord]:
        """Every remembered opportunity, active or not, by (customer_id, service_code)."""
        with self.engine.connect() as conn:
            rows = fetch_tuples(conn, sa.select(*_FIELD_COLUMNS))
        return {(row[0], row[1]): OpportunityRecord(*row) for row in rows}

    def load_life(self) -> Stored:
        """What the night's life cycle needs of every remembered opportunity, as columns (a
        million records as objects would cost seconds and gigabytes)."""
        o = opportunities.c
        with self.engine.connect() as conn:
            # the driver's own values (SQLite's dates are text): from_rows converts each
            # distinct one once, where a converting fetch would touch every row
            return Stored.joined([Stored.from_rows(batch) for batch in fetch_batches(
                conn, sa.select(o.customer_id, o.service_code, o.status, o.first_seen,
                                o.closed_on, o.snoozed_until, o.reopened, o.play),
                raw=True)])

    def outcome_records(self, until: dt.date) -> Iterator[tuple[Any, ...]]:
        """(play, status, first_seen, closed_on, close_reason, p_win, expected_value) of every
        opportunity first found by ``until``, streamed a batch at a time (the report's
        ``calls.outcomes`` keeps counts only, so a million records are never held)."""
        o = opportunities.c
        with self.engine.connect() as conn:
            for batch in fetch_batches(conn, sa.select(
                    o.play, o.status, o.first_seen, o.closed_on, o.close_reason, o.p_win,
                    o.expected_value).where(o.first_seen <= until)):
                yield from batch

    def has_opportunities(self) -> bool:
        """Whether any opportunity was ever remembered (a live run found a call)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(opportunities.c.customer_id).limit(1)).first() \
                is not None

    def save_life(self, result: LifecycleResult) -> None:
        """Save one night's life cycle in one transaction: every opportunity found tonight
        upserted (its overrides untouched), the ones that closed updated."""
        with self.engine.begin() as conn:
            upsert = _upsert(conn)
            # values as the driver takes them, each distinct date converted once; rows in key
            # order, so the primary key's B-tree is appended to, not written all over
            procs = {c.name: c.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
                     for c in opportunities.columns}
            ready = upsert is not None and all(
                proc is None or name in _DRIVER_READY for name, proc in procs.items())
            found = (result.rows(day=procs["first_seen"], dismissed=(procs["dismissed"] or (
                lambda v: v))(False), ordered=True) if ready else result.rows(ordered=True))
            # a slice at a time: a million rows as tuples at once would cost hundreds of MB
            while rows := list(itertools.islice(found, SAVE_ROWS)):
                if upsert is not None:
                    execute_many_tuples(conn, upsert, opportunities, _COLUMNS, rows,
                                        converted=ready)
                else:
                    _update_then_insert(conn, [dict(zip(_COLUMNS, row)) for row in rows])
            if result.closings:
                conn.execute(
                    opportunities.update()
                    .where(opportunities.c.customer_id == sa.bindparam("k_customer_id"),
                           opportunities.c.service_code == sa.bindparam("k_service_code"))
                    .values(status=sa.bindparam("status"), closed_on=sa.bindparam("closed_on"),
                            close_reason=sa.bindparam("close_reason")),
                    [{"k_customer_id": c.customer_id, "k_service_code": c.service_code,
                      "status": c.status, "closed_on": c.closed_on,
                      "close_reason": c.close_reason} for c in result.closings])

    def save_opportunities(self, records: Sequence[OpportunityRecord]) -> None:
        """Insert or update the records, keyed on (customer_id, service_code), in one transaction.

        Bulk (one driver executemany, ``state.bulk``), so a night with 200k opportunities costs
        one statement and one commit. An existing row keeps its override fields: only the
        override commands change those.
        """
        if not records:
            return
        with self.engine.begin() as conn:
            upsert = _upsert(conn)
            if upsert is not None:
                execute_many_tuples(conn, upsert, opportunities, _COLUMNS,
                                    [_values(r) for r in records])
            else:  # any other database: update the rows that exist, insert the others
                _update_then_insert(conn, [_row(r) for r in records])

    def list_opportunities(self, status: str | None = None, owner: str | None = None,
                           service: str | None = None,
                           customer_number: str | None = None) -> list[OpportunityRecord]:
        """Remembered opportunities, filtered; owner, service and customer ignore case.

        The names are compared here, casefolded (:func:`folded`), not by the database: SQLite's
        upper() knows ASCII only, so "Zoë Lambert" would never match "ZOË LAMBERT" there.
        Sorted active first (new, open, won, closed), then in the ranking's order (expected
        value, highest first; records stored before it by priority and score), then customer.
        """
        stmt = sa.select(opportunities)
        if status is not None:
            stmt = stmt.where(opportunities.c.status == status)
        wanted = [(name, folded(value)) for name, value in (
            ("owner", owner), ("service_code", service), ("customer_number", customer_number))
            if value is not None]
        with self.engine.connect() as conn:
            found = [_record(r) for r in conn.execute(stmt)
                     if all(folded(getattr(r, name)) == value for name, value in wanted)]
        found.sort(key=lambda r: (_STATUS_ORDER.get(r.status, 9),
                                  -(r.expected_value if r.expected_value is not None else -1.0),
                                  PRIORITY_ORDER.get(r.priority, 9), -r.score,
                                  r.customer_number, r.service_code))
        return found

    def set_override(self, customer_number: str, service_code: str, until: dt.date | None,
                     reason: str | None, by: str | None, dismissed: bool) -> OpportunityRecord:
        """Snooze or dismiss one opportunity until a date (validation is the caller's)."""
        with self.engine.begin() as conn:
            key = self._find(conn, customer_number, service_code)
            conn.execute(opportunities.update().where(*_where(key)).values(
                snoozed_until=until, snooze_reason=reason, snoozed_by=by, dismissed=dismissed))
            return _record(conn.execute(sa.select(opportunities).where(*_where(key))).one())

    def clear_override(self, customer_number: str, service_code: str) -> OpportunityRecord:
        """Lift a snooze or dismiss at once: the opportunity shows again from the next run."""
        return self.set_override(customer_number, service_code, None, None, None, False)

    @staticmethod
    def _find(conn: sa.Connection, customer_number: str, service_code: str) -> Key:
        """The key of a customer's opportunity for a service; customer and service ignore case."""
        rows = conn.execute(
            sa.select(opportunities.c.customer_id, opportunities.c.service_code,
                      opportunities.c.customer_number)
            .where(sa.func.upper(opportunities.c.customer_number) == customer_number.upper(),
                   sa.func.upper(opportunities.c.service_code) == service_code.upper())).all()
        exact = [r for r in rows if r.customer_number == customer_number]
        if len(exact) == 1 or len(rows) == 1:
            r = (exact or rows)[0]
            return (r.customer_id, r.service_code)
        if rows:
            raise ConfigError(f"customer numbers {', '.join(r.customer_number for r in rows)} "
                              f"differ only in case; give the number exactly as in e-automate")
        raise ConfigError(f"no {service_code} opportunity for customer {customer_number} in the "
                          "state store; 'keyservices opportunity list' shows them (a run must "
                          "have found it first)")


def folded(name: str | None) -> str:
    """A name (sales rep, customer, service code) as filters compare it: Unicode case folded
    ("Zoë" and "ZOË", "Straße" and "STRASSE" alike) after composing its accents (an "ë" typed
    as "e" and a combining diaeresis is the same letter), surrounding blanks ignored."""
    return unicodedata.normalize(
        "NFC", unicodedata.normalize("NFD", (name or "").strip()).casefold())


_COLUMNS = tuple(opportunities.columns.keys())
# the record's fields in its own order (positional construction is the fast one)
_FIELD_COLUMNS = [opportunities.c[f.name] for f in dataclasses.fields(OpportunityRecord)]
_values = attrgetter(*_COLUMNS)  # a record's column values, as a tuple in _COLUMNS order


def _row(record: OpportunityRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in _COLUMNS}


def _record(row: sa.Row[Any]) -> OpportunityRecord:
    return OpportunityRecord(**{name: getattr(row, name) for name in _COLUMNS})


def _where(key: Key) -> tuple[sa.ColumnElement[bool], ...]:
    return (opportunities.c.customer_id == key[0], opportunities.c.service_code == key[1])


def _upsert(conn: sa.Connection) -> sa.Insert | None:
    """INSERT ... ON CONFLICT (customer, service) DO UPDATE of the life-cycle fields (the
    overrides stay the row's own), or None where the database has no such statement."""
    insert = _ON_CONFLICT.get(conn.dialect.name)
    if insert is None:
        return None
    stmt = insert(opportunities)
    return stmt.on_conflict_do_update(
        index_elements=[opportunities.c.customer_id, opportunities.c.service_code],
        set_={name: stmt.excluded[name] for name in LIFECYCLE_FIELDS})


def _update_then_insert(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """The portable upsert: executemany UPDATE of the rows that exist, executemany INSERT of the
    rest. Safe without ON CONFLICT because only the run (under the run lock) inserts."""
    existing = {(r.customer_id, r.service_code) for r in conn.execute(
        sa.select(opportunities.c.customer_id, opportunities.c.service_code))}
    old = [r for r in rows if (r["customer_id"], r["service_code"]) in existing]
    new = [r for r in rows if (r["customer_id"], r["service_code"]) not in existing]
    if old:
        conn.execute(
            opportunities.update()
            .where(opportunities.c.customer_id == sa.bindparam("k_customer_id"),
                   opportunities.c.service_code == sa.bindparam("k_service_code"))
            .values({name: sa.bindparam(name) for name in LIFECYCLE_FIELDS}),
            [{"k_customer_id": r["customer_id"], "k_service_code": r["service_code"],
              **{name: r[name] for name in LIFECYCLE_FIELDS}} for r in old])
    if new:
        conn.execute(opportunities.insert(), new)
