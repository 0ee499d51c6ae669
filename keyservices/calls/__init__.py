"""Who to call first: industry gaps, status monitors, dynamic priority, the opportunity life cycle
across nights, and won / lost. Pure: facts and classification in, calls out."""

from __future__ import annotations

from .tonight import ALERTS_PER_MONITOR_AND_BRANCH, Calls, Listing, extras, who_to_call

__all__ = ["ALERTS_PER_MONITOR_AND_BRANCH", "Calls", "Listing", "extras", "who_to_call"]
