"""Status monitors (SuperOffice SAINT): criteria over counters in up to three periods.

A monitor such as "document-management revenue in the last 90 days but none in the last 30" is a
few numbers per customer (``MonitorColumns``: GL revenue, contracts expiring, invoices, each over
one of ``monitor_periods``) that the facts step computes in the same statements as the rules'
numbers. ``evaluate`` compares them over the rolled-up array of the night's classification, all
customers at once, and renders the monitor's text only for the customers it hits.

Texts are Jinja templates rendered in a sandbox as plain text (the HTML digest escapes them):
``{{ name }}``, ``{{ number }}``, ``{{ contact }}``, ``{{ phone }}``, ``{{ email }}``,
``{{ branch }}``, ``{{ sales_rep }}``, ``{{ monitor }}`` and ``{{ values }}`` (the criteria's
counters, in order; ``{{ values[0] | money }}`` prints 4,200.00).

Pure: numpy, jinja2 and the rule models; no SQLAlchemy, no I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jinja2 import Template

from ..engine.metrics import Codes, Column, Extra, contracts_matching, gl_revenue, invoices_within
from ..errors import RulesError
from ..model import Customer, StatusAlert, customer_column
from ..rules import Criterion, Monitor, RuleSet
from ..rules.texts import compile_text, render_text, template_problem
from .alertlife import PRIORITY_ORDER

# money sums are added in a different order by the database than by Python: "== 0" must hold for a
# credit note that cancels an invoice to the last bit of a float
EPS = 1e-6
MAX_TEXT = 2000  # characters of one rendered alert; longer texts are cut


@dataclass(frozen=True, slots=True)
class Contact:
    """The customer's contact person for a monitor's text; missing values are empty strings."""

    name: str = ""
    phone: str = ""
    email: str = ""


@dataclass(slots=True)
class MonitorResult:
    """Alerts (monitor order, then customer number) and, per customer, the monitors it hit."""

    alerts: list[StatusAlert] = field(default_factory=list)
    hits: dict[int, tuple[str, ...]] = field(default_factory=dict)  # customer id -> monitor codes
    counts: dict[str, int] = field(default_factory=dict)  # monitor code -> customers hit
    note: str | None = None  # why nothing was evaluated, for the digest's notes


# -- columns --------------------------------------------------------------------------------------
def criterion_accounts(rules: RuleSet, crit: Criterion) -> Sequence[str]:
    """The GL account globs a ``revenue`` criterion counts (its service's, if it names one)."""
    if crit.service:
        svc = rules.service(crit.service)
        assert svc is not None and svc.gl is not None  # rules.py validated the reference
        return svc.gl.accounts
    return crit.accounts


def criterion_globs(rules: RuleSet, crit: Criterion) -> Sequence[str]:
    """The contract code globs a ``contracts_expiring`` criterion counts (``*``: every one)."""
    if crit.service:
        svc = rules.service(crit.service)
        assert svc is not None and svc.contracts is not None
        return svc.contracts.contract_codes
    return crit.contract_codes or ["*"]


def criterion_column(rules: RuleSet, codes: Codes, crit: Criterion) -> Column:
    """The metrics column a criterion counts (the same object ``MonitorColumns`` asks for)."""
    if crit.counter == "revenue":
        return gl_revenue(codes, criterion_accounts(rules, crit), crit.period)
    if crit.counter == "contracts_expiring":
        return contracts_matching(codes, criterion_globs(rules, crit),
                                  expires_within=crit.period)
    return invoices_within(crit.period)


class MonitorColumns(Extra):
    """The columns every monitor's criteria count; pass to ``read_facts(extra=[...])``."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        counters = {c.counter for m in rules.monitors for c in m.criteria}
        self.codes_needed = frozenset(
            ({"accounts"} if "revenue" in counters else set())
            | ({"contract_codes"} if "contracts_expiring" in counters else set()))

    def column(self, codes: Codes, crit: Criterion) -> Column:
        """The column read for one criterion (a subclass reads another of it)."""
        return criterion_column(self.rules, codes, crit)

    def columns(self, codes: Codes) -> list[Column]:
        out: list[Column] = []
        for mon in self.rules.monitors:
            for crit in mon.criteria:
                col = self.column(codes, crit)
                if col not in out:
                    out.append(col)
        return out


# -- evaluation -----------------------------------------------------------------------------------
_COMPARE: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    ">": lambda x, v: x > v + EPS,
    ">=": lambda x, v: x >= v - EPS,
    "<": lambda x, v: x < v - EPS,
    "<=": lambda x, v: x <= v + EPS,
    "==": lambda x, v: np.abs(x - v) <= EPS,
    "!=": lambda x, v: np.abs(x - v) > EPS,
}


def indexer(index: Callable[[Column], int] | Mapping[Column, int], what: str
            ) -> Callable[[Column], int]:
    """``Compiled.index_of`` or a mapping, with a hint when a column was not computed."""
    look = index.__getitem__ if isinstance(index, Mapping) else index

    def find(col: Column) -> int:
        try:
            return look(col)
        except KeyError:
            raise ValueError(f"a {what} column was not computed: pass {what}(rules) to "
                             "read_facts(extra=[...])") from None

    return find


def matches(monitor: Monitor, values: np.ndarray) -> np.ndarray:
    """Which rows meet the monitor: ``values[:, j]`` is criterion j's counter."""
    results = [_COMPARE[c.op](values[:, j], c.value) for j, c in enumerate(monitor.criteria)]
    reduce = np.logical_and.reduce if monitor.match == "all" else np.logical_or.reduce
    return reduce(results)


@dataclass(slots=True)
class Selected:
    """Every monitor's hits counted, and the alerts whose texts are to be rendered (chosen, not
    rendered yet: the caller reads their contacts first, with any others it needs, in one go)."""

    result: MonitorResult
    pending: list[tuple[Monitor, Any, list[int], list[list[float]]]] = field(default_factory=list)

    @property
    def wanted(self) -> set[int]:
        """The customers whose alert texts will be rendered."""
        return {cid for _, _, chosen_ids, _ in self.pending for cid in chosen_ids}


def evaluate(rules: RuleSet, compiled_index: Callable[[Column], int] | Mapping[Column, int],
             codes: Codes, services: Mapping[int, frozenset[str]], rolled: np.ndarray | None,
             customers: Mapping[int, Customer],
             contacts: Mapping[int, Contact] | Callable[[set[int]], Mapping[int, Contact]], *,
             limit: int | None = None, seen: Container[tuple[int, str]] = ()) -> MonitorResult:
    """Every monitor over every in-scope customer.

    ``services`` and ``rolled`` are ``Classification.services`` and ``.rolled`` (row i is the i-th
    customer of ``services``, parent and active locations added together); ``compiled_index`` is
    ``facts.metrics.compiled.index_of``. Comparing is array work (a million customers in tens of
    milliseconds); rendering a text costs some 10 microseconds per alert, so ``limit`` renders at
    most that many alerts per monitor and branch (hits not in ``seen`` first, then the lowest
    customer numbers) while ``hits`` and ``counts`` stay complete. ``contacts`` may be a function
    given the ids of the customers whose texts are rendered, so that only those contacts are read.
    """
    chosen = select(rules, compiled_index, codes, services, rolled, customers, limit=limit,
                    seen=seen)
    wanted = chosen.wanted
    book = (contacts(wanted) if wanted else {}) if callable(contacts) else contacts
    return render_alerts(chosen, customers, book)


def select(rules: RuleSet, compiled_index: Callable[[Column], int] | Mapping[Column, int],
           codes: Codes, services: Mapping[int, frozenset[str]], rolled: np.ndarray | None,
           customers: Mapping[int, Customer], *, limit: int | None = None,
           seen: Container[tuple[int, str]] = ()) -> Selected:
    """The first half of ``evaluate``: hits and counts, and the alerts to render."""
    if not rules.monitors:
        return Selected(MonitorResult())
    if rolled is None:
        return Selected(MonitorResult(note="status monitors were not evaluated: these rules are "
                                           "read through the detailed facts, which carry no "
                                           "monitor counters"))
    if rolled.shape[0] != len(services):
        raise ValueError(f"rolled has {rolled.shape[0]} rows for {len(services)} customers")
    find = indexer(compiled_index, "MonitorColumns")
    ids = np.fromiter(services.keys(), dtype=np.int64, count=len(services))
    out = Selected(MonitorResult())
    hits = out.result.hits
    for mon in rules.monitors:
        cols = [find(criterion_column(rules, codes, c)) for c in mon.criteria]
        values = rolled[:, cols]
        rows = np.nonzero(matches(mon, values))[0]
        out.result.counts[mon.code] = len(rows)
        template = compile_text(mon.text)
        hit_ids = ids[rows].tolist()
        one = (mon.code,)
        for cid in hit_ids:
            hits[cid] = hits.get(cid, ()) + one
        chosen = rows if limit is None else rows[
            _first_per_branch(hit_ids, customers, limit, mon.code, seen)]
        out.pending.append((mon, template, ids[chosen].tolist(), values[chosen].tolist()))
    return out


def render_alerts(chosen: Selected, customers: Mapping[int, Customer],
                  book: Mapping[int, Contact]) -> MonitorResult:
    """The second half of ``evaluate``: the chosen alerts' texts, with the contact to call.

    Monitors with a priority come first (Critical to Low), then rule order; within a monitor,
    customer number order."""
    result = chosen.result
    pending = sorted(chosen.pending, key=lambda p: PRIORITY_ORDER.get(p[0].priority or "", 9))
    for mon, template, chosen_ids, chosen_values in pending:
        found = []
        for cid, vals in zip(chosen_ids, chosen_values):
            c = customers[cid]
            person = book.get(cid) or _NO_CONTACT
            found.append(StatusAlert(
                number=c.number, name=c.name, branch=c.branch, monitor=mon.name,
                text=render(template, mon, c, person, vals), customer_id=cid,
                code=mon.code, sales_rep=c.sales_rep, priority=mon.priority or "",
                contact_name=person.name, contact_phone=person.phone,
                contact_email=person.email))
        found.sort(key=lambda a: a.number)
        result.alerts += found
    return result


NOISY_SHARE = 0.2  # a monitor firing for more of the classified customers than this is noise


def noisy(monitors: Sequence[Monitor], counts: Mapping[str, int], classified: int,
          share: float = NOISY_SHARE) -> list[str]:
    """A warning per monitor that fires for more than ``share`` of the classified customers:
    an alert most customers get every night is read by nobody."""
    out = []
    for mon in monitors:
        hit = counts.get(mon.code, 0)
        if classified and hit / classified > share:
            out.append(f"monitor {mon.code} ({mon.name}) fires for {hit:,} of {classified:,} "
                       f"customers ({hit / classified:.0%}), more than {share:.0%}: an alert "
                       "most customers get every night goes unread; tighten its criteria in "
                       "the rules (a longer period, a minimum value)")
    return out


def _first_per_branch(hit_ids: list[int], customers: Mapping[int, Customer], limit: int,
                      code: str = "", seen: Container[tuple[int, str]] = ()) -> list[int]:
    """Positions in ``hit_ids`` of ``limit`` hits of each branch: those not ``seen`` on an
    earlier night first, then the lowest customer numbers."""
    by_branch: dict[str | None, list[tuple[bool, str, int]]] = {}
    branches = customer_column(customers, "branch", hit_ids).tolist()
    numbers = customer_column(customers, "number", hit_ids).tolist()
    for pos, (cid, branch, number) in enumerate(zip(hit_ids, branches, numbers)):
        by_branch.setdefault(branch, []).append(((cid, code) in seen, number, pos))
    return sorted(item[2] for items in by_branch.values()
                  for item in (heapq.nsmallest(limit, items) if len(items) > limit else items))


_NO_CONTACT = Contact()


def render(template: Template, monitor: Monitor, customer: Customer, contact: Contact | None,
           values: list[float]) -> str:
    """One alert's text; an error names the monitor and the customer."""
    contact = contact or _NO_CONTACT
    try:
        text = render_text(template, {
            "name": customer.name or "", "number": customer.number,
            "contact": contact.name or "", "phone": contact.phone or "",
            "email": contact.email or "", "branch": customer.branch or "",
            "sales_rep": customer.sales_rep or "", "monitor": monitor.name, "values": values})
    except Exception as exc:  # noqa: BLE001 - e.g. a division by a counter that is 0 tonight
        raise RulesError(f"monitor {monitor.code}: its text could not be rendered for customer "
                         f"{customer.number}: {exc}") from None
    text = " ".join(text.split())  # one line in the digest, whatever the YAML's line breaks
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"


__all__ = ["NOISY_SHARE", "Contact", "MonitorColumns", "MonitorResult", "Selected", "compile_text",
           "criterion_column", "evaluate", "matches", "noisy", "render", "render_alerts", "select",
           "template_problem"]
