"""Plain data passed between the steps of a run.

Pure: no SQLAlchemy, no I/O. The facts step fills these from aggregate queries; classify, diff and
digest read them. Slots keep a million customers affordable in memory.
"""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Customer:
    """One ``ARCustomers`` row with its current custom-property state."""

    id: int
    number: str
    name: str
    parent_id: int | None  # ARCustomers.LocationID: the parent of a location; None for a parent
    active: bool
    prospect: bool
    industry: str | None = None
    sales_rep: str | None = None
    branch: str | None = None
    config_id: int | None = None  # ShTrackingConfigID: None means "no configuration"
    has_value_row: bool = False  # a value row for the attribute exists (so it can be written)
    current_value: str | None = None  # TextVal as read
    created: dt.datetime | None = None  # ARCustomers.CreateDate (grace period for new customers)

    @property
    def is_location(self) -> bool:
        return self.parent_id is not None and self.parent_id != self.id


class CustomerTable(Mapping[int, Customer]):
    """Every customer record as columns, in id order: a ``Customer`` object is made only for an
    id someone asks for (the changed, called and alerted ones), and kept.

    A million ``Customer`` objects cost seconds to make and hundreds of MB; the steps that
    handle every customer read whole columns instead (``column``, ``customer_column``).
    ``columns`` holds one array per ``Customer`` field but ``id``: text and nullable fields as
    object arrays (the values are shared, not copied), ``active``/``prospect``/
    ``has_value_row`` as bool arrays, ``parent_id`` as int64 with -1 for none.
    """

    FIELDS = ("number", "name", "parent_id", "active", "prospect", "industry", "sales_rep",
              "branch", "config_id", "has_value_row", "current_value", "created")

    def __init__(self, ids: Any, columns: Mapping[str, Any]) -> None:
        import numpy as np

        self.ids = np.asarray(ids, dtype=np.int64)
        self.columns = dict(columns)
        self._made: dict[int, Customer] = {}
        self._ranks: dict[str, Any] = {}
        # customers with two or more value rows of the attribute: read once, never written
        self.two_value_rows: tuple[int, ...] = ()

    def positions(self, ids: Any) -> Any:
        """The row of each id (all must be on record)."""
        import numpy as np

        return np.searchsorted(self.ids, np.asarray(ids, dtype=np.int64))

    def column(self, name: str, ids: Any = None) -> Any:
        """One field for these ids (all of them when None), as an array."""
        if name == "id":
            return self.ids if ids is None else ids
        values = self.columns[name]
        return values if ids is None else values[self.positions(ids)]

    def rank(self, name: str) -> Any:
        """Each row's place when the table is sorted by this field as text (equal values
        share one), worked out once: every list sorted by customer number then compares
        integers, not a million strings made anew."""
        got = self._ranks.get(name)
        if got is None:
            import numpy as np

            text = self.columns[name].astype(str)
            got = self._ranks[name] = np.unique(text, return_inverse=True)[1].reshape(-1)
        return got

    def _row(self, cid: int) -> int | None:
        import numpy as np

        at = int(np.searchsorted(self.ids, cid))
        return at if at < len(self.ids) and int(self.ids[at]) == cid else None

    def __getitem__(self, cid: int) -> Customer:
        made = self._made.get(cid)
        if made is not None:
            return made
        at = self._row(cid)
        if at is None:
            raise KeyError(cid)
        c = self.columns
        made = self._made[cid] = Customer(
            int(cid), c["number"][at], c["name"][at], _id(c["parent_id"][at]),
            bool(c["active"][at]), bool(c["prospect"][at]), c["industry"][at],
            c["sales_rep"][at], c["branch"][at], _id(c["config_id"][at]),
            bool(c["has_value_row"][at]), c["current_value"][at], c["created"][at])
        return made

    def missing(self, name: str, rows: Any) -> Any:
        """Whether an id column (``config_id``, ``parent_id``) is empty at these rows."""
        import numpy as np

        values = self.columns[name][rows]
        if values.dtype != object:
            return values < 0
        return np.fromiter((v is None for v in values.tolist()), dtype=bool, count=len(values))

    def __contains__(self, cid: object) -> bool:
        if isinstance(cid, bool) or not isinstance(cid, numbers.Integral):  # numpy ints too
            return False
        return int(cid) in self._made or self._row(int(cid)) is not None

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids.tolist())

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def materialised(self) -> int:
        """How many records have been made into objects (tests, profiles)."""
        return len(self._made)


