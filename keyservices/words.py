"""Counts in words: one helper for every message, digest and summary that says "N things"."""

from __future__ import annotations


def plural(n: float, word: str, words: str | None = None) -> str:
    """``1 customer``, ``1,195 customers``, ``2.5 units``: a count with its noun in the right
    number (``words`` where adding an s is wrong: industry, industries)."""
    count = f"{int(n):,}" if float(n).is_integer() else f"{n:,g}"
    return f"{count} {word if n == 1 else (words or word + 's')}"
