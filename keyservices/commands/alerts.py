"""The night's status alerts across nights, and what the digest copies need known up front.

``run`` asks ``listing_for`` before the night (which alerts were seen before, whose contacts the
rep and branch copies list, whether to read renewals) and ``save_alerts`` after a clean live
write; ``check`` asks ``monitor_warnings`` for monitors too broad to be read.
"""

from __future__ import annotations

import datetime as dt

from .. import night
from ..calls import Listing, monitors
from ..config import Config
from ..erp.renewals import RENEWAL_DAYS
from ..rules import RuleSet
from ..state import StateStore


def renewal_days(config: Config) -> int:
    """The renewals window the run reads: only with ``digest.renewals_ics`` and rep copies."""
    return RENEWAL_DAYS if config.digest.renewals_ics and config.digest.sales_reps else 0


def listing_for(config: Config, rules: RuleSet, state: StateStore | None,
                as_of: dt.date) -> Listing:
    """What tonight's digest will list, from the config and the state store (None: a first run
    or a dry run without a store: every alert is new, no opportunity is hidden)."""
    return Listing(
        seen=state.alert_first_seen() if state is not None and rules.monitors else {},
        sales_reps=frozenset(config.digest.sales_reps), branches=frozenset(config.digest.branches),
        top=rules.opportunities.top if rules.opportunities is not None else 0,
        hidden=(state.hidden_opportunities(as_of)
                if state is not None and rules.opportunities is not None
                and (config.digest.sales_reps or config.digest.branches) else frozenset()),
        renewals_days=renewal_days(config))


def save_alerts(state: StateStore, tonight: night.Night) -> None:
    """Keep tonight's first-seen dates (a clean live run only: the caller decides)."""
    life = tonight.calls.alert_life if tonight.calls is not None else None
    if life is not None:
        state.save_alerts(life.added, life.cleared, life.as_of)


def monitor_warnings(config: Config, rules: RuleSet, as_of: dt.date | None = None) -> list[str]:
    """The monitors that would fire for more than a fifth of the customers tonight (the night
    is computed as a dry run computes it; no alert text is rendered, no contact read)."""
    if not rules.monitors:
        return []
    with night.open_erp(config, rules) as erp:
        tonight = night.compute(config, as_of, erp=erp, values=False, alert_limit=0)
    assert tonight.calls is not None
    return monitors.noisy(rules.monitors, tonight.calls.alert_counts,
                          len(tonight.classification.services))
