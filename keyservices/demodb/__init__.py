"""A synthetic, e-automate-shaped dealer database for the demo, the tests and the benchmarks.

``schema`` is its shape, ``generator`` fills it (deterministic for a seed and a date) and moves it
on by a day.
"""

from __future__ import annotations

from .generator import DemoSummary, NextDaySummary, build_demo_db, populate, simulate_next_day
from .schema import ATTRIBUTE_ID, build_metadata

__all__ = ["ATTRIBUTE_ID", "DemoSummary", "NextDaySummary", "build_demo_db", "build_metadata",
           "populate", "simulate_next_day"]
