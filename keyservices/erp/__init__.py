"""The ERP side: the connection, the schema profile (logical names to e-automate's tables), the
set-based fact queries, index advice and the guarded write-back. Everything that speaks SQL to the
dealer's database lives here."""

from __future__ import annotations

from .connection import (
                         ErpTables,
                         StatementCounter,
                         attribute,
                         attribute_id,
                         connect,
                         display_url,
                         verify_schema,
                         wrap_db_error,
)

__all__ = ["ErpTables", "StatementCounter", "attribute", "attribute_id", "connect", "display_url",
           "verify_schema", "wrap_db_error"]
