"""Databases shaped differently from the demo: dates stored as text, missing enrichment tables,
values the tool cannot interpret, and rows typed as pyodbc returns them."""

from __future__ import annotations

import datetime as dt
import decimal
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import keyservices
from keyservices import night
from keyservices.calls.wonlost import annual_values, fill_annual_values, won_lost
from keyservices.cli import cli
from keyservices.commands.backtest import backtest
from keyservices.config import Config, load_config
from keyservices.demodb import build_demo_db
from keyservices.engine.diff import plan_changes
from keyservices.errors import SchemaError

from .conftest import AS_OF, ErpBuilder, postgres_erp, write_config


@pytest.fixture(params=[
    ("sqlite", False), ("sqlite", True),
    pytest.param(("postgresql", False), marks=pytest.mark.postgres),
    pytest.param(("postgresql", True), marks=pytest.mark.postgres)],
    ids=["sqlite-datetime", "sqlite-plain-dates", "postgresql-datetime",
         "postgresql-plain-dates"])
def dated_erp(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ErpBuilder]:
    """An ERP whose dates are stored with a time (as e-automate does) or as plain dates."""
    dialect, plain = request.param
    if dialect == "sqlite":
        builder = ErpBuilder(tmp_path / "erp.sqlite", plain_dates=plain)
        yield builder
        builder.engine.dispose()
    else:
        yield from postgres_erp(request.getfixturevalue("pg_server"), plain_dates=plain)


def config_of(erp: ErpBuilder, folder: Path, extra: str = "") -> Config:
    return load_config(write_config(folder, erp.url, extra, schema=erp.schema))


def compute(config: Config, as_of: dt.date) -> night.Night:
    with night.open_erp(config) as erp:
        return night.compute(config, as_of, erp=erp)


# -- dates: the documented inclusive bounds, the same on every dialect and storage ---------------
def _ago(day: dt.date) -> int:
    return (AS_OF - day).days


def boundary_dealer(erp: ErpBuilder, day: dt.date
                    ) -> tuple[dict[str, int], dict[str, set[str]], dict[str, tuple[str, bool]]]:
    """Customers on each side of every date bound, for a run on ``day``: their ids, the services
    each must get and, for some, a status monitor and whether it must hit."""
    d = dt.timedelta
    ids: dict[str, int] = {}
    services: dict[str, set[str]] = {}
    alerts: dict[str, tuple[str, bool]] = {}

    def customer(number: str, want: set[str], monitor: tuple[str, bool] | None = None) -> int:
        ids[number] = erp.customer(number)
        services[number] = want
        if monitor:
            alerts[number] = monitor
        return ids[number]

    erp.contract(customer("EXP-TODAY", {"MIT"}), "IT-MANAGED", end=day)
    erp.contract(customer("EXP-YESTERDAY", set()), "IT-MANAGED", end=day - d(1))
    erp.contract(customer("START-TODAY", {"CPY"}), "COPY-MAINT", start=day)
    erp.contract(customer("START-TOMORROW", set()), "COPY-MAINT", start=day + d(1))
    erp.gl(customer("GL-FIRST", {"MIT"}), "4300", 1500.0, days_ago=_ago(day - d(364)))
    erp.gl(customer("GL-BEFORE", set()), "4300", 1500.0, days_ago=_ago(day - d(365)))
    erp.gl(customer("GL-RUNDAY", {"MIT"}), "4300", 1500.0, days_ago=_ago(day))
    erp.gl(customer("GL-AFTER", set()), "4300", 1500.0, days_ago=_ago(day + d(1)))
    erp.sale(customer("SALE-FIRST", {"DM"}), "SW-DM-CAPTURE", 900.0,
             days_ago=_ago(day - d(729)))
    erp.sale(customer("SALE-BEFORE", set()), "SW-DM-CAPTURE", 900.0,
             days_ago=_ago(day - d(730)))
    erp.sale(customer("SALE-AFTER", set()), "SW-DM-CAPTURE", 900.0, days_ago=_ago(day + d(1)))
    # status monitors: COPY-RENEWAL (copier contracts expiring within 90 days), NO-SALE-90 (no
    # invoice or revenue in 90 days, revenue in the last 365: each customer's revenue is 200 days
    # back, so the invoice decides; and one on each side of the 365-day bound, no invoices)
    erp.contract(customer("RENEW-89", {"CPY"}, ("COPY-RENEWAL", True)), "COPY-MAINT",
                 end=day + d(89))
    erp.contract(customer("RENEW-90", {"CPY"}, ("COPY-RENEWAL", False)), "COPY-MAINT", end=day + d(90))
    for number, back, fires in (("INV-FIRST", 89, False), ("INV-BEFORE", 90, True),
                                ("INV-AFTER", -1, True)):
        cid = customer(number, set(), ("NO-SALE-90", fires))
        erp.sale(cid, "WTR-COOLER", 100.0, days_ago=_ago(day - d(back)))
        erp.gl(cid, "4000", 100.0, days_ago=_ago(day - d(200)))
    erp.gl(customer("PAID-FIRST", set(), ("NO-SALE-90", True)), "4000", 100.0,
           days_ago=_ago(day - d(364)))
    erp.gl(customer("PAID-BEFORE", set(), ("NO-SALE-90", False)), "4000", 100.0,
           days_ago=_ago(day - d(365)))
    return ids, services, alerts


