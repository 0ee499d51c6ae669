"""The first screen of every digest copy (#24, "the morning, top first"): the money the morning
is about, and the unwritable lists said in one line once they are old news.

- **The money.** This week's won and lost annual value (the 7 nights up to the run's date, read
  from the audit by ``commands.run``: ``calls.wonlost.week_money``) and the estimated annual
  value of the calls the copy lists. A branch's or rep's copy counts its own customers: the
  branch or sales rep recorded with each change, and its own calls.
- **The unwritable lists.** A customer without a configuration stays so for weeks; listed in full
  every night, the lists push the rest down. Each run stores, with its digest data, a fingerprint
  of each list of every copy it rendered (the consolidated digest and each branch and rep copy,
  their own customers); a copy whose list is the one its readers were shown by the previous
  stored digest says it in one line, with the count, the night it was last different and the
  command that lists it. The first night, a changed list, or a copy not sent the night before:
  the list in full.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any, Literal

from ..model import CustomerRef, DigestData, Opportunity
from .headline import at_stake

LISTS = ("no_configuration", "no_attribute")  # the customers that cannot be written


def own_won_lost(won_lost: dict[str, Any], attribute: Literal["branch", "sales_rep"],
                 value: str) -> dict[str, Any]:
    """A branch's or rep's copy of the night's won and lost: a rep sees their own line of the
    table, and either sees only their own week on the first screen."""
    if not won_lost:
        return won_lost
    own = dict(won_lost)
    if attribute == "sales_rep":
        own["rows"] = [r for r in won_lost.get("rows") or [] if r["group"] == value]
    week = won_lost.get("week")
    if week:
        own["week"] = {"since": week["since"], "until": week["until"],
                       "all": (week.get(attribute) or {}).get(value, [0, 0, 0.0, 0.0])}
    return own


def money(data: DigestData, shown: Sequence[Opportunity]) -> dict[str, Any]:
    """The first screen's money: this week's won and lost of the copy's customers (None where
    the run did not read it: test mode, the guard tripped; and on a baseline, which has no
    week behind it), and what the calls shown are worth a year."""
    week = data.won_lost.get("week") if data.won_lost and not data.baseline else None
    out: dict[str, Any] = {"week": None, "calls": len(shown), "calls_value": at_stake(shown)}
    if week:
        won, lost, won_value, lost_value = week["all"]
        since, until = (dt.date.fromisoformat(week[k]) for k in ("since", "until"))
        out["week"] = {"won": won, "lost": lost, "won_value": won_value,
                       "lost_value": lost_value, "days": f"{since:%d %b} to {until:%d %b}"}
    return out


def copy_key(data: DigestData) -> str:
    """Whose copy this is: "" for the consolidated digest, else its branch or sales rep."""
    if data.branch:
        return f"branch:{data.branch}"
    return f"sales_rep:{data.sales_rep}" if data.sales_rep else ""


def fingerprint(rows: Sequence[CustomerRef]) -> str:
    """The same customers give the same fingerprint, in any order (sha256 of their numbers)."""
    return hashlib.sha256("\n".join(sorted(r.number for r in rows)).encode("utf-8")).hexdigest()


def settle_unwritable(copies: Sequence[DigestData],
                      previous: DigestData | None) -> dict[str, dict[str, dict[str, str]]]:
    """Set each copy's ``unchanged``: its lists with the customers of the same copy in the
    previous stored digest, each with the first night it was so. Returns tonight's fingerprints
    of every copy, to store with the digest (``DigestData.unwritable_seen``).

    Call it with the full lists (before ``digest.trimmed``). A dry run never collapses."""
    before = previous.unwritable_seen if previous is not None else {}
    seen: dict[str, dict[str, dict[str, str]]] = {}
    for copy in copies:
        theirs = before.get(copy_key(copy), {})
        mine: dict[str, dict[str, str]] = {}
        unchanged: dict[str, str] = {}
        for name in LISTS:
            rows = getattr(copy, name)
            if not rows:
                continue
            sha, old = fingerprint(rows), theirs.get(name) or {}
            same = old.get("sha") == sha and bool(old.get("since")) and not copy.dry_run
            since = old["since"] if same else copy.as_of.isoformat()
            mine[name] = {"sha": sha, "since": since}
            if same:
                unchanged[name] = since
        copy.unchanged = unchanged  # a new dict: copies made by dataclasses.replace share one
        seen[copy_key(copy)] = mine
    return seen


def since_words(since: str, as_of: dt.date) -> str:
    """"last night", "Sat 21 Nov" or "the last run" (a second run on the same date)."""
    day = dt.date.fromisoformat(since)
    if day >= as_of:
        return "the last run"
    return "last night" if day == as_of - dt.timedelta(days=1) else f"{day:%a %d %b}"


def unwritable_lists(data: DigestData, cap: int, counted: dict[str, Any]) -> dict[str, Any]:
    """The unwritable lists as the templates show them: the first ``cap`` rows and how many
    more, or, for a list unchanged since an earlier digest, no rows and since when
    (``unchanged``: list -> words)."""
    out: dict[str, Any] = {"unchanged": {}}
    listed = [name for name in LISTS if counted[name]]
    for name in LISTS:
        since = data.unchanged.get(name) if not data.dry_run else None
        shown = 0 if since else cap
        out[name] = getattr(data, name)[:shown]
        out[f"more_{name}"] = max(0, counted[name] - shown) if not since else 0
        out["unchanged"][name] = since_words(since, data.as_of) if since else ""
    # "both": every list there is unchanged, since the later of their nights (one line says it)
    both = [since for name in listed if (since := data.unchanged.get(name, ""))]
    out["unchanged"]["both"] = (since_words(max(both), data.as_of)
                                if listed and len(both) == len(listed) and not data.dry_run
                                else "")
    return out


__all__ = ["LISTS", "copy_key", "fingerprint", "money", "own_won_lost", "settle_unwritable",
           "since_words", "unwritable_lists"]
