"""A manager's say over the opportunity list: snooze, dismiss, unsnooze, and the list itself.

Amity's lesson: an override needs a reason and an expiry. A *snooze* says "not now" (the customer
is mid-tender, call after the new year); a *dismiss* says "not interested" (they said no). Both
hide the opportunity from the digest and the list's active view until the date, then it comes back
if it still holds, so nothing is silenced for ever by a forgotten click. The nightly run keeps
tracking a hidden opportunity (it can still be won or closed); see :mod:`keyservices.calls.lifecycle`.
"""

from __future__ import annotations

import datetime as dt

from ..calls.lifecycle import STATUSES, OpportunityRecord
from ..config import Config
from ..errors import ConfigError
from ..state import StateStore


def snooze(config: Config, customer_number: str, service_code: str, *, until: dt.date,
           reason: str, by: str | None = None, today: dt.date | None = None) -> OpportunityRecord:
    """Hide a customer's opportunity for a service until ``until`` (inclusive): "not now"."""
    return _override(config, customer_number, service_code, until=until, reason=reason, by=by,
                     today=today, dismissed=False)


def dismiss(config: Config, customer_number: str, service_code: str, *, until: dt.date,
            reason: str, by: str | None = None, today: dt.date | None = None) -> OpportunityRecord:
    """Hide it until ``until`` as "not interested"; like a snooze, it comes back after the date."""
    return _override(config, customer_number, service_code, until=until, reason=reason, by=by,
                     today=today, dismissed=True)


def unsnooze(config: Config, customer_number: str, service_code: str) -> OpportunityRecord:
    """Lift a snooze or dismiss now; the opportunity shows again from the next run."""
    customer_number, service_code = _names(customer_number, service_code)
    state = StateStore(config.state_url)
    try:
        return state.clear_override(customer_number, service_code)
    finally:
        state.close()


def list_opportunities(config: Config, *, status: str | None = None, owner: str | None = None,
                       service: str | None = None,
                       customer: str | None = None) -> list[OpportunityRecord]:
    """The remembered opportunities, active first, filtered by status, owner (sales rep),
    service code and customer number (all but status ignore case)."""
    if status is not None and status not in STATUSES:
        raise ConfigError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    state = StateStore(config.state_url)
    try:
        return state.list_opportunities(status=status, owner=owner, service=service,
                                        customer_number=customer)
    finally:
        state.close()


def _override(config: Config, customer_number: str, service_code: str, *, until: dt.date,
              reason: str, by: str | None, today: dt.date | None,
              dismissed: bool) -> OpportunityRecord:
    customer_number, service_code = _names(customer_number, service_code)
    today = today or dt.date.today()
    if until <= today:
        raise ConfigError(f"until {until.isoformat()} is not in the future; give a date after "
                          f"{today.isoformat()} (the opportunity comes back after that date)")
    reason = (reason or "").strip()
    if not reason:
        raise ConfigError("a reason is required, so the next person knows why the opportunity "
                          "is hidden")
    state = StateStore(config.state_url)
    try:
        return state.set_override(customer_number, service_code, until, reason,
                                  (by or "").strip() or None, dismissed)
    finally:
        state.close()


def _names(customer_number: str, service_code: str) -> tuple[str, str]:
    customer_number, service_code = customer_number.strip(), service_code.strip()
    if not customer_number or not service_code:
        raise ConfigError("give a customer number and a service code, e.g. COP001 MIT")
    return customer_number, service_code
