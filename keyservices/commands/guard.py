"""Is this the ERP the state store knows? The answer decides whether tonight is a baseline.

A baseline fills empty values for free; overwriting or clearing a value always counts against
the change guard (``engine.diff.guarded``). What the state store remembers is the ERP's identity
as the database states it (``erp.identity``), so a cosmetic URL edit is the same ERP. When the
store knows other ERPs and not this one (a copied install, a restored backup, a new server), the
tool cannot tell, and it stops and asks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..errors import ConfigError, GuardTripped
from ..state.known import KnownErp


class KnownErpRefused(ConfigError):
    """``--new-erp`` on an ERP the state store already knows (exit 2): a baseline there would
    make overwriting values free for a night."""


class UnknownErp(GuardTripped):
    """The state store knows other ERPs and not this one: nothing is written until the admin
    says which it is (``--new-erp``) or that it is the same database (``--force``)."""


def is_baseline(history: Sequence[KnownErp], *, identity: str, display: str, prop: str,
                attr_id: int | None = None, new_erp: bool = False, force: bool = False) -> bool:
    """Whether tonight is this property's first live run on this ERP (a baseline).

    The property is the attribute the ERP found (its id; for runs recorded before ids were
    kept, its name compared without case), so ``property: zcjkeyservices`` on a SQL Server
    that finds ZCJKeyServices is the same property, not a new baseline.
    Raises ``KnownErpRefused`` (exit 2) for ``new_erp`` on an ERP the store knows, and
    ``UnknownErp`` (exit 3) when the store's live runs were all against other ERPs, unless
    ``new_erp`` (a baseline on purpose) or ``force`` (the same ERP, renamed: carry on).
    """
    refuse_new_erp_if_known(history, identity=identity, display=display, new_erp=new_erp)
    mine = [h for h in history if h.same_erp(identity, display)]
    if not history or new_erp:
        return True
    if any(h.same_attribute(attr_id, prop) for h in mine):
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


def refuse_new_erp_if_known(history: Sequence[KnownErp], *, identity: str, display: str,
                            new_erp: bool) -> None:
    """``--new-erp`` on an ERP the store knows: refused (exit 2) in every mode, dry run
    included, since a baseline there would make overwriting values free for a night."""
    mine = [h for h in history if h.same_erp(identity, display)]
    if new_erp and mine:
        runs = sorted({h.property for h in mine})
        raise KnownErpRefused(
            f"--new-erp is for an ERP this state store has never written, but this ERP is "
            f"already known as {mine[0].erp_id or mine[0].erp} (live runs of "
            f"{', '.join(runs)}). Nothing was written. Run without --new-erp: the night then "
            "compares with what it wrote before and the change guard counts every change")


def clock_check(history: Sequence[KnownErp], *, identity: str, display: str, as_of: dt.date,
                explicit: bool, force: bool) -> None:
    """A night dated before this ERP's last live run: a clock set back (a restored VM, a
    dead CMOS battery) would compare today's ERP with a past date and rewrite values. Stops
    with exit 3 naming both dates; an ``--as-of`` given on purpose passes with ``force``."""
    last = max((h.last_as_of for h in history
                if h.same_erp(identity, display) and h.last_as_of is not None), default=None)
    if last is None or as_of >= last or force:
        return
    if explicit:
        raise GuardTripped(
            f"--as-of {as_of} is before this ERP's last live run (as of {last}). Nothing was "
            "written. A night in the past compares today's ERP with that date; if that is what "
            "you want, rerun with --force")
    raise GuardTripped(
        f"today's date on this machine ({as_of}) is before this ERP's last live run (as of "
        f"{last}): the clock looks wrong. Nothing was written. Set the clock right and rerun; "
        "to run as of a date on purpose, give --as-of and --force")
