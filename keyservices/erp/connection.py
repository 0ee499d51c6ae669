"""The ERP source: connecting to the e-automate database and naming its tables.

Everything that knows a physical table or column name goes through the profile here, so a dealer whose
database differs changes ``erp.profile`` in the config, not the code. Only SQL Server URLs import
pyodbc, and only when used.
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ..credentials import mask_url
from ..errors import ConfigError, KeyservicesError, MissingExtra, SchemaError, SourceUnavailable
from .profile import ENRICHMENTS, OPTIONAL_COLUMNS, merged_profile

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
                "bill_code_id", "account_id", "invoice_id", "item_id", "attribute_id",
                "contract_id", "equipment_id"}


def _type_for(logical: str) -> Any:
    if logical in _TYPES:
        return _TYPES[logical]
    if logical in _INT_COLUMNS:
        return sa.Integer
    return sa.String


def is_on(column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """A yes/no flag is set, compared the way its declared type needs: ``= true`` for a
    boolean or bit, ``= 1`` for an integer flag (PostgreSQL has no ``smallint = boolean``)."""
    return column == (1 if isinstance(column.type, sa.Integer) else sa.true())


def is_off(column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """A yes/no flag is not set (``is_on``'s other half)."""
    return column == (0 if isinstance(column.type, sa.Integer) else sa.false())


class ErpTables:
    """Lightweight SQLAlchemy tables for the logical names, with physical names from the profile.

    Only the columns the tool uses are declared: the queries never ``SELECT *``.
    """

    def __init__(self, profile_overrides: dict[str, Any] | None = None,
                 schema: str | None = None,
                 extra_columns: dict[str, list[str]] | None = None) -> None:
        self.profile = merged_profile(profile_overrides)
        self.renamed = frozenset(name for name, o in (profile_overrides or {}).items()
                                 if o.get("table"))
        # enrichment tables found missing in this database (``shapes.prepare``): left out of the
        # statements, their values blank
        self.missing: set[str] = set()
        # optional dated columns found missing in this database (``dated.note_absent``)
        self.absent: set[tuple[str, str]] = set()
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

    def integer_flag(self, logical: str, column: str) -> None:
        """This flag is declared as an integer in this database (PostgreSQL ``smallint``):
        ``is_on`` compares it with 1, and its values are read as numbers."""
        self._tables[logical].c[column].type = sa.SmallInteger()

    def has(self, logical: str, column: str) -> bool:
        """Whether statements may read this column: not an optional one this database lacks."""
        return (logical, column) not in self.absent

    def optional(self, logical: str) -> bool:
        """An enrichment table under its default name: the run goes on without it."""
        return logical in ENRICHMENTS and logical not in self.renamed

    def logical_of(self, table: sa.FromClause) -> str | None:
        """The logical name of one of these tables (or of an alias of one)."""
        base = getattr(table, "element", table)
        for logical, mine in self._tables.items():
            if mine is base:
                return logical
        return None


@dataclass
class StatementCounter:
    """Counts statements sent to the ERP, so a run can prove it does not query per customer."""

    count: int = 0

    def __call__(self, conn: sa.Connection, *args: Any, **kwargs: Any) -> None:
        # the value check's own connection counts its statements itself (``shapes.ValueCheck``)
        if not conn.get_execution_options().get("keyservices_aside"):
            self.count += 1


def display_url(url: str | URL) -> str:
    """The URL with any password masked (user part, query, ODBC string): safe for logs, messages
    and the state store, which records the ERP by it."""
    return mask_url(url)


# erp.read_isolation -> SQL Server's name for it
ISOLATION_LEVELS: dict[str, str] = {"read_committed": "READ COMMITTED", "snapshot": "SNAPSHOT",
                                    "read_uncommitted": "READ UNCOMMITTED"}


def session_settings(read_isolation: str = "read_committed", lock_timeout_seconds: int = 60,
                     backend: str = "mssql") -> list[str]:
    """What every new connection runs first, in order (``check --show-sql`` prints it): a lock
    wait longer than the timeout fails the statement (SQL Server error 1222, PostgreSQL 55P03)
    instead of hanging the night, run lock held, behind e-automate's posting; on SQL Server the
    reads also run at the configured isolation level. Nothing on SQLite (one writer at a time;
    its busy timeout is ``erp.connect_timeout``).

    PostgreSQL gets ``lock_timeout`` only. Not ``statement_timeout``: the night's aggregate reads
    legitimately run for minutes at a million customers, and a cap derived from a lock setting
    (60 s by default) would kill them; SQL Server has no statement cap either. Not
    ``idle_in_transaction_session_timeout``: the reads stream in batches inside one transaction
    while Python folds them, and a stall there (a GC pause, a busy machine) would end a healthy
    night, while the writes commit each chunk without waiting between statements, so it would
    guard nothing of ours. Reads take no row locks in PostgreSQL, so only the guarded UPDATEs
    ever wait on e-automate, and ``lock_timeout`` bounds exactly that wait."""
    ms = int(lock_timeout_seconds) * 1000
    if backend == "postgresql":
        return [f"SET lock_timeout = {ms}"]
    if backend != "mssql":
        return []
    return [f"SET LOCK_TIMEOUT {ms}",
            f"SET TRANSACTION ISOLATION LEVEL {ISOLATION_LEVELS[read_isolation]}"]


def connect(url: str, *, password: str | None = None, connect_timeout: int = 15,
            read_isolation: str = "read_committed", lock_timeout_seconds: int = 60) -> Engine:
    """Create an engine for the ERP; a missing driver or extra gives an install hint, not a trace.

    Every new connection gets the lock timeout of ``session_settings`` (SQL Server: also the
    isolation level, set by SQLAlchemy) before anything else, and pyodbc sends each write chunk
    as one batch (``fast_executemany``); SQLite gets none of it.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:  # the text is not shown: it may hold a password
        raise SourceUnavailable("erp.url is not a valid SQLAlchemy URL "
                                "(dialect+driver://user@host/database): check erp.url") from None
    if password and parsed.password is None and not parsed.drivername.startswith("sqlite"):
        parsed = parsed.set(password=password)
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if backend == "mssql":
        if parsed.get_driver_name() == "pyodbc":
            _require_pyodbc()
            options["fast_executemany"] = True
        connect_args["timeout"] = connect_timeout
        # SQLAlchemy runs SET TRANSACTION ISOLATION LEVEL on each new connection
        options["isolation_level"] = ISOLATION_LEVELS[read_isolation]
    elif backend == "postgresql":
        connect_args["connect_timeout"] = connect_timeout
    elif backend == "sqlite":
        connect_args["timeout"] = connect_timeout
    try:
        engine = sa.create_engine(parsed, connect_args=connect_args, pool_pre_ping=True, **options)
    except NoSuchModuleError:
        raise MissingExtra(f"no SQLAlchemy dialect for {parsed.drivername!r}: check erp.url") from None
    except ImportError as exc:
        raise MissingExtra(f"the database driver for {parsed.drivername} is not installed "
                           f"({exc.name}); for PostgreSQL, in keyservices' environment: "
                           f"pip install 'psycopg[binary]' (pipx: pipx inject keyservices "
                           f"'psycopg[binary]')") from None
    if backend == "mssql":
        _first_on_connect(engine, session_settings(read_isolation, lock_timeout_seconds)[:1])
    elif backend == "postgresql":
        _first_on_connect(engine, session_settings(lock_timeout_seconds=lock_timeout_seconds,
                                                   backend=backend), commit=True)
    if backend == "sqlite":
        _guard_sqlite_file(parsed)
    return engine


def _first_on_connect(engine: Engine, statements: list[str], *, commit: bool = False) -> None:
    """Run ``statements`` on each new DBAPI connection, before anything else it sends.

    ``commit``: PostgreSQL's SET is transactional, and the driver has begun a transaction for
    it; committing keeps the setting for the session whatever SQLAlchemy rolls back later."""
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
        finally:
            cursor.close()
        if commit:
            dbapi_connection.commit()

    sa.event.listen(engine, "connect", on_connect, insert=True)


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
            f"install it into the environment keyservices runs from: pip install {module} "
            f"(pipx: pipx inject keyservices {module}; the {extra} extra of "
            f"docs/installation.md installs it too) {more}".rstrip()) from None


_MSODBC = ("Microsoft's ODBC Driver 18 for SQL Server (msodbcsql18: https://learn.microsoft.com/"
           "sql/connect/odbc/download-odbc-driver-for-sql-server; Debian/Ubuntu: "
           "ACCEPT_EULA=Y apt-get install msodbcsql18)")


def _require_pyodbc() -> None:
    """pyodbc imports only where unixODBC's libodbc is installed: say which package is missing."""
    try:
        importlib.import_module("pyodbc")
    except ImportError as exc:
        if "libodbc" not in str(exc):
            _require("pyodbc", "keyservices[mssql]",
                     "and an ODBC driver (unixODBC with FreeTDS or Microsoft's msodbcsql on Linux)")
            return
        raise MissingExtra(
            f"pyodbc is installed but the unixODBC library it needs is missing ({exc}); install "
            f"it (Debian/Ubuntu: apt-get install unixodbc; RHEL: dnf install unixODBC; macOS: "
            f"brew install unixodbc), then {_MSODBC}") from None


def attribute_id(conn: sa.Connection, tables: ErpTables, name: str) -> int:
    """The ShAttributeID of the property; a missing attribute is a setup error (exit 2)."""
    return attribute(conn, tables, name)[0]


def attribute_statement(tables: ErpTables, name: str) -> sa.Select:
    """The property's id and name as the ERP spells it (what ``attribute`` and ``--show-sql``
    send)."""
    a = tables.attributes
    return sa.select(a.c.id, a.c.name).where(a.c.name == name)


def attribute(conn: sa.Connection, tables: ErpTables, name: str) -> tuple[int, str]:
    """The property's ShAttributeID and its name as the ERP spells it, found the way the ERP
    compares names (SQL Server's usual collation ignores case: 'zcjkeyservices' is
    ZCJKeyServices there). A missing attribute is a setup error (exit 2)."""
    rows = conn.execute(attribute_statement(tables, name)).all()
    if not rows:
        raise SchemaError(
            f"the custom property {name!r} is not defined in {tables.physical('attributes')}. "
            f"In e-automate: Tools / Lists & Codes / Attributes, create a text attribute named "
            f"{name} (up to 1024 characters), add it to the customer configuration under "
            f"Tools / Lists & Codes / Configurations (Custom Properties), then run "
            f"'keyservices check' again.")
    if len(rows) > 1:
        raise SchemaError(f"{len(rows)} attributes are named {name!r}; keep one")
    return int(rows[0][0]), str(rows[0][1] if rows[0][1] is not None else name).strip() or name


def verify_schema(conn: sa.Connection, tables: ErpTables, needed: list[str] | None = None,
                  unused: set[tuple[str, str]] | None = None,
                  warnings: list[str] | None = None) -> list[str]:
    """Every table and column the profile names must exist; returns the list of problems.

    A missing enrichment table (``profile.ENRICHMENTS``, under its default name) is not a
    problem: it is noted in ``warnings`` when given."""
    inspector = sa.inspect(conn)
    problems: list[str] = []
    for logical in needed or list(tables.profile):
        spec = tables.profile[logical]
        name = spec["table"]
        try:
            cols = {c["name"].lower() for c in inspector.get_columns(name, schema=tables.schema)}
        except sa.exc.NoSuchTableError:
            if tables.optional(logical):
                if warnings is not None:
                    warnings.append(f"table {name} ({logical}) not found: the run goes on "
                                    f"without it and {ENRICHMENTS[logical]}; if your database "
                                    f"names it differently, set erp.profile.{logical}.table")
                continue
            problems.append(f"table {name} ({logical}) not found; if your database names it "
                            f"differently, set erp.profile.{logical}.table in config.yaml")
            continue
        for lname, phys in spec["columns"].items():
            if (logical, lname) in (unused or set()):
                continue
            if phys.lower() not in cols and (logical, lname) in OPTIONAL_COLUMNS:
                if warnings is not None:
                    warnings.append(f"column {name}.{phys} ({logical}.{lname}) not found: "
                                    f"{OPTIONAL_COLUMNS[(logical, lname)]}; if your database "
                                    f"names it differently, set erp.profile.{logical}."
                                    f"columns.{lname}")
            elif phys.lower() not in cols:
                problems.append(f"column {name}.{phys} ({logical}.{lname}) not found; set "
                                f"erp.profile.{logical}.columns.{lname} in config.yaml")
    return problems


def wrap_db_error(exc: SQLAlchemyError, url: str | URL) -> KeyservicesError:
    """One readable line for a database failure, the password masked; the SQL Server and ODBC
    failures an admin can act on say what to do."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return _known_failure(text, url) or SourceUnavailable(
        f"database error on {display_url(url)}: {text}")


def _known_failure(text: str, url: str | URL) -> KeyservicesError | None:
    """SQL Server's lock, snapshot and deadlock errors and missing ODBC drivers, explained."""
    where = display_url(url)
    if "(1222)" in text or "Lock request time out period exceeded" in text:
        return SourceUnavailable(
            f"the ERP database {where} kept a lock longer than erp.lock_timeout_seconds (SQL "
            f"Server error 1222, Lock request time out period exceeded): e-automate was probably "
            f"posting. The statement was cancelled and its transaction rolled back; run again "
            f"later, schedule the run outside posting, raise erp.lock_timeout_seconds or set "
            f"erp.read_isolation: snapshot (docs/eautomate-setup.md)")
    if "due to lock timeout" in text:  # PostgreSQL, SQLSTATE 55P03
        return SourceUnavailable(
            f"the ERP database {where} kept a row locked longer than erp.lock_timeout_seconds "
            f"(PostgreSQL: {text}): another session, e-automate posting or someone editing the "
            f"customer, held it. The statement was cancelled and its transaction rolled back; "
            f"run again later, schedule the run outside posting, or raise "
            f"erp.lock_timeout_seconds")
    if "(3952)" in text or "snapshot isolation is not allowed" in text.lower():
        try:
            database = make_url(url).database or "your company database"
        except ArgumentError:
            database = "your company database"
        return ConfigError(
            f"erp.read_isolation is snapshot but {where} does not allow snapshot isolation (SQL "
            f"Server error 3952): ask the DBA to run ALTER DATABASE [{database}] "
            f"SET ALLOW_SNAPSHOT_ISOLATION ON, or set erp.read_isolation: read_committed")
    if "(3960)" in text:
        return SourceUnavailable(
            f"a value being written on {where} was changed by another session at the same moment "
            f"(SQL Server error 3960, snapshot update conflict): that chunk was rolled back; the "
            f"next run writes it")
    if "(1205)" in text:
        return SourceUnavailable(
            f"SQL Server chose this run as a deadlock victim on {where} (error 1205): the "
            f"statement was rolled back; run again")
    lib = re.search(r"Can't open lib '([^']+)'", text)
    if lib:
        return MissingExtra(
            f"the ODBC driver {lib.group(1)!r} named in erp.url is not installed on this "
            f"machine: install {_MSODBC}, or set ?driver= in erp.url to an installed one "
            f"(odbcinst -q -d lists them)")
    if "Data source name not found" in text or "IM002" in text:
        return MissingExtra(
            f"no ODBC driver or data source matches erp.url ({where}): add "
            f"?driver=ODBC+Driver+18+for+SQL+Server to erp.url and install {_MSODBC} (on "
            f"Windows, 'ODBC Data Sources' lists the installed drivers)")
    return None
