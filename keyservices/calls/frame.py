"""Tonight's opportunities as columns: one row per (customer, offer).

A dealer with a million customers has hundreds of thousands of opportunities, but only a few
hundred different *offers*: everything an opportunity says apart from its customer (service,
priority, reason, score, money at stake, why) depends on the customer's peer group, services,
tier and alerts, which repeat. So a night's opportunities are two integer arrays (customer id,
offer) and a short list of ``Offer`` objects; an ``Opportunity`` object is made only for a row
someone reads (the digest's top rows, an export), and kept, so what is set on it stays.

Pure: numpy and the model; no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from ..model import Opportunity, customer_column, customer_rank

PRIORITY_ORDER = {"Critical": 0, "High": 1, "Medium": 2, "Low": 3}
STATUS_CODES = ("new", "open")


@dataclass(frozen=True, slots=True)
class Offer:
    """What an opportunity says, apart from whose it is."""

    service_code: str
    service: str
    priority: str
    reason: str
    score: float
    estimated_annual_value: float | None = None
    value_basis: str = ""
    typical: bool = True
    cross_sell: tuple[str, ...] = ()
    why: tuple[str, ...] = ()
    play: str = "industry_gap"
    p_win: float | None = None
    expected_value: float | None = None
    evidence: str = ""
    pinned: bool = False  # a priority rule pins it to the top of the list
    boost: float = 1.0  # priority rules' boosts: the expected value is ranked times this


class OpportunityFrame(Sequence[Opportunity]):
    """Opportunities as rows of (customer, offer), in a fixed order; a ``Sequence`` of
    ``Opportunity`` for every reader, with array access for the steps that handle them all.

    ``customers`` maps a customer id to its record (number, name, branch, sales rep).
    ``status``/``age`` come from the life cycle (new and 0 until then). ``contacts`` holds the
    contact to call of the rows whose contact was read (by the row's ``origin``). Frames cut
    from one another share their made objects and contacts.
    """

    def __init__(self, customer: np.ndarray, offer: np.ndarray, offers: Sequence[Offer],
                 customers: Mapping[int, Any], *, status: np.ndarray | None = None,
                 age: np.ndarray | None = None, origin: np.ndarray | None = None,
                 made: dict[int, Opportunity] | None = None,
                 contacts: dict[int, tuple[str, str, str]] | None = None,
                 known: dict[str, np.ndarray] | None = None) -> None:
        n = len(customer)
        self.customer = np.asarray(customer, dtype=np.int64)
        self.offer = np.asarray(offer, dtype=np.int64)
        self.offers = list(offers)
        self.customers = customers
        self.status = np.zeros(n, np.int8) if status is None else status
        self.age = np.zeros(n, np.int64) if age is None else age
        self.origin = np.arange(n, dtype=np.int64) if origin is None else origin
        self._made: dict[int, Opportunity] = {} if made is None else made
        self.contacts: dict[int, tuple[str, str, str]] = {} if contacts is None else contacts
        self._known: dict[str, np.ndarray] = known or {}  # people() columns already looked up

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def empty(cls, customers: Mapping[int, Any] | None = None) -> OpportunityFrame:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), [], customers or {})

    @classmethod
    def of(cls, opportunities: Sequence[Opportunity]) -> OpportunityFrame:
        """A frame of existing objects (tests, callers with a list): each object is kept as is."""
        if isinstance(opportunities, OpportunityFrame):
            return opportunities._edited()
        offers: dict[Offer, int] = {}
        people: dict[int, Any] = {}
        rows = []
        for o in opportunities:
            offer = _offer_of(o)
            people.setdefault(o.customer_id, o)
            rows.append((o.customer_id, offers.setdefault(offer, len(offers))))
        customer = np.array([r[0] for r in rows], dtype=np.int64)
        frame = cls(customer, np.array([r[1] for r in rows], dtype=np.int64), list(offers),
                    _People(people),
                    status=np.array([STATUS_CODES.index(o.status) if o.status in STATUS_CODES
                                     else 0 for o in opportunities], dtype=np.int8),
                    age=np.array([o.age_days for o in opportunities], dtype=np.int64))
        frame._made.update(enumerate(opportunities))
        frame.contacts.update((i, (o.contact_name, o.contact_phone, o.contact_email))
                              for i, o in enumerate(opportunities)
                              if o.contact_name or o.contact_phone or o.contact_email)
        return frame

    def _edited(self) -> OpportunityFrame:
        """This frame, with the rows whose object someone edited saying what the object says
        (only made objects can have been edited: a digest's few, a test's)."""
        if not self._made:
            return self
        offer, offers = self.offer, self.offers
        made = np.fromiter(self._made, dtype=np.int64, count=len(self._made))
        for i in np.flatnonzero(np.isin(self.origin, made)).tolist():
            now = _offer_of(self._made[int(self.origin[i])])
            if now != offers[int(offer[i])]:
                if offer is self.offer:
                    offer, offers = offer.copy(), list(offers)
                offer[i] = len(offers)
                offers.append(now)
        if offer is self.offer:
            return self
        return OpportunityFrame(self.customer, offer, offers, self.customers,
                                status=self.status, age=self.age, origin=self.origin,
                                made=self._made, contacts=self.contacts, known=self._known)

    def take(self, rows: np.ndarray) -> OpportunityFrame:
        """The rows at these positions (or where this mask holds), in that order."""
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows
        return OpportunityFrame(self.customer[rows], self.offer[rows], self.offers,
                                self.customers, status=self.status[rows], age=self.age[rows],
                                origin=self.origin[rows], made=self._made,
                                contacts=self.contacts,
                                known={k: v[rows] for k, v in self._known.items()})

    def with_offers(self, offer: np.ndarray, offers: Sequence[Offer]) -> OpportunityFrame:
        """The same rows saying something else (re-prioritised): objects are made afresh."""
        return OpportunityFrame(self.customer, offer, offers, self.customers,
                                status=self.status, age=self.age, origin=self.origin,
                                contacts=self.contacts, known=self._known)

    def with_life(self, status: np.ndarray, age: np.ndarray) -> OpportunityFrame:
        """The same rows with their life-cycle status and age: made objects are updated."""
        if self._made:  # the few rows made into objects, found by array rather than row by row
            made_origins = np.fromiter(self._made, dtype=np.int64, count=len(self._made))
            for i in np.flatnonzero(np.isin(self.origin, made_origins)).tolist():
                made = self._made[int(self.origin[i])]
                made.status, made.age_days = STATUS_CODES[int(status[i])], int(age[i])
        return OpportunityFrame(self.customer, self.offer, self.offers, self.customers,
                                status=status, age=age, origin=self.origin, made=self._made,
                                contacts=self.contacts, known=self._known)

    # -- columns ------------------------------------------------------------------------------
    def column(self, name: str) -> np.ndarray:
        """One field of the offers, per row (e.g. ``service_code``, ``priority``, ``score``)."""
        values = [getattr(o, name) for o in self.offers]
        table = np.array(values, dtype=object if name in _OBJECT_FIELDS else None)
        return table[self.offer] if len(self.offers) else np.zeros(0, dtype=table.dtype)

    def people(self, name: str) -> np.ndarray:
        """One field of each row's customer (``number``, ``branch``, ``sales_rep``...), looked
        up once per frame family."""
        known = self._known.get(name)
        if known is None:
            known = self._known[name] = customer_column(self.customers, name, self.customer)
        return known

    def ranked(self) -> OpportunityFrame:
        """Most urgent first, then score, then money at stake, then customer number and
        service (``opportunities.sort_key``)."""
        if not len(self):
            return self
        order = np.array([PRIORITY_ORDER.get(o.priority, 9) for o in self.offers])[self.offer]
        score = np.array([o.score for o in self.offers], dtype=np.float64)[self.offer]
        worth = np.array([o.estimated_annual_value or 0.0 for o in self.offers],
                         dtype=np.float64)[self.offer]
        codes = sorted({o.service_code for o in self.offers})
        code = np.array([codes.index(o.service_code) for o in self.offers])[self.offer]
        numbers = customer_rank(self.customers, "number", self.customer)
        return self.take(np.lexsort((code, numbers, -worth, -score, order)))

    def only(self, attribute: str, value: str) -> OpportunityFrame:
        """The rows of customers whose ``branch`` or ``sales_rep`` is ``value`` (a digest copy)."""
        values = self.people(attribute)
        return self.take(np.array([(x or "") == value for x in values.tolist()], dtype=bool))

    # -- as a sequence ------------------------------------------------------------------------
    @property
    def materialised(self) -> int:
        """How many rows of this frame family have been made into objects (tests, profiles)."""
        return len(self._made)

    def __len__(self) -> int:
        return len(self.customer)

    @overload
    def __getitem__(self, i: int) -> Opportunity: ...

    @overload
    def __getitem__(self, i: slice) -> list[Opportunity]: ...

    def __getitem__(self, i: int | slice) -> Opportunity | list[Opportunity]:
        if isinstance(i, slice):
            return [self._make(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._make(i)

    def __iter__(self) -> Iterator[Opportunity]:
        return (self._make(i) for i in range(len(self)))

    def __bool__(self) -> bool:
        return len(self) > 0

    def __eq__(self, other: object) -> bool:
        """Equal to a list (or frame) of the same opportunities, in the same order."""
        if isinstance(other, (list, tuple, OpportunityFrame)):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # unhashable, as a list (equal to one)

    def __repr__(self) -> str:
        return f"<OpportunityFrame {len(self)} rows, {len(self.offers)} offers>"

    def _make(self, i: int) -> Opportunity:
        origin = int(self.origin[i])
        made = self._made.get(origin)
        if made is not None:
            return made
        o, cid = self.offers[int(self.offer[i])], int(self.customer[i])
        c = self.customers[cid]
        name, phone, email = self.contacts.get(origin, ("", "", ""))
        made = self._made[origin] = Opportunity(
            number=c.number, name=c.name, branch=c.branch, sales_rep=c.sales_rep,
            service=o.service, priority=o.priority, reason=o.reason, customer_id=cid,
            service_code=o.service_code, score=o.score, status=STATUS_CODES[int(self.status[i])],
            age_days=int(self.age[i]), why=o.why, contact_name=name, contact_phone=phone,
            contact_email=email, estimated_annual_value=o.estimated_annual_value,
            value_basis=o.value_basis, typical=o.typical, cross_sell=o.cross_sell,
            play=o.play, p_win=o.p_win, expected_value=o.expected_value, evidence=o.evidence)
        return made

    def passing(self) -> Iterator[Opportunity]:
        """Every row as an ``Opportunity`` made for the moment and not kept (a made one as it
        is): a script's ``--json`` of a million calls holds one at a time, not a million."""
        number, name = self.people("number"), self.people("name")
        branch, rep = self.people("branch"), self.people("sales_rep")
        for i in range(len(self)):
            origin = int(self.origin[i])
            made = self._made.get(origin)
            if made is not None:
                yield made
                continue
            o = self.offers[int(self.offer[i])]
            contact, phone, email = self.contacts.get(origin, ("", "", ""))
            yield Opportunity(
                number=number[i], name=name[i], branch=branch[i], sales_rep=rep[i],
                service=o.service, priority=o.priority, reason=o.reason,
                customer_id=int(self.customer[i]), service_code=o.service_code, score=o.score,
                status=STATUS_CODES[int(self.status[i])], age_days=int(self.age[i]), why=o.why,
                contact_name=contact, contact_phone=phone, contact_email=email,
                estimated_annual_value=o.estimated_annual_value, value_basis=o.value_basis,
                typical=o.typical, cross_sell=o.cross_sell, play=o.play, p_win=o.p_win,
                expected_value=o.expected_value, evidence=o.evidence)

    def set_contact(self, i: int, name: str, phone: str, email: str) -> None:
        """The contact to call for row ``i`` (kept for every frame cut from this one)."""
        origin = int(self.origin[i])
        self.contacts[origin] = (name, phone, email)
        made = self._made.get(origin)
        if made is not None:
            made.contact_name, made.contact_phone, made.contact_email = name, phone, email


def _offer_of(o: Opportunity) -> Offer:
    return Offer(o.service_code, o.service, o.priority, o.reason, o.score,
                 o.estimated_annual_value, o.value_basis, o.typical, tuple(o.cross_sell),
                 tuple(o.why), o.play, o.p_win, o.expected_value, o.evidence)


_OBJECT_FIELDS = {"service_code", "service", "priority", "reason", "value_basis", "cross_sell",
                  "why", "estimated_annual_value", "play", "p_win", "expected_value",
                  "evidence"}


class _People(Mapping[int, Any]):
    """Customer id -> an object with number, name, branch and sales_rep (an Opportunity)."""

    def __init__(self, by_id: dict[int, Any]) -> None:
        self._by_id = by_id

    def __getitem__(self, cid: int) -> Any:
        return self._by_id[cid]

    def __iter__(self) -> Iterator[int]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)


def days(day: dt.date | None) -> int:
    """A date as a day number (``date.toordinal``); -1 for none."""
    return -1 if day is None else day.toordinal()


__all__ = ["PRIORITY_ORDER", "Offer", "OpportunityFrame", "days"]
