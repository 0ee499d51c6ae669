"""Which database this is, by what it says about itself, not by how its URL is spelled.

The change guard's memory (is this the ERP the state store knows?) must survive a driver upgrade,
``?timeout=30`` or ``/orig/./erp.sqlite``, and must not carry over to a copy: SQL Server and
PostgreSQL are asked for their server and database name, a SQLite file is named by its resolved
path.
"""

from __future__ import annotations

import os

import sqlalchemy as sa


def database_identity(conn: sa.Connection) -> str:
    """A stable name for the database behind ``conn`` (lower-cased where the server is not
    case-sensitive), e.g. ``mssql:ERPSRV01\\ECI/CompanyDB`` or ``sqlite:/srv/erp.sqlite``."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        rows = conn.exec_driver_sql("PRAGMA database_list").all()
        path = next((r[2] for r in rows if r[1] == "main"), "") or ""
        if not path:
            return "sqlite::memory:"
        return "sqlite:" + os.path.normcase(os.path.realpath(path))
    if dialect == "mssql":
        server, database = conn.exec_driver_sql(
            "SELECT CAST(SERVERPROPERTY('ServerName') AS nvarchar(256)), DB_NAME()").one()
        return f"mssql:{server}/{database}".lower()
    if dialect == "postgresql":
        database = conn.exec_driver_sql("SELECT current_database()").scalar()
        try:  # the cluster's own id, however the server is reached (needs pg_monitor)
            with conn.begin_nested():
                cluster = conn.exec_driver_sql(
                    "SELECT system_identifier FROM pg_control_system()").scalar()
            return f"postgresql:{cluster}/{database}"
        except sa.exc.DBAPIError:
            address, port = conn.exec_driver_sql(
                "SELECT host(inet_server_addr()), inet_server_port()").one()
            return f"postgresql:{address or 'local'}:{port or ''}/{database}"
    url = conn.engine.url
    return f"{dialect}:{url.host or ''}:{url.port or ''}/{url.database or ''}"
