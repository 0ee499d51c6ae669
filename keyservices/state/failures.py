"""The state store's own failures, named as its own: a full disk or a read-only file under it
must not be reported as a database error of the ERP the run happens to have open."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from ..credentials import mask_url
from ..errors import KeyservicesError, SourceUnavailable


def named_failures(url: str | URL) -> Any:
    """A full disk or a read-only file under the state store, raised as the state store's
    failure: the run's ERP context would otherwise report it as a database error of the ERP."""
    def handle_error(context: sa.engine.ExceptionContext) -> None:
        text = str(context.original_exception).lower()
        if any(word in text for word in ("full", "no space", "readonly", "read-only")):
            raise state_error(url, context.original_exception, "write to")
    return handle_error


def state_error(url: str | URL, exc: BaseException, doing: str) -> KeyservicesError:
    """A failure of the state store named as one (never blamed on the ERP): a full disk says
    so and what to do."""
    text = str(getattr(exc, "orig", exc)).splitlines()[0] if str(exc) else type(exc).__name__
    if "full" in text.lower() or "no space" in text.lower():
        return SourceUnavailable(f"the state store {mask_url(url)} is full ({text}): free space "
                                 "on its disk (or move state.dir), then rerun. The ERP values "
                                 "already written are audited; the next run settles the rest")
    if "readonly" in text.lower() or "read-only" in text.lower():
        return SourceUnavailable(f"the state store {mask_url(url)} is read-only ({text}): give "
                                 "the service account write access, or point state.dir at a "
                                 "folder it can write")
    return SourceUnavailable(f"cannot {doing} the state store {mask_url(url)}: {text}")
