"""SQL Server's connection without a server: what each new connection is sent first, how a write
chunk goes, and the failures an admin can act on (a lock held by posting, snapshot isolation not
allowed, a missing ODBC driver or unixODBC), each one line with what to do.

The checks run on a fake pyodbc whose connections record what SQLAlchemy's mssql+pyodbc dialect
sends them, and raise the errors pyodbc raises, with the texts SQL Server and unixODBC give.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from keyservices.cli import cli
from keyservices.erp import ErpTables, connect
from keyservices.erp.connection import session_settings
from keyservices.erp.writeback import update_statements

from .conftest import write_config

MSSQL_URL = "mssql+pyodbc://keyservices@erpserver/coDemo?driver=ODBC+Driver+18+for+SQL+Server"


# -- the connection: isolation, lock timeout, fast_executemany -----------------------------------
# what SQLAlchemy's mssql dialect asks a new connection before the night's first statement
STARTUP_QUERIES = ("SERVERPROPERTY('ProductVersion')", "schema_name()", "sys.system_views",
                   "transaction_isolation_level", "test max support", "fn_listextendedproperty")


class FakeCursor:
    """A pyodbc cursor that records what it is sent and answers SQLAlchemy's first questions."""

    def __init__(self, conn: FakeConnection) -> None:
        self.conn, self.fast_executemany, self.description = conn, False, None
        self.rowcount, self._row = -1, None

    def execute(self, sql: str, *params: Any) -> FakeCursor:
        self.conn.sent.append(sql)
        if self.conn.fail and not sql.startswith("SET ") and not any(
                q in sql for q in STARTUP_QUERIES):
            raise self.conn.module.Error(self.conn.fail)
        low = sql.lower()
        self._row = (("16.0.1000.6",) if "productversion" in low else ("dbo",)
                     if "schema_name" in low else ("dm_exec_sessions",)
                     if "system_views" in low else ("READ COMMITTED",)
                     if "transaction_isolation_level" in low else (1,))
        self.description = [("x", None, None, None, None, None, None)]
        return self

    def executemany(self, sql: str, rows: Any) -> None:
        self.conn.sent.append(sql)
        self.conn.batches.append((sql, list(rows), self.fast_executemany))

    def fetchone(self) -> Any:
        row, self._row = self._row, None
        return row

    def fetchall(self) -> list[Any]:
        row = self.fetchone()
        return [row] if row else []

    fetchmany = fetchall

    def close(self) -> None: ...

    def setinputsizes(self, *args: Any) -> None: ...


class FakeConnection:
    def __init__(self, module: Any, fail: str | None) -> None:
        self.module, self.fail, self.sent, self.batches = module, fail, [], []
        self.autocommit = False

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...

    def getinfo(self, *args: Any) -> str:
        return "16.0"

    def add_output_converter(self, *args: Any) -> None: ...


class FakePyodbc(types.ModuleType):
    """Just enough of pyodbc for SQLAlchemy's mssql+pyodbc dialect."""

    version = "5.1.0"
    paramstyle = "qmark"

    def __init__(self, fail: str | None = None, refuse: str | None = None) -> None:
        super().__init__("pyodbc")
        self.Error = type("Error", (Exception,), {})
        self.Cursor = FakeCursor
        self.connections: list[FakeConnection] = []
        self.fail, self.refuse = fail, refuse

    def __getattr__(self, name: str) -> Any:  # DBAPI type codes (SQL_WVARCHAR, NUMBER, ...)
        if name.isupper():
            return name
        raise AttributeError(name)

    def connect(self, *args: Any, **kwargs: Any) -> FakeConnection:
        if self.refuse:
            raise self.Error(self.refuse)
        conn = FakeConnection(self, self.fail)
        self.connections.append(conn)
        return conn


@pytest.fixture
def fake_pyodbc(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePyodbc]:
    module = FakePyodbc()
    monkeypatch.setitem(sys.modules, "pyodbc", module)
    for name in ("Error", "DatabaseError", "OperationalError", "ProgrammingError",
                 "IntegrityError", "InterfaceError", "DataError", "NotSupportedError",
                 "InternalError"):
        setattr(module, name, module.Error)
    yield module


@pytest.mark.parametrize("isolation", ["read_committed", "snapshot", "read_uncommitted"])
def test_every_new_sql_server_connection_gets_the_lock_timeout_and_isolation_first(
        fake_pyodbc: FakePyodbc, isolation: str) -> None:
    engine = connect(MSSQL_URL, read_isolation=isolation, lock_timeout_seconds=7)
    with engine.connect() as first, engine.connect() as second:  # two DBAPI connections
        first.execute(sa.text("SELECT 1"))
        second.execute(sa.text("SELECT 1"))
    expected = session_settings(isolation, 7)
    assert expected[0] == "SET LOCK_TIMEOUT 7000"
    assert len(fake_pyodbc.connections) == 2
    for conn in fake_pyodbc.connections:
        assert conn.sent[:2] == expected, conn.sent[:3]
    # a write chunk goes as one batch
    when_null, _ = update_statements(ErpTables(), 2044)
    with engine.begin() as conn:
        conn.execute(when_null, [{"b_customer_id": 1, "b_after": "CPY"},
                                 {"b_customer_id": 2, "b_after": "MPS"}])
    ((sql, sent_rows, fast),) = [b for c in fake_pyodbc.connections for b in c.batches]
    assert sql.startswith("UPDATE [ARCustomerCustomProperties] SET [TextVal]=?")
    assert len(sent_rows) == 2 and fast is True
    engine.dispose()