@pytest.mark.parametrize("days_back", [0, 10], ids=["run-date", "earlier-as-of"])
def test_boundary_days_count_by_the_documented_inclusive_bounds(
        dated_erp: ErpBuilder, tmp_path: Path, days_back: int) -> None:
    """Expiring on the run date is still active; the first day of a window counts; lines after
    the run date (also after an earlier --as-of) do not: with dates stored with a time or as
    plain dates, on SQLite and PostgreSQL alike."""
    day = AS_OF - dt.timedelta(days=days_back)
    ids, services, alerts = boundary_dealer(dated_erp, day)
    result = compute(config_of(dated_erp, tmp_path), day)
    got = {n: set(result.classification.services.get(i, ())) for n, i in ids.items()}
    assert got == services
    hits: dict[int, set[str]] = {}
    assert result.calls is not None
    for alert in result.calls.alerts:
        hits.setdefault(alert.customer_id, set()).add(alert.code)
    assert {n: (code, code in hits.get(ids[n], set())) for n, (code, _) in alerts.items()} \
        == alerts


@pytest.mark.parametrize("as_of", [AS_OF, AS_OF - dt.timedelta(days=20)],
                         ids=["run-date", "earlier-as-of"])
def test_demo_with_plain_dates_gets_the_same_values(tmp_path: Path, as_of: dt.date) -> None:
    """The same generated dealer stored with datetimes and with 'YYYY-MM-DD' text: every customer
    gets the same services, the same contract values and the same status alerts."""
    results = []
    for plain in (False, True):
        folder = tmp_path / ("plain" if plain else "datetime")
        folder.mkdir()
        build_demo_db(folder / "erp.sqlite", customers=600, seed=11, as_of=AS_OF,
                      plain_dates=plain)
        config = load_config(write_config(folder, f"sqlite:///{(folder / 'erp.sqlite').as_posix()}"))
        n = compute(config, as_of)
        assert n.values is not None and n.calls is not None
        results.append((n.classification.services, annual_values(n.classification, n.facts,
                                                                  n.values),
                        sorted((a.customer_id, a.code) for a in n.calls.alerts)))
    assert results[0] == results[1]
    assert sum(1 for s in results[0][0].values() if s) > 200


def test_demo_db_plain_dates_stores_dates_as_text(tmp_path: Path, runner) -> None:
    out = tmp_path / "plain.sqlite"
    result = runner.invoke(cli, ["demo-db", "--customers", "30", "--out", str(out),
                                 "--as-of", "2026-11-24", "--plain-dates"])
    assert result.exit_code == 0, result.output
    with sqlite3.connect(out) as db:
        dates = {r[0] for r in db.execute('SELECT "StartDate" FROM "SCContracts"')}
        lines = {r[0] for r in db.execute('SELECT "TransactionDate" FROM "GLDetail"')}
    assert dates and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) for v in dates | lines)


# -- check reads what the run reads; enrichment tables are optional ------------------------------
def _drop(erp: ErpBuilder, table: str) -> None:
    with erp.engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE {_q(erp, table)}'))


def _q(erp: ErpBuilder, table: str) -> str:
    return f'"{erp.schema}"."{table}"' if erp.schema else f'"{table}"'


@pytest.mark.parametrize("table", ["ARInvoices", "CMContacts"])
def test_check_fails_on_a_table_only_monitors_read(erp: ErpBuilder, tmp_path: Path,
                                                   table: str) -> None:
    """The example rules' monitors count invoices and name contacts: check must know."""
    erp.customer("COP001")
    _drop(erp, table)
    with pytest.raises(SchemaError, match=f"table {table} "):
        keyservices.check(config_of(erp, tmp_path))


