"""The rule language: what makes a customer use a key service.

Admins write ``rules/*.yaml``; these models say what each key may hold, and ``RuleSet`` is the
merged, compiled form that ``classify`` evaluates. Pure: pydantic and the standard library.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .cross_sell import CrossSell

PROPERTY_MAX_LENGTH = 1024  # ARCustomerCustomProperties.TextVal is varchar(1024)
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}$"

Glob = Annotated[str, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Section(_Strict):
    """A section filters on at least one of its ``_filters``; an empty filter would match all."""

    _filters: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _needs_a_filter(self) -> _Section:
        if not any(getattr(self, name) for name in self._filters):
            raise ValueError(f"name at least one of {' or '.join(self._filters)}")
        return self


class EquipmentSection(_Section):
    """Equipment in the field whose model category maps to one of the classes or globs."""

    model_classes: list[str] = Field([], description="model classes (from model_classes)")
    categories: list[Glob] = Field([], description="raw dealer model categories, * and ? globs")
    min_count: int = Field(1, ge=1, description="units needed")
    active_only: bool = Field(True, description="count only active equipment")
    on_contract: bool | None = Field(
        None, description="true: only machines on a contract active on the run date "
                          "(SCContractDetails); false: only machines on none; unset: all")
    _filters = ("model_classes", "categories")


class ItemsSoldSection(_Section):
    """Items invoiced in a lookback window (CEO Juice's "only include model items sold").

    ``min_unit_price`` is what keeps a zero-cost, never-registered licence from making a customer.
    """

    model_classes: list[str] = Field([], description="model classes of the items' models")
    categories: list[Glob] = Field([], description="raw model categories of the items, globs")
    item_categories: list[Glob] = Field(
        [], description="item category globs (CEO Juice's 'Item Categories'); empty: all")
    window_days: int = Field(730, ge=1, le=3660, description="lookback window in days")
    min_unit_price: float | None = Field(
        None, ge=0, description="at least one item sold at this unit price or more")
    min_unit_cost: float | None = Field(
        None, ge=0, description="at least one item with this unit cost or more")
    min_amount: float | None = Field(None, ge=0, description="total invoiced amount needed")
    min_quantity: float = Field(1, gt=0, description="total quantity needed")
    _filters = ("model_classes", "categories")


class ContractsSection(_Section):
    """Contracts active on the run date whose contract code (and bill code) match the globs."""

    contract_codes: list[Glob] = Field([], description="contract code globs, e.g. MPS-*")
    bill_codes: list[Glob] = Field([], description="contract bill code globs")
    statuses: list[Glob] = Field([], description="contract status globs; empty: any status")
    min_count: int = Field(1, ge=1, description="active contracts needed")
    min_base_rate: float | None = Field(
        None, ge=0, description="total monthly base rate of those contracts needed")
    _filters = ("contract_codes", "bill_codes")


class GlSection(_Strict):
    """GL revenue on matching accounts within a lookback window."""

    accounts: list[Glob] = Field(min_length=1, description="GL account number globs, e.g. 4150*")
    transaction_types: list[Glob] = Field(
        [], description="GL transaction type globs, e.g. 'service invoice'; empty: all")
    window_days: int = Field(365, ge=1, le=3660, description="lookback window in days")
    min_revenue: float = Field(0.01, ge=0, description="revenue needed within the window")


SECTION_NAMES = ("equipment", "items_sold", "contracts", "gl")


class Exclude(_Strict):
    """Sections that, when they match, withhold the service whatever else matched."""

    match: Literal["any", "all"] = Field("any", description="exclude on ANY or ALL sections")
    equipment: EquipmentSection | None = None
    items_sold: ItemsSoldSection | None = None
    contracts: ContractsSection | None = None
    gl: GlSection | None = None

    @model_validator(mode="after")
    def _needs_a_section(self) -> Exclude:
        if not self.sections():
            raise ValueError("exclude needs at least one section")
        return self

    def sections(self) -> list[tuple[str, Any]]:
        return [(n, getattr(self, n)) for n in SECTION_NAMES if getattr(self, n) is not None]


class Service(_Strict):
    """One key service: a combination of sections, matched ANY (exclusive) or ALL (inclusive)."""

    code: str = Field(pattern=CODE_PATTERN, description="short code written to the property")
    name: str = Field(min_length=1, max_length=64, description="display name")
    description: str = Field("", description="what the service means, for people")
    match: Literal["any", "all"] = Field(
        "any", description="any: one section is enough (CEO Juice 'exclusive'); all: every "
                           "section must match ('inclusive')")
    equipment: EquipmentSection | None = None
    items_sold: ItemsSoldSection | None = None
    contracts: ContractsSection | None = None
    gl: GlSection | None = None
    exclude: Exclude | None = None

    @model_validator(mode="after")
    def _needs_a_section(self) -> Service:
        if not self.sections():
            raise ValueError(f"service {self.code} has no section: add equipment, items_sold, "
                             "contracts or gl")
        return self

    def sections(self) -> list[tuple[str, Any]]:
        return [(n, getattr(self, n)) for n in SECTION_NAMES if getattr(self, n) is not None]


class Industry(_Strict):
    """Where a customer's industry comes from (for penetration and industry gaps)."""

    source: str = Field("customer_type", description="customer_type, custom_property:<name> or "
                                                      "column:<name> (a column of ARCustomers)")

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value == "customer_type" or re.match(r"^(custom_property|column):\S+$", value):
            return value
        raise ValueError("use customer_type, custom_property:<name> or column:<name>")


class Opportunities(_Strict):
    """Industry gaps (CEO Juice ID789's point): a customer lacking a service that most of its
    industry peers use is worth a call."""

    typical_share: float = Field(0.5, gt=0, le=1, description="share of industry peers using "
                                                             "the service that makes it typical")
    min_peers: int = Field(10, ge=1, description="classified customers an industry needs")
    grace_days: int = Field(90, ge=0, description="new customers count only after this many days")
    exclude_customers: list[str] = Field([], description="customer numbers never listed")
    exclude_industries: list[str] = Field([], description="industries never listed")
    top: int = Field(25, ge=0, le=10_000, description="how many the digest lists")
    peers: Literal["industry", "industry_and_tier"] = Field(
        "industry", description="who a customer is compared with: its industry, or its industry "
                                "and size tier (priority.tiers)")
    renewal_days: int = Field(90, ge=0, le=3660, description="a renewal call for a service "
                              "whose every contract ends within this many days (0: none)")


Days = Annotated[int, Field(ge=1, le=3660)]
PRIORITIES = ("Critical", "High", "Medium", "Low")  # most urgent first
MONITOR_VARIABLES = ("name", "number", "contact", "phone", "email", "branch", "sales_rep",
                     "monitor", "values")
_OP_WORDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "==", "=": "==", "ne": "!=",
             "<>": "!="}