def _id(value: Any) -> Any:
    """An id column's value as the record has it: None for none (-1 in an int64 column)."""
    if value is None or isinstance(value, str):
        return value
    number = int(value)
    return None if number < 0 else number


def on_record(customers: Mapping[int, Customer], ids: Any) -> Any:
    """Whether each id is a customer of ``customers`` (a bool array; by array for a table)."""
    import numpy as np

    ids = np.asarray(ids, dtype=np.int64)
    if isinstance(customers, CustomerTable):
        if not len(customers.ids):
            return np.zeros(len(ids), dtype=bool)
        at = np.clip(customers.positions(ids), 0, len(customers.ids) - 1)
        return customers.ids[at] == ids
    return np.fromiter((cid in customers for cid in ids.tolist()), dtype=bool, count=len(ids))


def customer_column(customers: Mapping[int, Customer], name: str, ids: Any) -> Any:
    """One field of these customers as an array: by column from a ``CustomerTable``, one
    object at a time from any other mapping (tests, the detail path)."""
    import numpy as np

    if isinstance(customers, CustomerTable):
        return customers.column(name, ids)
    out = np.empty(len(ids), dtype=object)
    out[:] = [getattr(customers[cid], name) for cid in np.asarray(ids).tolist()]
    return out


def customer_rank(customers: Mapping[int, Customer], name: str, ids: Any) -> Any:
    """Each id's place in the order of one text field (``number``): integers that sort as the
    texts do."""
    import numpy as np

    if isinstance(customers, CustomerTable):
        return customers.rank(name)[customers.positions(ids)]
    text = customer_column(customers, name, ids).astype(str)
    return np.unique(text, return_inverse=True)[1].reshape(-1)


@dataclass(slots=True)
class ItemsSold:
    """Invoice lines of one model category within one lookback window."""

    lines: int = 0
    quantity: float = 0.0
    amount: float = 0.0
    max_unit_price: float | None = None
    max_unit_cost: float | None = None


def add_sold(a: ItemsSold, b: ItemsSold) -> ItemsSold:
    """Two aggregates of items sold as one (sums, and the higher unit price and cost)."""
    def top(x: float | None, y: float | None) -> float | None:
        return y if x is None else x if y is None else max(x, y)

    return ItemsSold(a.lines + b.lines, a.quantity + b.quantity, a.amount + b.amount,
                     top(a.max_unit_price, b.max_unit_price), top(a.max_unit_cost, b.max_unit_cost))


@dataclass(slots=True)
class ContractFact:
    """Contracts of one contract code / bill code pair that are active on the run date."""

    count: int = 0
    base_rate: float = 0.0


@dataclass(slots=True)
class CustomerFacts:
    """Compact aggregates for one customer row (not rolled up). Empty dicts cost nothing shared."""

    equipment: dict[str, int] = field(default_factory=dict)  # model category -> active units
    contracts: dict[tuple[str, str], ContractFact] = field(default_factory=dict)  # (code, bill code)
    gl: dict[tuple[str, int], float] = field(default_factory=dict)  # (account, window days) -> revenue
    items_sold: dict[tuple[str, int], ItemsSold] = field(default_factory=dict)  # (category, window)
    # read only when a rule needs them:
    equipment_all: dict[str, int] = field(default_factory=dict)  # incl. inactive units
    gl_typed: dict[tuple[str, str, int], float] = field(default_factory=dict)  # (acct, type, days)
    contracts_by_status: dict[tuple[str, str, str], ContractFact] = field(
        default_factory=dict)  # (code, bill code, status)
    items_by_item_category: dict[tuple[str, str, int], ItemsSold] = field(
        default_factory=dict)  # (model category, item category, window)
    # units on a contract active on the run date (SCContractDetails), when a rule uses on_contract
    equipment_covered: dict[str, int] = field(default_factory=dict)  # active units
    equipment_covered_all: dict[str, int] = field(default_factory=dict)  # incl. inactive units


