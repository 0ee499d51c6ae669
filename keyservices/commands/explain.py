"""Looking inside the rules: ``explain`` a customer, run the admin's rule tests, print the rule
schema. None of these writes anything.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import night
from ..config import Config
from ..engine.cases import run_cases
from ..engine.classify import explain as explain_rows
from ..engine.classify import facts_for
from ..erp.facts import read_facts
from ..errors import ConfigError
from ..model import CustomerTable
from ..rules import RuleFile
from . import why


@dataclass
class Explanation:
    """Why a customer (and each of its locations) has or lacks each service."""

    as_of: dt.date
    level: str
    customer: dict[str, Any]
    value_now: str | None
    value_by_rules: str | None
    records: list[dict[str, Any]]  # the customer and its locations, each with facts and verdicts
    # the customer's opportunities as tonight's run ranks them: play, chance, value, and why
    opportunities: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    alerts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # asked about a location at level: parent: whether it follows the parent's value, and why
    location: dict[str, Any] | None = None
    # what changed since the facts of the last clean live run before this date, and risk flags
    since: list[str] = dataclasses.field(default_factory=list)
    risks: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["as_of"] = self.as_of.isoformat()
        return data


def _facts_dict(f: Any) -> dict[str, Any]:
    return {"equipment": dict(f.equipment),
            "contracts": {f"{k[0]}/{k[1]}": dataclasses.asdict(v) for k, v in f.contracts.items()},
            "gl": {f"{k[0]} ({k[1]} days)": v for k, v in f.gl.items()},
            "items_sold": {f"{k[0]} ({k[1]} days)": dataclasses.asdict(v)
                           for k, v in f.items_sold.items()}}


def explain(config: Config, customer: str, *, as_of: dt.date | None = None) -> Explanation:
    """The facts and every service's verdict with reasons, for one customer by number or name.

    Reads the same set-based facts as a run (a constant number of statements), then explains the
    customer's own record and, at ``level: parent``, each of its locations.
    """
    as_of = as_of or dt.date.today()
    rules = night.rules_for(config)
    with night.open_erp(config, rules) as erp:
        # priorities need the night's numbers for every customer (tiers by quantile, industry
        # shares): the run's own pipeline; then the per-category breakdown explain shows, read
        # for this customer and its locations only (for all of a million: minutes and GBs)
        tonight = night.compute(config, as_of, erp=erp, values=False)
        table = tonight.facts.customers
        assert isinstance(table, CustomerTable)  # read from the ERP: columns, not a dict
        asked = table[_find(table, customer)]
        target = asked
        parent = asked.parent_id if asked.is_location else None
        if rules.level == "parent" and parent is not None and parent in table:
            target = table[parent]  # the parent's record carries the value
        counted = members_of(table, rules, target.id)
        rows = [target] + ([table[int(i)] for i in _locations(table, target.id)]
                           if rules.level == "parent" else [])
        compared = why.comparison(config, rules, tonight, erp_id=erp.identity())
        with erp.engine.connect() as conn:
            facts = read_facts(conn, erp.tables, rules, tonight.attribute_id, as_of, detail=True,
                               only=sorted({c.id for c in rows} | set(counted)), customers=table)
    assert tonight.calls is not None
    classification = tonight.classification
    records = []
    if len(counted) > 1:  # the verdict that is written: parent and active locations together
        records.append({"number": target.number, "name": f"{target.name} (with "
                        f"{len(counted) - 1} active location(s), as written)",
                        "location": False, "active": True, "prospect": False, "counted": True,
                        "facts": _facts_dict(facts_for(facts, counted)),
                        "verdicts": [dataclasses.asdict(v) for v in
                                     explain_rows(facts, rules, counted)]})
    for c in rows:
        records.append({
            "number": c.number, "name": c.name, "location": c.is_location, "active": c.active,
            "prospect": c.prospect, "counted": c.id in counted,
            "facts": _facts_dict(facts.of(c.id)),
            "verdicts": [dataclasses.asdict(v) for v in explain_rows(facts, rules, [c.id])]})
    services = classification.services.get(target.id)
    since, risks = why.since_last_night(compared, target.id, target.current_value, rules)
    location: dict[str, Any] | None = None
    if asked is not target:
        location = {"number": asked.number, "name": asked.name, "parent": target.number,
                    "value_now": asked.current_value}
        location["follows"], location["why"] = _follows(config, rules.property, asked,
                                                        services is not None)
    return Explanation(
        location=location, since=since, risks=risks,
        opportunities=[{"service": o.service, "priority": o.priority, "score": o.score,
                        "reason": o.reason, "why": list(o.why),
                        "estimated_annual_value": o.estimated_annual_value,
                        "value_basis": o.value_basis, "play": o.play, "p_win": o.p_win,
                        "expected_value": o.expected_value, "evidence": o.evidence,
                        "rank": n}
                       for n, o in enumerate(tonight.calls.opportunities, 1)
                       if o.customer_id == target.id and not risks],  # at risk: not offered
        alerts=[{"monitor": a.monitor, "text": a.text} for a in tonight.calls.alerts
                if a.customer_id == target.id],
        as_of=as_of, level=rules.level,
        customer={"number": target.number, "name": target.name, "industry": target.industry,
                  "branch": target.branch, "sales_rep": target.sales_rep,
                  "configuration": target.config_id, "has_value_row": target.has_value_row},
        value_now=target.current_value,
        value_by_rules=None if services is None else (rules.render_value(services) or None),
        records=records)


def _find(table: CustomerTable, customer: str) -> int:
    """The id of the one customer with this number (any case), or whose name holds it."""
    wanted = customer.strip().casefold()
    numbers = table.column("number").tolist()
    found = [i for i, number in enumerate(numbers) if str(number).casefold() == wanted]
    if not found:
        names = table.column("name").tolist()
        found = [i for i, name in enumerate(names) if wanted in str(name or "").casefold()]
    if not found:
        raise ConfigError(f"no customer with number or name {customer!r}; try part of the name")
    if len(found) > 1:
        sample = ", ".join(f"{table[int(table.ids[i])].number} "
                           f"({table[int(table.ids[i])].name})" for i in found[:8])
        raise ConfigError(f"{len(found)} customers match {customer!r}: {sample}"
                          f"{' ...' if len(found) > 8 else ''}; use the customer number")
    return int(table.ids[found[0]])


def _locations(table: CustomerTable, parent: int) -> list[int]:
    """The ids of the locations whose parent is ``parent``, in id order."""
    return [int(i) for i in table.ids[table.column("parent_id") == parent] if int(i) != parent]


def members_of(table: CustomerTable, rules: Any, cid: int) -> list[int]:
    """The rows whose facts count for the record ``cid``, as ``classify.scope`` places them,
    read from this record and the rows naming it as their parent (not from every customer)."""
    record = table[cid]
    out = []
    if record.active and not record.prospect and (
            rules.level == "location" or not record.is_location or record.parent_id not in table):
        out.append(cid)  # a record of its own
    if rules.level != "location" and record.active and not record.prospect:
        active, prospect = table.column("active"), table.column("prospect")
        named = (table.column("parent_id") == cid) & active & ~prospect
        out += [int(i) for i in table.ids[named]]  # its active locations, in id order
    return out


def _follows(config: Config, attribute: str, location: Any, parent_in_scope: bool
             ) -> tuple[bool, str]:
    """Whether a location is written with its parent's value (write.locations), and why not."""
    if not location.active:
        return False, "is inactive, so it is not written (its value is left as it is)"
    if location.prospect:
        return False, "is a prospect, so it is not written (its value is left as it is)"
    if not parent_in_scope:
        return False, "belongs to a parent that is inactive or a prospect, so it is not written"
    if not config.write.locations:
        return False, ("counts for its parent, and its own record is not written "
                       "(write.locations is off)")
    if location.config_id is None:
        return False, "cannot follow its parent's value: it has no custom-property configuration"
    if not location.has_value_row:
        return False, f"cannot follow its parent's value: its configuration lacks {attribute}"
    return True, "follows its parent's value (write.locations)"


def test_rules(config: Config, folder: Path | None = None) -> list[Any]:
    """Run the admin's rule test cases (``rules/tests/*.yaml`` by default); pure, no database.

    Returns every case result; the CLI exits 1 when any failed.
    """
    rules = night.rules_for(config)
    base = config.rules if config.rules.is_dir() else config.rules.parent
    return run_cases(rules, folder or base / "tests")


test_rules.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def rules_schema() -> dict[str, Any]:
    """The JSON Schema of a rule file, for editors (YAML language servers) to validate against."""
    schema = RuleFile.model_json_schema()
    schema["title"] = "keyservices rule file"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
