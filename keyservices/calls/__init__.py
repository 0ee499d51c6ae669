"""Who to call first: industry gaps, status monitors, dynamic priority, the opportunity life cycle
across nights, and won / lost. Pure: facts and classification in, calls out.

The names below are loaded on first use: a light command that only needs, say, the life cycle's
record type does not import numpy and the rule engine with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tonight import ALERTS_PER_MONITOR_AND_BRANCH, Calls, Listing, extras, who_to_call

__all__ = ["ALERTS_PER_MONITOR_AND_BRANCH", "Calls", "Listing", "extras", "who_to_call"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import tonight

        return getattr(tonight, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
