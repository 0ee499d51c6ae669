"""Why each change happened, and who may be leaving: tonight's numbers against the last clean
live run's (``keyservices.engine.causes`` compares, ``keyservices.state.snapshot`` keeps).

``run`` annotates its changes, flags risks, holds the flagged customers back from tonight's
opportunities and, after a clean live write, keeps tonight's numbers; ``explain`` asks the same
comparison about one customer. Nothing here decides what is written.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np

from .. import night
from ..calls import lifecycle
from ..calls.cross_sell import uncovered_offers
from ..calls.frame import OpportunityFrame
from ..calls.lifecycle import Key
from ..config import Config
from ..engine.causes import REWRITTEN, Comparison, Kept, column_key, risks, rule_columns, signatures
from ..erp.lines import read_lines
from ..model import Change, Opportunity, RiskFlag
from ..rules import RuleSet
from ..state import snapshot

log = logging.getLogger("keyservices")

NOT_IN_SCOPE = "not in scope tonight (inactive, a prospect, or a location counted with its parent)"
ROW_BY_ROW = "not compared: these rules are evaluated row by row, which keeps no numbers"


def _tonight(tonight: night.Night) -> tuple[np.ndarray, np.ndarray] | None:
    """Tonight's in-scope customer ids (ascending) and their rolled-up numbers, if kept."""
    classification = tonight.classification
    if tonight.facts.metrics is None or classification.rolled is None:
        return None
    ids = np.fromiter(classification.services, dtype=np.int64, count=len(classification.services))
    values = classification.rolled
    if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        order = np.argsort(ids, kind="stable")
        ids, values = ids[order], values[order]
    return ids, values


def comparison(config: Config, rules: RuleSet, tonight: night.Night, *,
               erp_id: str) -> Comparison | None:
    """Tonight against the newest night kept before it; None when tonight keeps no numbers."""
    mine = _tonight(tonight)
    if mine is None:
        return None
    ids, values = mine
    compiled = tonight.facts.metrics.compiled
    kept, problem = snapshot.before(config.state.dir, tonight.as_of)
    found = None
    if kept is not None:
        if kept.meta.get("erp_id") != erp_id:
            problem = "the facts kept are from another ERP"
        elif kept.meta.get("level") != rules.level:
            problem = f"the rules' level changed since {kept.as_of.isoformat()}"
        else:
            found = Kept(as_of=kept.as_of, ids=kept.ids, columns=kept.columns,
                         signatures=dict(kept.meta.get("signatures") or {}))
    return Comparison(rules, compiled, ids, values, tonight.as_of, found,
                      why_not=None if problem is None else f"not compared: {problem}")


def annotate(config: Config, rules: RuleSet, tonight: night.Night, changes: Sequence[Change],
             *, baseline: bool, erp_id: str) -> tuple[list[RiskFlag], list[str]]:
    """Fill each change's ``causes``; return tonight's risk flags and a note for the digest."""
    compared = comparison(config, rules, tonight, erp_id=erp_id)
    for change in changes:
        if compared is not None:
            change.causes = compared.causes(change)
        else:
            change.causes = (ROW_BY_ROW,) if change.added or change.removed else (REWRITTEN,)
    notes = []
    if compared is not None and compared.kept is not None and changes:
        day = compared.kept.as_of
        if (tonight.as_of - day).days > 1:
            notes.append(f"The causes compare with the facts of {day.isoformat()}, the last "
                         "clean live run before tonight.")
    flags = risks(compared, changes, tonight.facts.customers, rules.service_names(),
                  baseline=baseline)
    return flags, notes


def hold_back(found: Sequence[Opportunity], flags: Iterable[RiskFlag | int],
              active: Collection[Key] = ()) -> OpportunityFrame:
    """Tonight's opportunities without the customers flagged at risk.

    With ``active`` (the keys the stored life cycle holds as new or open), an opportunity that
    is already open is kept, so that the life cycle does not close it for a night it is merely
    not shown; call again without it on the visible list.
    """
    frame = OpportunityFrame.of(found)
    risky = {f.customer_id if isinstance(f, RiskFlag) else int(f) for f in flags}
    if not risky or not len(frame):
        return frame
    at_risk = np.isin(frame.customer, np.fromiter(risky, dtype=np.int64, count=len(risky)))
    keep = ~at_risk
    if active:
        rows = np.flatnonzero(at_risk)
        codes = frame.column("service_code")[rows].tolist()
        for i, cid, code in zip(rows.tolist(), frame.customer[rows].tolist(), codes):
            keep[i] = (cid, code) in active
    return frame.take(keep)


