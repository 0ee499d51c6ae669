"""Is this the ERP the state store knows? The answer decides whether tonight is a baseline.

A baseline fills empty values for free; overwriting or clearing a value always counts against
the change guard (``engine.diff.guarded``). What the state store remembers is the ERP's identity
as the database states it (``erp.identity``), so a cosmetic URL edit is the same ERP. When the
store knows other ERPs and not this one (a copied install, a restored backup, a new server), the
tool cannot tell, and it stops and asks.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import GuardTripped
from ..state.store import KnownErp


class UnknownErp(GuardTripped):
    """The state store knows other ERPs and not this one: nothing is written until the admin
    says which it is (``--new-erp``) or that it is the same database (``--force``)."""


def is_baseline(history: Sequence[KnownErp], *, identity: str, display: str, prop: str,
                new_erp: bool = False, force: bool = False) -> bool:
    """Whether tonight is this property's first live run on this ERP (a baseline).

    Raises ``UnknownErp`` (exit 3) when the store's live runs were all against other ERPs,
    unless ``new_erp`` (a baseline on purpose) or ``force`` (the same ERP, renamed: carry on).
    """
    if not history or new_erp:
        return True
    mine = [h for h in history
            if h.erp_id == identity or (h.erp_id is None and h.erp == display)]
    if any(h.property == prop for h in mine):
        return False
    if mine:  # this ERP, another property: the first run for it (the ownership check guards it)
        return True
    if force:
        return False
    known = sorted({h.erp_id or h.erp for h in history})
    raise UnknownErp(
        f"this state store's live runs were against {', '.join(known[:3])}"
        f"{' ...' if len(known) > 3 else ''}, not against the configured ERP ({identity}). "
        "Nothing was read or written. If it is the same database, moved or renamed, rerun "
        "once with --force; if it is another ERP, rerun with --new-erp (its first run is a "
        "baseline: it fills empty values only, and overwriting a value counts against the "
        "change guard)")