def test_missing_branch_table_is_a_warning_and_the_run_shows_branch_blank(
        any_erp: ErpBuilder, tmp_path: Path) -> None:
    cid = any_erp.customer("COP001")
    any_erp.equipment(cid, "MFP-A3-CO-03")
    _drop(any_erp, "GLBranches")
    config = config_of(any_erp, tmp_path)
    report = keyservices.check(config)
    assert any("GLBranches" in w and "branch" in w for w in report.warnings), report.warnings
    result = compute(config, AS_OF)
    assert result.classification.services[cid] == {"CPY"}
    assert result.facts.customers[cid].branch is None
    assert result.facts.customers[cid].sales_rep == "Dana Rep"
    run = keyservices.run(config, as_of=AS_OF)
    assert run.exit_code == 0 and any_erp.value(cid) == "CPY"


def test_missing_rep_and_industry_tables_leave_them_blank(erp: ErpBuilder,
                                                         tmp_path: Path) -> None:
    cid = erp.customer("COP001")
    erp.equipment(cid, "MFP-A3-CO-03")
    for table in ("SHAgents", "ARCustomerTypes", "GLBranches"):
        _drop(erp, table)
    config = config_of(erp, tmp_path)
    assert len(keyservices.check(config).warnings) >= 3
    customer = compute(config, AS_OF).facts.customers[cid]
    assert (customer.branch, customer.sales_rep, customer.industry) == (None, None, None)


def test_a_renamed_enrichment_table_that_is_missing_is_an_error(erp: ErpBuilder,
                                                                tmp_path: Path) -> None:
    """The admin named the table: a missing one is a typo, not an absent enrichment."""
    erp.customer("COP001")
    path = write_config(tmp_path, erp.url)
    path.write_text(path.read_text().replace(
        "erp:\n", "erp:\n  profile:\n    branches: {table: GLBranchez}\n"))
    config = load_config(path)
    with pytest.raises(SchemaError, match="GLBranchez"):
        keyservices.check(config)


def test_stand_in_table_without_the_named_column_is_a_clear_error(erp: ErpBuilder,
                                                                  tmp_path: Path) -> None:
    erp.customer("COP001")
    _drop(erp, "GLBranches")
    with erp.engine.begin() as conn:
        conn.execute(sa.text('CREATE TABLE "GLBranches" ("BranchID" INTEGER)'))
    config = config_of(erp, tmp_path)
    with pytest.raises(SchemaError, match=r"GLBranches\.Description"):
        keyservices.check(config)
    with pytest.raises(SchemaError, match=r"GLBranches\.Description"):
        keyservices.run(config, as_of=AS_OF, dry_run=True)


# -- values the tool cannot interpret: one clear error, nothing written -----------------------
def _set_text(erp: ErpBuilder, table: str, column: str, values: dict[int, str],
              key: str) -> None:
    """Store text in a column (PostgreSQL: after making the column text, as a view might)."""
    with erp.engine.begin() as conn:
        if erp.engine.dialect.name == "postgresql":
            conn.execute(sa.text(f'ALTER TABLE {_q(erp, table)} ALTER COLUMN "{column}" '
                                 f'TYPE varchar(40) USING "{column}"::text'))
        for row_id, text in values.items():
            conn.execute(sa.text(f'UPDATE {_q(erp, table)} SET "{column}" = :v '
                                 f'WHERE "{key}" = :k'), {"v": text, "k": row_id})


@pytest.mark.parametrize("table,column,key,bad", [
    ("ARCustomers", "Active", "CustomerID", ["yes", "no", "N", "Y"]),
    ("SCContracts", "StartDate", "ContractID", ["31/12/2025", "soon", "2025-13-45", "n/a"]),
    ("GLDetail", "Amount", "GLDetailID", ["1,200.00", "$5", "twelve", "1.2.3"]),
])
def test_values_the_tool_cannot_interpret_stop_the_run(
        any_erp: ErpBuilder, tmp_path: Path, table: str, column: str, key: str,
        bad: list[str]) -> None:
    rows = []
    for n in range(len(bad)):
        cid = any_erp.customer(f"C{n:03d}")
        rows.append({"ARCustomers": cid,
                     "SCContracts": any_erp.contract(cid, "IT-MANAGED"),
                     "GLDetail": any_erp.gl(cid, "4300", 1500.0)}[table])
    _set_text(any_erp, table, column, dict(zip(rows, bad)), key)
    config = config_of(any_erp, tmp_path)
    written = any_erp.t["ARCustomerCustomProperties"]  # the one table the tool writes

    def values() -> list[tuple]:
        with any_erp.engine.connect() as conn:
            return sorted(map(tuple, conn.execute(sa.select(written))), key=repr)

    before = values()
    for attempt in (lambda: keyservices.check(config),
                    lambda: keyservices.run(config, as_of=AS_OF),
                    # the backtest checks beside its reads: the verdict still comes first
                    lambda: backtest(config, as_of=AS_OF, save=True)):
        with pytest.raises(SchemaError) as caught:
            attempt()
        message = str(caught.value)
        assert f"{table}.{column}" in message, message
        shown = [b for b in bad if repr(b) in message]
        assert len(shown) == 3, message
        assert caught.value.exit_code == 2
    assert values() == before
    state = sa.create_engine(config.state_url)
    with state.connect() as conn:  # the backtest saved no rates
        assert "win_rates" not in sa.inspect(conn).get_table_names() or not conn.execute(
            sa.text("SELECT COUNT(*) FROM win_rates")).scalar()
    state.dispose()


