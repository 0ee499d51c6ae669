"""The audit read back for won and lost: streamed newest first, as little work per row as the
answer needs.

Why: on a baseline night the audit holds a row for every value written (462,409 at a million
customers), and ``calls.wonlost.won_lost`` reads them all (they are tonight's) only to skip them
(a baseline is not a night of wins). Through SQLAlchemy's rows, with every row's annual values
decoded from JSON, that cost 3.2 s, against 0.9 s for the statement itself. Here the driver's
rows are used (each distinct date and service list converted once) and a row's annual values
are decoded only when won_lost asks for one (``StoredValues``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa

from .bulk import fetch_batches

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


__all__ = ["StoredValues", "codes_of", "stream_won_lost", "values_of"]
