"""keyservices: which customers use which key services, and who is missing one.

The public API is one function per command, each taking the config first::

    from keyservices import load_config, run
    result = run(load_config("config.yaml"), dry_run=True)

Names are resolved lazily so that the pure modules (rules, classify, diff) import without
SQLAlchemy or the mail stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "run": "commands.run", "RunResult": "commands.result",
    "check": "commands.check", "CheckReport": "commands.check", "show_sql": "commands.check",
    "suggest_indexes": "commands.check",
    "send_outbox": "commands.deliver", "preview_digest": "commands.deliver",
    "explain": "commands.explain", "test_rules": "commands.explain",
    "rules_schema": "commands.explain",
    "export_opportunities": "commands.export", "export_alerts": "commands.export",
    "report": "commands.report",
    "history": "commands.audit", "rollback": "commands.audit", "RollbackReport": "commands.audit",
    "init": "commands.setup", "schedule": "commands.setup", "status": "commands.setup",
    "demo": "commands.demo", "DemoResult": "commands.demo",
    "build_demo_db": "demodb",
    "compute": "night", "open_erp": "night", "Night": "night",
    "load_config": "config", "Config": "config",
    "load_rules": "rules", "RuleSet": "rules",
    "KeyservicesError": "errors", "ConfigError": "errors", "RulesError": "errors",
    "SchemaError": "errors", "SourceUnavailable": "errors", "GuardTripped": "errors",
    "LockHeld": "errors", "DeliveryFailed": "errors",
}

# the same names as _EXPORTS, written out (tests/test_packaging.py keeps them equal)
__all__ = [
    "CheckReport",
    "Config",
    "ConfigError",
    "DeliveryFailed",
    "DemoResult",
    "GuardTripped",
    "KeyservicesError",
    "LockHeld",
    "Night",
    "RollbackReport",
    "RuleSet",
    "RulesError",
    "RunResult",
    "SchemaError",
    "SourceUnavailable",
    "__version__",
    "build_demo_db",
    "check",
    "compute",
    "demo",
    "explain",
    "export_alerts",
    "export_opportunities",
    "history",
    "init",
    "load_config",
    "load_rules",
    "open_erp",
    "preview_digest",
    "report",
    "rollback",
    "rules_schema",
    "run",
    "schedule",
    "send_outbox",
    "show_sql",
    "status",
    "suggest_indexes",
    "test_rules",
]

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from .commands.audit import RollbackReport, history, rollback
    from .commands.check import CheckReport, check, show_sql, suggest_indexes
    from .commands.deliver import preview_digest, send_outbox
    from .commands.demo import DemoResult, demo
    from .commands.explain import explain, rules_schema, test_rules
    from .commands.export import export_alerts, export_opportunities
    from .commands.report import report
    from .commands.result import RunResult
    from .commands.run import run
    from .commands.setup import init, schedule, status
    from .config import Config, load_config
    from .demodb import build_demo_db
    from .errors import (
        ConfigError,
        DeliveryFailed,
        GuardTripped,
        KeyservicesError,
        LockHeld,
        RulesError,
        SchemaError,
        SourceUnavailable,
    )
    from .night import Night, compute, open_erp
    from .rules import RuleSet, load_rules


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keyservices' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