@dataclass(slots=True)
class Facts:
    """Everything the classifier needs, keyed by CustomerID."""

    as_of: dt.date
    customers: Mapping[int, Customer]  # a CustomerTable when read from the ERP
    facts: dict[int, CustomerFacts]
    categories: dict[str, str]  # model category code -> description (all dealer categories)
    # the lean path (keyservices.engine.metrics): per-customer numbers in one array instead of ``facts``
    metrics: Any = None  # MetricTable | None
    codes: Any = None  # Codes: the dealer's code lists the rules were resolved against
    customer_arrays: Any = None  # {"active", "prospect", "parent"}: numpy arrays in id order

    def of(self, customer_id: int) -> CustomerFacts:
        return self.facts.get(customer_id) or _EMPTY


_EMPTY = CustomerFacts()


# --- what a run reports (used by the digest, the CLI's --json and the state store) -------------


@dataclass(slots=True)
class CustomerRef:
    number: str
    name: str
    branch: str | None = None
    sales_rep: str | None = None


@dataclass(slots=True)
class Change:
    """One customer whose property value differs from what the rules say it should be."""

    customer_id: int
    number: str
    name: str
    branch: str | None
    sales_rep: str | None
    before: str | None
    after: str | None  # None: no services (the property is cleared)
    added: tuple[str, ...]
    removed: tuple[str, ...]
    status: str = "planned"  # planned | applied | conflict | skipped
    # service code -> annual contract value (12 x monthly base rate), for added services; filled
    # by keyservices.calls.wonlost.fill_annual_values and kept in the audit for won/lost figures
    annual_values: tuple[tuple[str, float], ...] = ()
    # set on a change written by an earlier run that stopped before its digest (killed, failed):
    # the next digest lists it, marked as carried over from that run
    carried_from: int | None = None
    # write.locations: the number of the parent whose value this location record follows (its
    # own audit row, counted apart from customer changes and left out of won/lost)
    follows: str | None = None
    # why: one short line per service added or removed, naming the facts that flipped it since
    # the last clean live run (keyservices.engine.causes); kept in the audit
    causes: tuple[str, ...] = ()


@dataclass(slots=True)
class Counts:
    read: int = 0
    classified: int = 0
    changed: int = 0
    written: int = 0
    conflicts: int = 0
    already: int = 0  # planned values the ERP held already when written (another writer's)
    unchanged: int = 0
    no_configuration: int = 0
    no_attribute: int = 0
    inactive: int = 0
    prospects: int = 0
    locations_rolled_up: int = 0
    # write.locations: location records that follow their parent's value (planned, written,
    # already right) and those that cannot hold it
    locations_changed: int = 0
    locations_written: int = 0
    locations_unchanged: int = 0
    locations_no_configuration: int = 0
    locations_no_attribute: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class ServiceCount:
    code: str
    name: str
    customers: int
    share: float  # of classified customers


@dataclass(slots=True)
class Opportunity:
    """A customer lacking a service worth offering (filled by the opportunities step)."""

    number: str
    name: str
    branch: str | None
    sales_rep: str | None
    service: str  # the service's name, as shown
    priority: str  # Low | Medium | High | Critical
    reason: str
    customer_id: int = 0
    service_code: str = ""
    score: float = 0.0  # higher is more urgent; sorts within a priority
    status: str = "new"  # new | open (seen on an earlier night too); see keyservices.calls.lifecycle
    age_days: int = 0  # days since first seen
    why: tuple[str, ...] = ()  # the priority rules that fired, for explain
    # the customer's contact to call (decision contact first; see keyservices.erp.contacts), read
    # only for the opportunities a rep or branch copy of the digest lists
    contact_name: str = ""
    contact_phone: str = ""
    contact_email: str = ""
    # money at stake (keyservices.calls.money): the peers' median annual contract value for the
    # service, or a cross-sell rule's value; None when nothing prices it
    estimated_annual_value: float | None = None
    value_basis: str = ""  # where the value comes from, e.g. "median of 41 Legal peers' contracts"
    typical: bool = True  # found by industry typicality (priority rules' source: typical)
    cross_sell: tuple[str, ...] = ()  # the cross-sell rules that found it (source: cross_sell)
    # the play that found it (industry_gap, cross_sell:<rule>, uncovered_machines) and, once
    # ranked (keyservices.calls.ranking), the chance it is won within 90 days, learned from the
    # dealer's history, and that chance x the annual value
    play: str = "industry_gap"
    p_win: float | None = None
    expected_value: float | None = None
    evidence: str = ""  # the rate's evidence in one sentence, e.g. "won 14 of 83 like this"


