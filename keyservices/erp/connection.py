"""The ERP source: connecting to the e-automate database and naming its tables.

Everything that knows a physical table or column name goes through the profile here, so a dealer whose
database differs changes ``erp.profile`` in the config, not the code. Only SQL Server URLs import
pyodbc, and only when used.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ..errors import MissingExtra, SchemaError, SourceUnavailable
from .profile import merged_profile

log = logging.getLogger(__name__)

# logical column -> SQLAlchemy type, where the type matters for binding (dates, booleans, money)
_TYPES: dict[str, Any] = {
    "active": sa.Boolean, "prospect": sa.Boolean, "void": sa.Boolean,
    "start_date": sa.DateTime, "exp_date": sa.DateTime, "date": sa.DateTime,
    "created": sa.DateTime,
    "base_rate": sa.Float, "amount": sa.Float, "cost": sa.Float, "quantity": sa.Float,
    "text": sa.String(1024),
}
_INT_COLUMNS = {"id", "customer_id", "parent_id", "type_id", "sales_rep_id", "branch_id",
                "status_id", "item_category_id", "decision_contact_id",
                "config_id", "category_id", "model_id", "location_id", "contract_code_id",
                "bill_code_id", "account_id", "invoice_id", "item_id", "attribute_id"}


def _type_for(logical: str) -> Any:
    if logical in _TYPES:
        return _TYPES[logical]
    if logical in _INT_COLUMNS:
        return sa.Integer
    return sa.String


class ErpTables:
    """Lightweight SQLAlchemy tables for the logical names, with physical names from the profile.

    Only the columns the tool uses are declared: the queries never ``SELECT *``.
    """

    def __init__(self, profile_overrides: dict[str, Any] | None = None,
                 schema: str | None = None,
                 extra_columns: dict[str, list[str]] | None = None) -> None:
        self.profile = merged_profile(profile_overrides)
        self.schema = schema
        self.metadata = sa.MetaData(schema=schema)
        self._tables: dict[str, sa.Table] = {}
        for logical, spec in self.profile.items():
            cols = [sa.Column(phys, _type_for(lname), key=lname)
                    for lname, phys in spec["columns"].items()]
            # columns named in rules (e.g. industry: column:<name>) are read as text
            cols += [sa.Column(phys, sa.String, key=f"extra:{phys}")
                     for phys in (extra_columns or {}).get(logical, [])
                     if phys not in spec["columns"].values()]
            self._tables[logical] = sa.Table(spec["table"], self.metadata, *cols)

    def __getattr__(self, logical: str) -> sa.Table:
        try:
            return self.__dict__["_tables"][logical]
        except KeyError:
            raise AttributeError(logical) from None

    def physical(self, logical: str) -> str:
        return self.profile[logical]["table"]


@dataclass
class StatementCounter:
    """Counts statements sent to the ERP, so a run can prove it does not query per customer."""

    count: int = 0

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.count += 1


def display_url(url: str | URL) -> str:
    """The URL with any password masked, safe for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def connect(url: str, *, password: str | None = None, connect_timeout: int = 15) -> Engine:
    """Create an engine for the ERP; a missing driver or extra gives an install hint, not a trace."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SourceUnavailable(f"erp.url is not a valid SQLAlchemy URL: {url!r}") from None
    if password and parsed.password is None and not parsed.drivername.startswith("sqlite"):
        parsed = parsed.set(password=password)
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "mssql":
        _require("pyodbc", "keyservices[mssql]",
                 "and an ODBC driver (unixODBC with FreeTDS or Microsoft's msodbcsql on Linux)")
        connect_args["timeout"] = connect_timeout
    elif backend == "postgresql":
        connect_args["connect_timeout"] = connect_timeout
    elif backend == "sqlite":
        connect_args["timeout"] = connect_timeout
    try:
        engine = sa.create_engine(parsed, connect_args=connect_args, pool_pre_ping=True)
    except NoSuchModuleError:
        raise MissingExtra(f"no SQLAlchemy dialect for {parsed.drivername!r}: check erp.url") from None
    except ImportError as exc:
        raise MissingExtra(f"the database driver for {parsed.drivername} is not installed "
                           f"({exc.name}); for PostgreSQL: pip install 'keyservices[postgres]'") from None
    if backend == "sqlite":
        _guard_sqlite_file(parsed)
    return engine


def _guard_sqlite_file(url: URL) -> None:
    """SQLite would silently create an empty database for a wrong path; refuse instead."""
    from pathlib import Path

    db = url.database
    if db and db != ":memory:" and not db.startswith("file:") and not Path(db).exists():
        raise SourceUnavailable(f"the ERP database file does not exist: {db} (check erp.url)")


def _require(module: str, extra: str, more: str = "") -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"{module} is needed for this database URL but could not be imported ({exc}); "
            f"install it with: pip install '{extra}' {more}".rstrip()) from None


def attribute_id(conn: sa.Connection, tables: ErpTables, name: str) -> int:
    """The ShAttributeID of the property; a missing attribute is a setup error (exit 2)."""
    a = tables.attributes
    rows = conn.execute(sa.select(a.c.id).where(a.c.name == name)).scalars().all()
    if not rows:
        raise SchemaError(
            f"the custom property {name!r} is not defined in {tables.physical('attributes')}. "
            f"In e-automate: Tools / Lists & Codes / Attributes, create a text attribute named "
            f"{name} (up to 1024 characters), add it to the customer configuration under "
            f"Tools / Lists & Codes / Configurations (Custom Properties), then run "
            f"'keyservices check' again.")
    if len(rows) > 1:
        raise SchemaError(f"{len(rows)} attributes are named {name!r}; keep one")
    return int(rows[0])


def verify_schema(conn: sa.Connection, tables: ErpTables, needed: list[str] | None = None,
                  unused: set[tuple[str, str]] | None = None) -> list[str]:
    """Every table and column the profile names must exist; returns the list of problems."""
    inspector = sa.inspect(conn)
    problems: list[str] = []
    for logical in needed or list(tables.profile):
        spec = tables.profile[logical]
        name = spec["table"]
        try:
            cols = {c["name"].lower() for c in inspector.get_columns(name, schema=tables.schema)}
        except sa.exc.NoSuchTableError:
            problems.append(f"table {name} ({logical}) not found; if your database names it "
                            f"differently, set erp.profile.{logical}.table in config.yaml")
            continue
        for lname, phys in spec["columns"].items():
            if (logical, lname) in (unused or set()):
                continue
            if phys.lower() not in cols:
                problems.append(f"column {name}.{phys} ({logical}.{lname}) not found; set "
                                f"erp.profile.{logical}.columns.{lname} in config.yaml")
    return problems


def wrap_db_error(exc: SQLAlchemyError, url: str) -> SourceUnavailable:
    """One readable line for a database failure, the password masked."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return SourceUnavailable(f"database error on {display_url(url)}: {text}")