class Criterion(_Strict):
    """One counter over one period compared with a value (a SuperOffice SAINT criterion)."""

    counter: Literal["revenue", "contracts_expiring", "invoices"] = Field(
        description="revenue: GL revenue in the period; contracts_expiring: active contracts "
                    "expiring within the period; invoices: invoices dated in the period")
    period: int = Field(ge=1, le=3660, description="days; one of monitor_periods")
    op: Literal[">", ">=", "<", "<=", "==", "!="] = Field(
        ">", description="comparison (quote it in YAML: \">\"), or gt, ge, lt, le, eq, ne")
    value: float = Field(0, description="compared with the counter")
    service: str | None = Field(None, description="revenue: that service's gl accounts; "
                                                  "contracts_expiring: its contract codes")
    accounts: list[Glob] = Field([], description="revenue: GL account globs (instead of service)")
    contract_codes: list[Glob] = Field(
        [], description="contracts_expiring: contract code globs (instead of service); "
                        "neither: every contract")

    @field_validator("op", mode="before")
    @classmethod
    def _op_words(cls, value: Any) -> Any:
        return _OP_WORDS.get(value.strip().lower(), value.strip()) if isinstance(value, str) \
            else value

    @model_validator(mode="after")
    def _fits_the_counter(self) -> Criterion:
        if self.counter == "revenue":
            if self.contract_codes:
                raise ValueError("contract_codes is for contracts_expiring; revenue takes "
                                 "service or accounts")
            if bool(self.service) == bool(self.accounts):
                raise ValueError("revenue needs either service or accounts")
        elif self.counter == "contracts_expiring":
            if self.accounts:
                raise ValueError("accounts is for revenue; contracts_expiring takes service or "
                                 "contract_codes")
            if self.service and self.contract_codes:
                raise ValueError("name either service or contract_codes, not both")
        elif self.service or self.accounts or self.contract_codes:
            raise ValueError("invoices counts every invoice: remove service, accounts and "
                             "contract_codes")
        return self

    def describe(self) -> str:
        what = {"revenue": "revenue", "contracts_expiring": "contracts expiring",
                "invoices": "invoices"}[self.counter]
        scope = (self.service or ", ".join(self.accounts or self.contract_codes))
        return (f"{what}{f' ({scope})' if scope else ''} in {self.period} days "
                f"{self.op} {self.value:g}")


