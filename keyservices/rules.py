"""The rule language: what makes a customer use a key service.

Admins write ``rules/*.yaml``; this module validates them completely (every problem at once, with file,
line and key) and compiles them for ``classify``. Pure: pydantic and the standard library only.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import RulesError
from .yamlfile import Problem, YamlProblems, load_yaml, position, problems_from_validation

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

    # -- compiled helpers ------------------------------------------------------------------------
    def class_of(self, category: str) -> str | None:
        """The model class a dealer category maps to (first matching glob), or None if unmapped."""
        up = category.upper()
        for pattern, cls in self.model_classes:
            if fnmatch.fnmatchcase(up, pattern.upper()):
                return cls
        return None

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
            if cls is not None and cls.upper() in wanted:
                out.add(cat)
            elif any(fnmatch.fnmatchcase(cat.upper(), g.upper()) for g in section.categories):
                out.add(cat)
        return out


def glob_match(value: str, globs: list[str]) -> bool:
    up = value.upper()
    return any(fnmatch.fnmatchcase(up, g.upper()) for g in globs)


def rule_files(location: Path) -> list[Path]:
    """The rule files at ``location``: one file, or the ``*.yaml``/``*.yml`` directly in a folder
    (sub-folders such as ``rules/tests/`` hold other things)."""
    if location.is_file():
        return [location]
    if location.is_dir():
        return sorted(p for p in location.iterdir()
                      if p.is_file() and p.suffix in (".yaml", ".yml"))
    raise RulesError(f"rules not found: {location} (set 'rules:' in config.yaml to a folder of "
                     "*.yaml rule files, or run 'keyservices init' to get a starter set)")


def load_rules(location: Path, *, property_override: str | None = None) -> RuleSet:
    """Load, merge and validate every rule file; raise RulesError listing all problems."""
    files = rule_files(location)
    if not files:
        raise RulesError(f"no *.yaml rule files in {location}")
    problems: list[Problem] = []
    parsed: list[tuple[Path, Any, RuleFile]] = []
    for path in files:
        try:
            data = load_yaml(path)
        except YamlProblems as exc:
            problems.extend(exc.problems)
            continue
        if not isinstance(data, dict):
            kind = "a list" if isinstance(data, list) else type(data).__name__
            line, col = position(data, ())
            problems.append(Problem(path, line or 1, col or 1, "",
                                    f"must be a mapping of settings and services, got {kind}"))
            continue
        try:
            parsed.append((path, data, RuleFile.model_validate(dict(data))))
        except ValidationError as exc:
            problems.extend(problems_from_validation(exc, data, path, RuleFile))
    # files that parsed are also checked together, so one run reports every problem at once
    ruleset, merge_problems = _merge(parsed, property_override) if parsed else (None, [])
    if problems:  # some files failed: "no services defined" would only be noise then
        merge_problems = [p for p in merge_problems if "no services defined" not in p.message]
    problems += merge_problems
    if problems:
        raise RulesError(_summary(problems))
    assert ruleset is not None
    return ruleset


def _summary(problems: list[Problem]) -> str:
    n = len(problems)
    head = f"{n} problem{'s' if n != 1 else ''} in the rules:"
    return "\n".join([head, *(f"  {p}" for p in problems)])


def _merge(parsed: list[tuple[Path, Any, RuleFile]],
           property_override: str | None) -> tuple[RuleSet | None, list[Problem]]:
    problems: list[Problem] = []
    settings: dict[str, tuple[Any, Path]] = {}
    classes: dict[str, tuple[str, Path]] = {}
    services: list[Service] = []
    seen_codes: dict[str, Path] = {}
    for path, data, rf in parsed:
        for key in ("property", "level", "separator", "value", "industry", "opportunities"):
            val = getattr(rf, key)
            if val is None:
                continue
            if key in settings and settings[key][0] != val:
                line, col = position(data, (key,))
                problems.append(Problem(path, line, col, key,
                                        f"already set differently in {settings[key][1]}"))
            settings[key] = (val, path)
        for glob, cls in rf.model_classes.items():
            if glob in classes and classes[glob][0] != cls:
                line, col = position(data, ("model_classes", glob))
                problems.append(Problem(path, line, col, f"model_classes.{glob}",
                                        f"mapped to {classes[glob][0]} in {classes[glob][1]}"))
            classes[glob] = (cls, path)
        for i, svc in enumerate(rf.services):
            if svc.code in seen_codes:
                line, col = position(data, ("services", i, "code"))
                problems.append(Problem(path, line, col, f"services[{i}].code",
                                        f"duplicate service code {svc.code!r} "
                                        f"(first defined in {seen_codes[svc.code]})"))
            seen_codes[svc.code] = path
            services.append(svc)
    if not services and not problems:
        path0, data0, _ = parsed[0]
        line, col = position(data0, ("services",))
        problems.append(Problem(path0, line, col, "services", "no services defined"))
    sep = settings.get("separator", (";", None))[0]
    mapped_classes = {c.upper() for c, _ in classes.values()}
    for path, data, rf in parsed:
        for i, svc in enumerate(rf.services):
            if sep in svc.code:
                line, col = position(data, ("services", i, "code"))
                problems.append(Problem(path, line, col, f"services[{i}].code",
                                        f"contains the separator {sep!r}"))
            for prefix, holder in (((), svc), (("exclude",), svc.exclude)):
                for section in ("equipment", "items_sold"):
                    sec = getattr(holder, section) if holder is not None else None
                    for cls in sec.model_classes if sec else ():
                        if cls.upper() in mapped_classes:
                            continue
                        loc = ("services", i, *prefix, section, "model_classes")
                        line, col = position(data, loc)
                        key = f"services[{i}]." + ".".join(map(str, loc[2:]))
                        problems.append(Problem(
                            path, line, col, key,
                            f"model class {cls!r} is mapped from no category; add it under "
                            f"model_classes (known: {', '.join(sorted(mapped_classes)) or 'none'})"))
    if problems:
        return None, problems
    ruleset = RuleSet(
        property=property_override or settings.get("property", ("ZCJKeyServices", None))[0],
        level=settings.get("level", ("parent", None))[0],
        separator=sep,
        value=settings.get("value", ("codes", None))[0],
        industry_source=settings.get("industry", (Industry(), None))[0].source,
        opportunities=settings.get("opportunities", (None, None))[0],
        model_classes=tuple((g, c) for g, (c, _) in classes.items()),
        services=tuple(services),
        files=tuple(p for p, _, _ in parsed),
    )
    everything = ruleset.render_value({s.code for s in services})
    first_path, first_data, _ = parsed[0]
    if len(everything) > PROPERTY_MAX_LENGTH:
        line, col = position(first_data, ("services",))
        problems.append(Problem(first_path, line, col, "services",
                                f"with every service the value is {len(everything)} characters; "
                                f"the attribute holds {PROPERTY_MAX_LENGTH}"))
    for path, data, rf in parsed:
        for i, svc in enumerate(rf.services):
            field = "name" if ruleset.value == "names" else "code"
            try:
                getattr(svc, field).encode("cp1252")
            except UnicodeEncodeError:
                line, col = position(data, ("services", i, field))
                problems.append(Problem(path, line, col, f"services[{i}].{field}",
                                        "has characters a varchar column cannot hold (keep to "
                                        "Windows-1252)"))
    return (None, problems) if problems else (ruleset, [])


def reference_markdown() -> str:
    """The rule-file reference tables, generated from the models (``docs/rules.md`` embeds them,
    and a test keeps the two in step)."""
    models: list[tuple[str, type[BaseModel]]] = [
        ("Top level of a rule file", RuleFile), ("industry", Industry), ("services[]", Service),
        ("equipment", EquipmentSection), ("items_sold", ItemsSoldSection),
        ("contracts", ContractsSection), ("gl", GlSection), ("exclude", Exclude),
        ("opportunities", Opportunities)]
    out: list[str] = []
    for title, model in models:
        out += [f"### `{title}`", "", (model.__doc__ or "").strip().splitlines()[0], "",
                "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for name, info in model.model_fields.items():
            annotation = info.annotation
            text = (annotation.__name__ if isinstance(annotation, type) else str(annotation))
            text = (text.replace("typing.", "").replace("keyservices.rules.", "")
                    .replace("Annotated[str, FieldInfo(annotation=NoneType, required=True, "
                             "metadata=[MinLen(min_length=1), MaxLen(max_length=64)])]", "glob")
                    .replace(" | ", " or "))
            default = "required" if info.is_required() else repr(info.default)
            out.append(f"| `{name}` | `{text}` | `{default}` | "
                       f"{(info.description or '').replace('|', '/')} |")
        out.append("")
    return "\n".join(out)