@dataclass(slots=True)
class StatusAlert:
    """A status monitor hit for one customer, with its rendered text."""

    number: str
    name: str
    branch: str | None
    monitor: str  # the monitor's name, as shown
    text: str
    customer_id: int = 0
    code: str = ""  # the monitor's code (priority rules name it)
    sales_rep: str | None = None
    priority: str = ""  # the monitor's priority: Critical | High | Medium | Low | "" (none set)
    first_seen: dt.date | None = None  # the first night of this run of hits (kept in the state)
    new: bool = True  # first seen tonight
    contact_name: str = ""  # the customer's contact to call, as for opportunities
    contact_phone: str = ""
    contact_email: str = ""


@dataclass(slots=True)
class Renewal:
    """An active contract expiring soon: one event in a sales rep's renewals calendar."""

    contract_id: int
    contract_number: str
    contract_code: str
    customer_id: int
    number: str
    name: str
    branch: str | None
    sales_rep: str | None
    expires: dt.date


@dataclass(slots=True)
class DigestData:
    """Everything the digest templates render. Built by the run; pure data."""

    run_id: int | None
    as_of: dt.date
    generated_at: dt.datetime
    dealer: str
    property_name: str
    mode: str  # live | test
    dry_run: bool
    baseline: bool
    counts: Counts
    changes: list[Change]
    no_configuration: list[CustomerRef]
    no_attribute: list[CustomerRef]
    services: list[ServiceCount]
    service_names: dict[str, str]
    guard_message: str | None = None
    notes: list[str] = field(default_factory=list)
    opportunities: Sequence[Opportunity] = field(default_factory=list)  # all, best first
    alerts: list[StatusAlert] = field(default_factory=list)
    branch: str | None = None  # set on a branch manager's copy: only that branch is listed
    sales_rep: str | None = None  # set on a sales rep's copy: only that rep's customers are listed
    # services won and lost per sales rep: tonight and the last 30 / 90 days (live runs only);
    # {"windows": [label...], "rows": [{"group": rep, "cells": [[won, lost, won $, lost $]...]}],
    #  "week": this week's for the first screen (calls.wonlost.week_money)}
    won_lost: dict[str, Any] = field(default_factory=dict)
    # per monitor that fired: new and continuing hits, overall and per branch and sales rep
    # (keyservices.calls.alertlife.summary); ``alerts`` holds the rendered ones
    alert_monitors: list[dict[str, Any]] = field(default_factory=list)
    renewals: list[Renewal] = field(default_factory=list)  # digest.renewals_ics: the .ics
    config_file: str = "config.yaml"  # named in the export commands the digest suggests
    # customers tonight's facts say may be leaving (takeout, churn): listed first, not offered
    risks: list[RiskFlag] = field(default_factory=list)
    # set on a stored copy whose long lists were cut (outputs.digest.trimmed): each cut list's
    # full length, "added"/"removed" service totals and the "attachment" file name the digest
    # had ("" if none), so a re-render says the same numbers
    totals: dict[str, Any] = field(default_factory=dict)
    # the company of a group this digest is for: the commands it suggests name --company
    company: str | None = None
    # the unwritable lists of every copy the run rendered, stored with its digest so that the
    # next run can tell an unchanged list: copy -> list -> {"sha", "since"} (outputs.morning)
    unwritable_seen: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    # on a copy: the unwritable lists unchanged since an earlier digest -> the first night of
    # that list (ISO date); the digest says them in one line with their count
    unchanged: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class RiskFlag:
    """A customer who may be leaving: machines gone while a contract for them is still active
    (``takeout``), or the last service removed (``churn``). Not offered as an opportunity on the
    night it is flagged."""

    customer_id: int
    number: str
    name: str
    branch: str | None
    sales_rep: str | None
    kind: str  # takeout | churn
    text: str