def test_text_dates_and_amounts_that_are_fine_pass(erp: ErpBuilder, tmp_path: Path) -> None:
    """ISO text with or without a time ('T' or space) is a date; numeric text is an amount."""
    cid = erp.customer("C001")
    kid = erp.contract(cid, "IT-MANAGED")
    gid = erp.gl(cid, "4300", 1500.0)
    _set_text(erp, "SCContracts", "StartDate", {kid: "2026-01-05T08:30:00"}, "ContractID")
    _set_text(erp, "GLDetail", "TransactionDate", {gid: "2026-10-01"}, "GLDetailID")
    report = keyservices.check(config_of(erp, tmp_path))
    assert report.problems == []


# -- pyodbc's row types: Decimal amounts, datetime dates ------------------------------------------
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?")


def _as_pyodbc(value: Any) -> Any:
    if isinstance(value, float):
        return decimal.Decimal(repr(value))
    if isinstance(value, str) and _ISO.fullmatch(value):
        return dt.datetime.fromisoformat(value)
    return value


class _PyodbcLikeCursor:
    """A sqlite3 cursor whose rows carry what pyodbc returns from SQL Server: Decimal for money
    and numeric aggregates, datetime for datetime columns."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __iter__(self) -> Iterator[tuple]:
        return (tuple(map(_as_pyodbc, row)) for row in self._cursor)

    def fetchone(self) -> Any:
        row = self._cursor.fetchone()
        return None if row is None else tuple(map(_as_pyodbc, row))

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        rows = self._cursor.fetchmany(size) if size is not None else self._cursor.fetchmany()
        return [tuple(map(_as_pyodbc, row)) for row in rows]

    def fetchall(self) -> list[tuple]:
        return [tuple(map(_as_pyodbc, row)) for row in self._cursor.fetchall()]


class _PyodbcLikeConnection:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def cursor(self, *args: Any) -> _PyodbcLikeCursor:
        return _PyodbcLikeCursor(self._conn.cursor(*args))


def test_pyodbc_row_types_give_the_same_night(tmp_path: Path, monkeypatch) -> None:
    """Facts, roll-up, contract values and won/lost from Decimal/datetime rows equal the plain
    rows' (the fact path, classify and ``calls.wonlost`` never see pyodbc in CI otherwise)."""
    db = tmp_path / "erp.sqlite"
    build_demo_db(db, customers=500, seed=5, as_of=AS_OF)
    config = load_config(write_config(tmp_path, f"sqlite:///{db.as_posix()}"))
    plain = compute(config, AS_OF)
    typed_rows = []

    def creator() -> _PyodbcLikeConnection:
        return _PyodbcLikeConnection(sqlite3.connect(db))

    def engine_for(_: Config) -> sa.Engine:
        engine = sa.create_engine("sqlite://", creator=creator)
        sa.event.listen(engine, "after_cursor_execute",
                        lambda *a: typed_rows.append(a[1]))
        return engine

    monkeypatch.setattr(night, "engine_for", engine_for)
    typed = compute(config, AS_OF)
    assert typed_rows and all(isinstance(c, _PyodbcLikeCursor) for c in typed_rows)
    assert typed.classification.services == plain.classification.services
    assert (typed.classification.rolled == plain.classification.rolled).all()
    assert typed.values is not None and plain.values is not None
    assert annual_values(typed.classification, typed.facts, typed.values) == \
        annual_values(plain.classification, plain.facts, plain.values)
    assert typed.facts.customers == plain.facts.customers
    # won/lost over one night's changes from an empty baseline, as the run records them
    outs = []
    for n in (plain, typed):
        changes = plan_changes(n.facts, n.classification, n.rules).changes
        assert fill_annual_values(changes, n.classification, n.facts, n.values) > 0
        rows = [{"as_of": AS_OF, "customer_id": c.customer_id, "added": c.added,
                 "removed": c.removed, "annual_values": dict(c.annual_values or ()),
                 "branch": n.facts.customers[c.customer_id].branch, "sales_rep": None}
                for c in changes]
        outs.append(won_lost(rows, {}, {"day": (AS_OF, AS_OF)}))
    assert outs[0] == outs[1] and outs[0]["day"]
