"""keyservices: which customers use which key services, and who is missing one.

The public API is one function per command, each taking the config first::

    from keyservices import load_config, run
    result = run(load_config("config.yaml"), dry_run=True)

Names are resolved lazily so that the pure modules (rules, classify, diff) import without
SQLAlchemy or the mail stack.
"""

from __future__ import annotations

import importlib
from typing import Any

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

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keyservices' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
