"""One error base class, one subclass per documented exit code.

The CLI has a single handler that prints ``str(error)`` and exits with ``error.exit_code``;
library code raises these and never prints or exits itself.

Exit codes (also in ``keyservices --help`` and the README):

* 0 done
* 1 runtime failure (database unreachable, unexpected error)
* 2 invalid config, rules or usage; ERP schema not as configured
* 3 change guard tripped, nothing written
* 4 another run holds the lock
* 5 run done but the digest could not be delivered (it stays queued in the outbox)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INVALID = 2
EXIT_GUARD = 3
EXIT_LOCKED = 4
EXIT_UNDELIVERED = 5

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "done",
    EXIT_FAILURE: "runtime failure (database unreachable, unexpected error; details in the log)",
    EXIT_INVALID: "invalid config, rules or usage, or the ERP schema is not as configured",
    EXIT_GUARD: "change guard tripped: nothing written",
    EXIT_LOCKED: "another run holds the lock",
    EXIT_UNDELIVERED: "run done but the digest could not be delivered (queued in the outbox)",
}


class KeyservicesError(Exception):
    """Base of every expected failure; ``exit_code`` is what a scheduler sees."""

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str, detail: object = None) -> None:
        super().__init__(message)
        self.detail = detail  # e.g. the RunResult of a run stopped by the change guard


class SourceUnavailable(KeyservicesError):
    """The ERP or state database cannot be reached or queried."""

    exit_code = EXIT_FAILURE


class ConfigError(KeyservicesError):
    """The configuration file is missing or invalid."""

    exit_code = EXIT_INVALID


class RulesError(ConfigError):
    """The rule files are invalid; the message lists every problem with file:line:column."""


class SchemaError(ConfigError):
    """The ERP database lacks a table, column or the custom-property attribute the config names."""


class GuardTripped(KeyservicesError):
    """More changes than ``write.max_changes`` allows: nothing was written."""

    exit_code = EXIT_GUARD


class LockHeld(KeyservicesError):
    """Another keyservices run holds the lock for this state directory."""

    exit_code = EXIT_LOCKED


class DeliveryFailed(KeyservicesError):
    """The digest could not be sent; it stays queued in the outbox for the next run."""

    exit_code = EXIT_UNDELIVERED


class RuleTestsFailed(KeyservicesError):
    """At least one admin-written rule test case failed."""

    exit_code = EXIT_FAILURE


class SecretStoreError(KeyservicesError):
    """The OS keyring (Windows Credential Manager, ...) could not be read or written."""

    exit_code = EXIT_FAILURE


class MissingExtra(SourceUnavailable):
    """An optional dependency (e.g. pyodbc for SQL Server) is needed for this database URL."""