def test_the_sql_server_settings_do_nothing_on_sqlite(tmp_path: Path) -> None:
    # SQLite would refuse SET LOCK_TIMEOUT and SNAPSHOT: a query proves nothing was sent
    sa.create_engine(f"sqlite:///{tmp_path / 'erp.sqlite'}").connect().close()
    engine = connect(f"sqlite:///{tmp_path / 'erp.sqlite'}", read_isolation="snapshot",
                     lock_timeout_seconds=1)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    assert not sa.event.contains(engine, "connect", lambda *a: None)
    engine.dispose()


@pytest.mark.postgres
def test_postgresql_takes_the_lock_timeout_and_not_the_isolation(pg_server: str) -> None:
    engine = connect(pg_server, read_isolation="read_uncommitted", lock_timeout_seconds=1)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "1s"
        assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "read committed"
    engine.dispose()


# -- failures an admin can act on -----------------------------------------------------------------
@pytest.fixture(autouse=True)
def erp_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server URL takes a password; from the environment, so no test here asks a keyring."""
    monkeypatch.setenv("KEYSERVICES_ERP_PASSWORD", "not-a-real-password")


def check_with(tmp_path: Path, extra: str = "") -> Any:
    path = write_config(tmp_path, MSSQL_URL, extra)
    return CliRunner().invoke(cli, ["check", "-c", str(path)])


def test_a_run_blocked_by_posting_fails_with_exit_1_and_says_why(
        tmp_path: Path, fake_pyodbc: FakePyodbc) -> None:
    fake_pyodbc.fail = ("('HYT00', '[HYT00] [Microsoft][ODBC Driver 18 for SQL Server][SQL "
                        "Server]Lock request time out period exceeded. (1222) (SQLExecDirectW)')")
    result = check_with(tmp_path, "")
    assert result.exit_code == 1, result.output
    assert "kept a lock longer than erp.lock_timeout_seconds" in result.output
    assert "error 1222" in result.output and "Traceback" not in result.output


def test_snapshot_isolation_not_allowed_is_a_setup_error(tmp_path: Path,
                                                         fake_pyodbc: FakePyodbc) -> None:
    fake_pyodbc.fail = ("('42000', \"[42000] [Microsoft][ODBC Driver 18 for SQL Server][SQL "
                        "Server]Snapshot isolation transaction failed accessing database 'coDemo' "
                        "because snapshot isolation is not allowed in this database. (3952)\")")
    path = write_config(tmp_path, MSSQL_URL)
    path.write_text(path.read_text().replace("erp:\n", "erp:\n  read_isolation: snapshot\n"))
    result = CliRunner().invoke(cli, ["check", "-c", str(path)])
    assert result.exit_code == 2, result.output
    assert "ALTER DATABASE [coDemo] SET ALLOW_SNAPSHOT_ISOLATION ON" in result.output


@pytest.mark.parametrize(("refusal", "hint"), [
    (("('01000', \"[01000] [unixODBC][Driver Manager]Can't open lib 'ODBC Driver 18 for SQL "
      "Server' : file not found (0) (SQLDriverConnect)\")"),
     "the ODBC driver 'ODBC Driver 18 for SQL Server' named in erp.url is not installed"),
    (("('IM002', '[IM002] [unixODBC][Driver Manager]Data source name not found and no default "
      "driver specified (0) (SQLDriverConnect)')"),
     "add ?driver=ODBC+Driver+18+for+SQL+Server to erp.url"),
])
def test_a_missing_odbc_driver_gives_an_install_hint(tmp_path: Path, fake_pyodbc: FakePyodbc,
                                                     refusal: str, hint: str) -> None:
    fake_pyodbc.refuse = refusal
    result = check_with(tmp_path)
    assert result.exit_code == 1, result.output
    assert hint in result.output and "msodbcsql18" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_pyodbc_without_unixodbc_gives_an_install_hint(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from keyservices.erp import connection

    real = connection.importlib.import_module

    def no_libodbc(name: str, *args: Any) -> Any:
        if name == "pyodbc":
            raise ImportError("libodbc.so.2: cannot open shared object file: No such file or "
                              "directory")
        return real(name, *args)

    monkeypatch.setattr(connection.importlib, "import_module", no_libodbc)
    result = check_with(tmp_path)
    assert result.exit_code == 1, result.output
    assert "apt-get install unixodbc" in result.output and "msodbcsql18" in result.output
    assert len(result.output.strip().splitlines()) == 1