class Monitor(_Strict):
    """A status monitor (SuperOffice SAINT): customers meeting its criteria get an alert."""

    code: str = Field(pattern=CODE_PATTERN, description=(
        "short code (priority rules name it); with an opportunities: block, not a service's "
        "code (its hits are calls, kept per customer and code)"))
    name: str = Field(min_length=1, max_length=64, description="display name in the digest")
    all: list[Criterion] | None = Field(None, description="criteria that must all hold")
    any: list[Criterion] | None = Field(None, description="criteria of which one must hold")
    text: str = Field(min_length=1, max_length=1000,
                      description="Jinja text: {{ name }}, {{ number }}, {{ contact }}, "
                                  "{{ phone }}, {{ email }}, {{ branch }}, {{ sales_rep }}, "
                                  "{{ monitor }}, {{ values[0] | money }}")
    priority: Literal["Critical", "High", "Medium", "Low"] | None = Field(
        None, description="shown on its alerts, which the digest sorts by (most urgent first)")

    @model_validator(mode="after")
    def _one_list(self) -> Monitor:
        if (self.all is None) == (self.any is None):
            raise ValueError(f"monitor {self.code} needs either all: or any: (a list of "
                             "criteria)")
        if not self.criteria:
            raise ValueError(f"monitor {self.code} has no criteria")
        return self

    @property
    def match(self) -> Literal["all", "any"]:
        return "all" if self.all is not None else "any"

    @property
    def criteria(self) -> list[Criterion]:
        return self.all if self.all is not None else (self.any or [])


class Tiers(_Strict):
    """Customer tiers from trailing revenue: by amounts (thresholds) or by rank (quantiles)."""

    accounts: list[Glob] = Field(min_length=1, description="GL account globs, e.g. 4*")
    window_days: int = Field(365, ge=1, le=3660, description="trailing window in days")
    thresholds: dict[str, float] | None = Field(
        None, description="tier -> minimum revenue, e.g. {A: 50000, B: 10000, C: 0}")
    quantiles: dict[str, float] | None = Field(
        None, description="tier -> minimum share of in-scope customers with less revenue, "
                          "e.g. {A: 0.9, B: 0.6, C: 0} (A = the top 10%)")

    @model_validator(mode="after")
    def _one_kind(self) -> Tiers:
        if (self.thresholds is None) == (self.quantiles is None):
            raise ValueError("name either thresholds or quantiles")
        table = self.thresholds if self.thresholds is not None else self.quantiles
        assert table is not None
        if not table:
            raise ValueError("name at least one tier")
        for name, minimum in table.items():
            if not re.match(CODE_PATTERN, str(name)):
                raise ValueError(f"tier name {name!r} must be a short code such as A or GOLD")
            if minimum < 0 or (self.quantiles is not None and minimum >= 1):
                raise ValueError(f"tier {name}: {minimum:g} must be "
                                 + ("0 or more" if self.thresholds is not None
                                    else "from 0 up to (not including) 1"))
        if len(set(table.values())) != len(table):
            raise ValueError("two tiers have the same minimum")
        return self

    def ordered(self) -> list[tuple[str, float]]:
        """(tier, minimum), highest minimum first: a customer gets the first it reaches."""
        table = self.thresholds if self.thresholds is not None else self.quantiles
        return sorted((table or {}).items(), key=lambda kv: -kv[1])