def at_risk(compared: Comparison | None, tonight: night.Night, rules: RuleSet) -> set[int]:
    """Customers at risk outside a run (``export``): a takeout since the facts kept, or churn:
    no service tonight, while the facts kept or the ERP's value still give one (before the
    night's run wrote it, or after)."""
    customers = tonight.facts.customers
    empty = [cid for cid, services in tonight.classification.services.items() if not services]
    out = {cid for cid in empty if rules.parse_value(customers[cid].current_value)}
    if compared is not None:
        out |= set(compared.takeouts()) | compared.emptied(empty)
    return out


def keep(config: Config, rules: RuleSet, tonight: night.Night, *, erp_id: str,
         run_id: int | None) -> str | None:
    """Keep tonight's numbers for tomorrow's causes (a clean live run only).

    Returns a note when they could not be kept: the values are written, so a full disk must not
    fail the night, but tomorrow's digest cannot name causes and the admin should know why.
    """
    mine = _tonight(tonight)
    if mine is None:
        return None
    ids, values = mine
    compiled = tonight.facts.metrics.compiled
    columns = {column_key(compiled.columns[j]): values[:, j] for j in rule_columns(compiled)}
    meta = {"run_id": run_id, "erp_id": erp_id, "level": rules.level,
            "property": rules.property, "signatures": signatures(rules, compiled)}
    try:
        snapshot.save(config.state.dir, tonight.as_of, ids, columns, meta)
    except OSError as exc:
        log.warning("tonight's facts could not be kept in %s: %s", snapshot.folder(
            config.state.dir), exc)
        return (f"Tonight's facts could not be kept in {snapshot.folder(config.state.dir)} "
                f"({exc.strerror or exc}); tomorrow's digest cannot name the causes of changes.")
    return None


def since_last_night(compared: Comparison | None, customer_id: int,
                     value_now: str | None, rules: RuleSet) -> tuple[list[str], list[str]]:
    """For ``explain``: what changed for one customer since the facts kept, and its risk flags."""
    if compared is None:
        return [ROW_BY_ROW], []
    flags = []
    takeout = compared.takeouts().get(customer_id) if compared.kept is not None else None
    if takeout:
        flags.append(f"takeout risk: {takeout}")
    services = compared.verdicts(customer_id)
    now = _services_now(compared, customer_id)
    if now is not None and not now and (rules.parse_value(value_now)
                                        or compared.emptied([customer_id])):
        flags.append("churn: no service by the rules tonight, where it had some")
    if compared.kept is None:
        return [compared.why_not or "not compared"], flags
    when = f"since {_day(compared)}"
    if services is None:
        if now is None:
            return [NOT_IN_SCOPE], flags
        day = _day(compared)
        on = day if day == "last night" else f"on {day}"
        return [f"not in scope {on} (new, reactivated or no longer a prospect)"], flags
    old_has, new_has = services
    old, new = compared.rows(customer_id)
    lines = [("+ " + compared.cause(code, old, new, lost=False)) for code in sorted(
        new_has - old_has)]
    lines += [("- " + compared.cause(code, old, new, lost=True)) for code in sorted(
        old_has - new_has)]
    changed_rules = sorted(set(compared.services) - compared.comparable())
    if changed_rules:
        lines.append("not compared (rule changed " + when + "): " + ", ".join(changed_rules))
    return lines or [f"no service changed {when}"], flags


def _day(compared: Comparison) -> str:
    assert compared.kept is not None
    return "last night" if (compared.as_of - compared.kept.as_of).days == 1 else \
        compared.kept.as_of.isoformat()


def _services_now(compared: Comparison, customer_id: int) -> frozenset[str] | None:
    _, new = compared.rows(customer_id)
    if new is None:
        return None
    return frozenset(code for code in compared.services if compared.has(code, new))


def machines_covered(erp: night.Erp, tonight: night.Night, stored: lifecycle.Stored,
                     found: Sequence[Opportunity] | OpportunityFrame,
                     appeared: Mapping[int, Collection[str]]) -> dict[Key, str] | None:
    """The uncovered-machine offers closing tonight (their customer still has the service,
    no sale added it), each with what put its machines on a contract line since the offer was
    made ("" for nothing: pulled or moved); one statement, for those customers only. None when
    no rule offers a contract for machines on none."""
    rules = tonight.rules
    offers = uncovered_offers(rules, tonight.facts.codes)
    if not offers:
        return None
    services = tonight.classification.services
    asked = {(cid, code): first for (cid, code), first
             in lifecycle.closing(stored, found, set(offers)).items()
             if code in services.get(cid, ()) and code not in appeared.get(cid, ())}
    if not asked:
        return {}
    categories = set().union(*(offers[code] for _, code in asked))
    with erp.engine.connect() as conn:
        lines = read_lines(conn, erp.tables, {cid for cid, _ in asked}, categories,
                           tonight.as_of, parent_level=rules.level == "parent")
    return lifecycle.covered_since(asked, lines)
