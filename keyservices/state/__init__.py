"""The tool's own memory: runs, the audit of every change, the opportunity life cycle, and the
run lock. Never the ERP; a SQLite file in the state folder unless ``state.url`` says otherwise."""

from __future__ import annotations

from .audit import AuditRows
from .lock import run_lock
from .store import RunRecord, StateStore

__all__ = ["AuditRows", "RunRecord", "StateStore", "run_lock"]