class Renewal(_Strict):
    """The customer has an active contract expiring within ``within_days`` of the run date."""

    within_days: int = Field(ge=1, le=3660, description="days from the run date")
    contract_codes: list[Glob] = Field([], description="contract code globs; empty: any contract")
    service: str | None = Field(None, description="that service's contract codes instead")

    @model_validator(mode="after")
    def _not_both(self) -> Renewal:
        if self.service and self.contract_codes:
            raise ValueError("name either service or contract_codes, not both")
        return self


class When(_Strict):
    """Conditions of a priority rule; all must hold. No conditions: every opportunity."""

    services: list[str] = Field([], description="opportunity service codes; empty: any")
    tiers: list[str] = Field([], description="customer tiers (from priority.tiers)")
    renewal: Renewal | None = Field(None, description="a contract renewing soon")
    monitors: Literal["any"] | list[str] | None = Field(
        None, description="'any' status monitor hit, or a list of monitor codes (one is enough)")
    min_share: float | None = Field(None, gt=0, le=1,
                                    description="industry gap: at least this share of peers "
                                                "use the service")
    min_value: float | None = Field(None, ge=0, description="estimated annual value at least "
                                                            "this (money at stake)")
    source: Literal["typical", "cross_sell"] | None = Field(
        None, description="typical: industry gaps only; cross_sell: cross-sell rules only")


class PriorityRule(_Strict):
    """One priority rule: the first matching rule with a priority sets it; points all add."""

    name: str = Field(min_length=1, max_length=80, description="shown in explain and the why")
    when: When | None = Field(None, description="conditions, all must hold; none: every "
                                                "opportunity")
    priority: Literal["Critical", "High", "Medium", "Low"] | None = Field(
        None, description="the priority set when this is the first matching rule that has one")
    points: float = Field(0, description="added to the score (shown; the list is ranked by "
                                         "expected value)")
    pin: bool = Field(False, description="put the matching calls at the top of the list")
    boost: float = Field(1.0, gt=0, le=100, description="multiply their expected value by "
                                                        "this when ranking")
    hide: bool = Field(False, description="leave the matching calls out of every list")

    @model_validator(mode="after")
    def _does_something(self) -> PriorityRule:
        if self.priority is None and not self.points and not self.pin and not self.hide \
                and self.boost == 1.0:
            raise ValueError(f"rule {self.name!r} sets no priority, adds no points and pins, "
                             "boosts or hides nothing")
        return self


class Priority(_Strict):
    """Dynamic priority (Amity): rules over tier, renewal window, status monitors, industry gap."""

    tiers: Tiers | None = Field(None, description="customer tiers from trailing revenue")
    rules: list[PriorityRule] = Field(min_length=1, description="evaluated in order")


class RuleFile(_Strict):
    """What one rule file may contain; files in ``rules/`` are merged (services concatenated)."""

    property: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$",
                                 description="the customer custom property written "
                                             "(default ZCJKeyServices)")
    level: Literal["parent", "location"] | None = Field(
        None, description="parent (default): a parent and its active locations together; "
                          "location: every record on its own")
    separator: str | None = Field(None, min_length=1, max_length=3,
                                  description="between services in the value (default ;)")
    value: Literal["codes", "names"] | None = Field(
        None, description="write service codes (default) or names")
    industry: Industry | None = None
    model_classes: dict[Glob, str] = Field(
        {}, description="dealer model category glob -> model class; first match wins")
    services: list[Service] = Field([], description="the key services, in value order")
    opportunities: Opportunities | None = None
    monitor_periods: list[Days] | None = Field(
        None, min_length=1, max_length=3,
        description="the (up to three) periods monitors count over, in days (default 30, 60, 90)")
    monitors: list[Monitor] = Field([], description="status monitors (SuperOffice SAINT)")
    priority: Priority | None = Field(None, description="dynamic priority rules (Amity)")
    cross_sell: list[CrossSell] = Field([], description="cross-sell rules: who to offer what, "
                                                        "beside industry gaps")

    @field_validator("monitor_periods")
    @classmethod
    def _distinct_periods(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("periods must differ")
        return value


@dataclass(frozen=True, slots=True)
class RuleSet:
    """All rule files merged, validated and compiled; what ``classify`` evaluates."""

    property: str
    level: Literal["parent", "location"]
    separator: str
    value: Literal["codes", "names"]
    industry_source: str
    opportunities: Opportunities | None
    model_classes: tuple[tuple[str, str], ...]  # (category glob, class), first match wins
    services: tuple[Service, ...]
    files: tuple[Path, ...]
    monitor_periods: tuple[int, ...] = (30, 60, 90)
    monitors: tuple[Monitor, ...] = ()
    priority: Priority | None = None
    cross_sell: tuple[CrossSell, ...] = ()

    # -- compiled helpers ------------------------------------------------------------------------
    def class_of(self, category: str) -> str | None:
        """The model class a dealer category maps to (first matching glob), or None if unmapped."""
        up = category.upper()
        for pattern, cls in self.model_classes:
            if fnmatch.fnmatchcase(up, pattern.upper()):
                return cls
        return None

    def service(self, code: str) -> Service | None:
        return next((s for s in self.services if s.code == code), None)

    def service_names(self) -> dict[str, str]:
        return {s.code: s.name for s in self.services}

    def render_value(self, codes: frozenset[str] | set[str]) -> str:
        """The property value for a set of service codes, in rule order."""
        items = [s.code if self.value == "codes" else s.name for s in self.services
                 if s.code in codes]
        return self.separator.join(items)

    def parse_value(self, value: str | None) -> frozenset[str]:
        """Service codes in a stored value (names are mapped back to codes when value: names)."""
        if not value:
            return frozenset()
        parts = [p.strip() for p in value.split(self.separator) if p.strip()]
        if self.value == "names":
            by_name = {s.name: s.code for s in self.services}
            return frozenset(by_name.get(p, p) for p in parts)
        return frozenset(parts)

    def all_sections(self, name: str) -> list[Any]:
        """Every section of this kind, in services and in their exclude blocks."""
        out = []
        for s in self.services:
            for holder in (s, s.exclude):
                sec = getattr(holder, name, None) if holder is not None else None
                if sec is not None:
                    out.append(sec)
        return out

    def windows(self) -> tuple[set[int], set[int]]:
        """Lookback windows (days) used by GL and items-sold sections; the queries compute each."""
        return ({g.window_days for g in self.all_sections("gl")},
                {i.window_days for i in self.all_sections("items_sold")})

    def gl_account_globs(self) -> list[str]:
        return sorted({a for g in self.all_sections("gl") for a in g.accounts})

    def uses_transaction_types(self) -> bool:
        return any(g.transaction_types for g in self.all_sections("gl"))

    def uses_contract_statuses(self) -> bool:
        return any(c.statuses for c in self.all_sections("contracts"))

    def uses_item_categories(self) -> bool:
        return any(i.item_categories for i in self.all_sections("items_sold"))

    def counts_inactive_equipment(self) -> bool:
        return any(not e.active_only for e in self.all_sections("equipment"))

    def categories_for(self, section: EquipmentSection | ItemsSoldSection,
                       categories: list[str]) -> set[str]:
        """Which of the dealer's categories a section counts (mapped classes or raw globs)."""
        wanted = {c.upper() for c in section.model_classes}
        out = set()
        for cat in categories:
            cls = self.class_of(cat)
            if cls is not None and cls.upper() in wanted or any(fnmatch.fnmatchcase(cat.upper(), g.upper()) for g in section.categories):
                out.add(cat)
        return out


def glob_match(value: str, globs: list[str]) -> bool:
    up = value.upper()
    return any(fnmatch.fnmatchcase(up, g.upper()) for g in globs)
