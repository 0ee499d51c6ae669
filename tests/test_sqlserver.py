"""SQL Server without a server: the T-SQL a DBA pastes, and the grants it needs.

No SQL Server runs here. The printed T-SQL is parsed with sqlglot (``read="tsql"``), transpiled
back to SQLite and run on the demo database, where it must return what the SQLite statements
return; a run on the demo database must send exactly the printed statements, in their order.
The connection itself is in ``test_sqlserver_connection.py``.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.dialects import mssql, sqlite

from keyservices import demodb, night
from keyservices.calls.cross_sell import uncovered_offers
from keyservices.cli import cli
from keyservices.commands.check import show_sql, sql_script
from keyservices.config import Config, load_config
from keyservices.erp.lines import read_lines
from keyservices.erp.profile import DEFAULT_PROFILE
from keyservices.erp.writeback import apply_changes
from keyservices.model import Change
from keyservices.resources import example_rules_dir

from .conftest import write_config

sqlglot = pytest.importorskip("sqlglot")
exp = sqlglot.exp

ROOT = Path(__file__).resolve().parent.parent
AS_OF = dt.date(2026, 11, 24)
MSSQL_URL = "mssql+pyodbc://keyservices@erpserver/coDemo?driver=ODBC+Driver+18+for+SQL+Server"

# every section kind, with statuses, bill codes, transaction types and item categories, and
# character classes where the rules resolve globs in Python (categories, accounts, statuses)
EVERY_SECTION = """\
services:
  - code: ALLKINDS
    name: Every section kind
    match: any
    equipment:
      categories: ["MFP-A[34]-*"]
      min_count: 2
      on_contract: true
    contracts:
      contract_codes: ["COPY-*", "MPS-*"]
      bill_codes: ["MONTH*"]
      statuses: ["ACTIVE", "ON[HX]OLD"]
      min_base_rate: 50
    gl:
      accounts: ["41[05]0"]
      transaction_types: ["service*"]
      window_days: 180
    items_sold:
      model_classes: [DOC_SOFTWARE]
      item_categories: ["SOFT*"]
      min_unit_price: 1
      window_days: 365
    exclude:
      gl:
        accounts: ["49*"]
        min_revenue: 1000000
"""
# a character class in a transaction type: no LIKE can say it, so the run reads per-code detail
CHARACTER_CLASS = EVERY_SECTION.replace('transaction_types: ["service*"]',
                                        'transaction_types: ["svc[AB]", "service*"]')
RULE_SETS = {"demo": "", "every-section": EVERY_SECTION, "character-class": CHARACTER_CLASS}


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "erp.sqlite"
    demodb.build_demo_db(path, customers=400, seed=7, as_of=AS_OF)
    return path


def make_config(directory: Path, url: str, extra_rules: str = "") -> Config:
    path = write_config(directory, url)
    if extra_rules:
        (directory / "rules" / "every-section.yaml").write_text(extra_rules, encoding="utf-8")
    return load_config(path)


def batches(script: str) -> list[str]:
    """The script split where SSMS splits it: at GO lines."""
    return [b.strip() for b in re.split(r"^GO$", script, flags=re.MULTILINE) if b.strip()]


def parse_tsql(sql: str) -> list[Any]:
    """Every statement of one batch, parsed as T-SQL; placeholders a driver fills are refused."""
    parsed = [e for e in sqlglot.parse(sql, read="tsql") if e is not None]
    declared = {d.name for e in parsed for d in e.find_all(exp.Parameter)
                if isinstance(e, exp.Declare)}
    for e in parsed:
        assert not list(e.find_all(exp.Placeholder)), f"a driver placeholder is left:\n{sql}"
        if not isinstance(e, exp.Declare):
            used = {p.name for p in e.find_all(exp.Parameter)}
            assert used <= declared, f"{used - declared} used but not declared:\n{sql}"
    return parsed


# -- pasteable T-SQL ------------------------------------------------------------------------------
@pytest.mark.parametrize("rules", list(RULE_SETS))
def test_show_sql_is_tsql_that_parses_in_run_order(tmp_path: Path, demo_db: Path,
                                                   rules: str) -> None:
    offline = make_config(tmp_path, MSSQL_URL, RULE_SETS[rules])
    statements = show_sql(offline, as_of=AS_OF)
    names = [n for n, _ in statements]
    facts = [n for n in names if n.startswith("facts: ")]
    learn = [n for n in names if n.startswith("learn the win rates: ")]
    assert names == ["session settings", "attribute id", "code list: categories",
                     *[n for n in names if n.startswith("code list: ") and n[11:] != "categories"],
                     "customers", *learn, *facts, "contacts",
                     "contract lines of closing uncovered-machines offers",
                     "update (value was empty)", "update (value was text)", "read-back"]
    if rules == "character-class":  # read_facts' fallback: per-code detail, no crash
        assert facts == ["facts: equipment", "facts: contracts", "facts: gl", "facts: items_sold"]
        assert learn == []  # the history is read only for rules compiled to numbers
    else:  # the invoices counter (the demo's "no invoice for 90 days" monitor) is read too
        assert facts == ["facts: equipment", "facts: contracts", "facts: gl",
                         "facts: items_sold", "facts: invoices"]
        # the weekly learning: one statement per kind of fact for all past dates (the
        # monitors' columns too, their hits being calls: invoices), after the count of
        # machines inactive today
        assert learn == [f"learn the win rates: {kind}" for kind in (
            "machines inactive today", "equipment", "contracts", "gl", "items_sold",
            "invoices")]
    when = dict(statements)
    for name in learn:
        assert when[name].startswith("-- sent once a week (ranking.learn_every_days: 7 days), "
                                     "to learn the win rates"), name
    assert when["contract lines of closing uncovered-machines offers"].startswith(
        "-- sent only when an uncovered-machines offer closes")
    script = sql_script(offline, statements)
    assert len(batches(script)) == len(statements)
    for name, sql in statements:
        assert "POSTCOMPILE" not in sql, name
        assert parse_tsql(sql), name
    assert "SET TRANSACTION ISOLATION LEVEL READ COMMITTED;" in script
    # with this database's own ids (the attribute and code lists read from the demo ERP)
    with sa.create_engine(f"sqlite:///{demo_db}").connect() as conn:
        live = show_sql(make_config(tmp_path, MSSQL_URL, RULE_SETS[rules]), conn=conn,
                        as_of=AS_OF)
    assert [n for n, _ in live] == names
    for name, sql in live:
        assert "POSTCOMPILE" not in sql and "@attribute_id" not in sql, name
        assert parse_tsql(sql), name


def test_values_are_written_as_sql_server_reads_them_whatever_the_language(
        tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(example_rules_dir(), rules)
    services = rules / "services.yaml"
    services.write_text(services.read_text(encoding="utf-8").replace(
        '["4150*"]', '["4150*", "O\'Brien-é"]'), encoding="utf-8")
    statements = dict(show_sql(make_config(tmp_path, MSSQL_URL), as_of=AS_OF))
    gl = statements["facts: gl"]
    # ISO 8601 (language independent), never '2026-11-24 00:00:00' (fails under DATEFORMAT dmy)
    assert re.search(r"CAST\('2026-\d\d-\d\d(T00:00:00)?' AS DATE(TIME)?\)", gl)
    assert "IN (NULL /* ids from GLAccounts matching 4*, 4150*, 4300*, O'Brien-é" in gl
    assert "N'ZCJKeyServices'" in statements["attribute id"]


def to_sqlite(tsql: str) -> str:
    """sqlglot's transpilation, with SQLite's plain strings for T-SQL's N'' ones."""
    def plain(node: Any) -> Any:
        if isinstance(node, exp.National):
            return exp.Literal.string(node.this)
        return node

    (tree,) = [e for e in sqlglot.parse(tsql, read="tsql") if e is not None]
    return tree.transform(plain).sql(dialect="sqlite")


def rows(conn: sa.Connection, sql: str) -> list[tuple]:
    out = conn.exec_driver_sql(sql).all()
    return sorted((tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in out),
                  key=repr)


@pytest.mark.parametrize("rules", list(RULE_SETS))
def test_tsql_transpiled_to_sqlite_returns_what_the_sqlite_statements_return(
        tmp_path: Path, demo_db: Path, rules: str) -> None:
    config = make_config(tmp_path, f"sqlite:///{demo_db}", RULE_SETS[rules])
    engine = sa.create_engine(f"sqlite:///{demo_db}")
    with engine.connect() as conn:
        tsql = show_sql(config, conn=conn, dialect=mssql.dialect(), as_of=AS_OF)
        native = dict(show_sql(config, conn=conn, dialect=sqlite.dialect(), as_of=AS_OF))
        compared = nonempty = 0
        for name, sql in tsql:
            body = re.sub(r"^--.*\n", "", sql, flags=re.MULTILINE)
            if not body.startswith("SELECT"):
                continue  # the session settings and the UPDATEs
            got = rows(conn, to_sqlite(body))
            assert got == rows(conn, native[name]), name
            compared += 1
            nonempty += bool(got)
    engine.dispose()
    assert compared >= 9 and nonempty >= 7, (compared, nonempty)


class NoState:
    """The audit hooks ``apply_changes`` calls; the state store is not what this test is about."""

    def audit_rows(self, run_id: int, planned: Any) -> Any:
        return SimpleNamespace(run_id=run_id, statements=lambda *_: [])

    def store_pending(self, *args: Any) -> None: ...

    def settle(self, *args: Any) -> None: ...


def _normalised(sql: str) -> str:
    """A statement without its values, to compare what a run sent with what show_sql prints."""
    sql = re.sub(r"^--.*$", "", sql, flags=re.MULTILINE)
    sql = re.sub(r"/\*.*?\*/", "", sql)
    sql = re.sub(r"(?i)\bIN \([^()]*\)", "IN (?)", sql)
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", "?", sql)
    sql = re.sub(r"\bNULL\b", "?", sql)
    return " ".join(sql.split()).rstrip(";").strip()


def test_show_sql_lists_every_statement_a_run_sends_in_run_order(
        tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "erp.sqlite"
    shutil.copy(demo_db, copy)
    config = make_config(tmp_path, f"sqlite:///{copy}", EVERY_SECTION)
    sent: list[str] = []
    # not printed (the script's header says so): schema reflection, and the check of the
    # columns' values before the facts are read (reflection on SQL Server, samples on SQLite)
    checking = []
    if hasattr(night, "ensure_readable"):
        real = night.ensure_readable

        def ensure_readable(*args: Any, **kwargs: Any) -> Any:
            checking.append(True)
            try:
                return real(*args, **kwargs)
            finally:
                checking.pop()

        monkeypatch.setattr(night, "ensure_readable", ensure_readable)
    # the week's learning of the win rates (no rates stored: this night learns) is recorded
    # too: show_sql prints its statements, marked as the week's
    if hasattr(night, "note_absent"):  # which optional dated columns exist: catalogue too
        real_absent = night.note_absent

        def note_absent(*args: Any, **kwargs: Any) -> Any:
            checking.append(True)
            try:
                return real_absent(*args, **kwargs)
            finally:
                checking.pop()

        monkeypatch.setattr(night, "note_absent", note_absent)

    def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # the scan of the values runs on its own connection while Python works
        aside = conn.get_execution_options().get("keyservices_aside")
        if not checking and not aside and not statement.startswith("PRAGMA"):
            sent.append(statement)

    with sa.create_engine(f"sqlite:///{copy}").connect() as conn:
        values = conn.exec_driver_sql(
            "SELECT v.CustomerID, v.TextVal FROM ARCustomerCustomProperties v JOIN ShAttributes a"
            " ON a.ShAttributeID = v.ShAttributeID WHERE a.AttributeName = 'ZCJKeyServices'").all()
    empty = next(cid for cid, text in values if text is None)
    texted = next((cid, text) for cid, text in values if text)
    with night.open_erp(config) as erp:
        sa.event.listen(erp.engine, "before_cursor_execute", record)
        tonight = night.compute(config, AS_OF, erp=erp)
        assert tonight.learned  # the learning statements were sent
        # an uncovered-machines offer closing: its contract lines are read (commands.why)
        offers = uncovered_offers(tonight.rules, tonight.facts.codes)
        assert offers
        with erp.engine.connect() as conn:
            read_lines(conn, erp.tables, {empty}, set().union(*offers.values()), AS_OF,
                       parent_level=tonight.rules.level == "parent")
        changes = [Change(customer_id=empty, number="E", name="E", branch=None, sales_rep=None,
                          before=None, after="CPY", added=("CPY",), removed=()),
                   Change(customer_id=texted[0], number="T", name="T", branch=None,
                          sales_rep=None, before=texted[1], after=texted[1] + ";X", added=(),
                          removed=()),
                   # edited in the ERP since it was read: the guard holds, the chunk is read back
                   Change(customer_id=next(cid for cid, _ in values
                                           if cid not in (empty, texted[0])), number="S", name="S", branch=None,
                          sales_rep=None, before="STALE", after="CPY", added=("CPY",),
                          removed=())]
        apply_changes(erp.engine, erp.tables, tonight.attribute_id, changes,
                      state=NoState(), run_id=1, chunk_size=500)  # type: ignore[arg-type]
        with erp.engine.connect() as conn:
            printed = show_sql(config, conn=conn, as_of=AS_OF)
    shapes = [_normalised(sql) for _, sql in printed]
    run = list(dict.fromkeys(_normalised(s) for s in sent))
    positions = []
    for statement in run:
        assert statement in shapes, f"the run sent a statement show_sql does not print:\n{statement}"
        positions.append(shapes.index(statement))
    assert positions == sorted(positions), "show_sql prints them in another order"
    unsent = [name for (name, _), shape in zip(printed, shapes) if shape not in run]
    assert unsent == [], f"show_sql prints statements the run did not send: {unsent}"


# -- the DBA's grants ------------------------------------------------------------------------------
def test_the_setup_doc_grants_every_table_the_statements_read_and_only_textval(
        tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "eautomate-setup.md").read_text(encoding="utf-8")
    granted = set(re.findall(r"^GRANT SELECT ON dbo\.(\w+) TO keyservices;$", doc, flags=re.MULTILINE))
    assert granted == {spec["table"] for spec in DEFAULT_PROFILE.values()}
    # the single company's grants and a group's (the same, in each company database): every
    # grant that is not a SELECT is the one column-level UPDATE, once per section
    writes = re.findall(r"^GRANT (?:UPDATE|INSERT|DELETE)\b.*$", doc, flags=re.MULTILINE)
    assert writes == ["GRANT UPDATE ON dbo.ARCustomerCustomProperties (TextVal) TO keyservices;"] * 2
    group = doc.split("## A dealer group")[1].split("\n## ")[0]
    assert set(re.findall(r"^GRANT SELECT ON dbo\.(\w+) TO keyservices;$", group,
                          flags=re.MULTILINE)) == granted
    read = set()
    for rules in (EVERY_SECTION, CHARACTER_CLASS):
        directory = tmp_path / str(len(read))
        directory.mkdir()
        for _, sql in show_sql(make_config(directory, MSSQL_URL, rules), as_of=AS_OF):
            read |= {t.name for e in parse_tsql(sql) for t in e.find_all(exp.Table)}
    assert "CMContacts" in read and "ARInvoices" in read and "ARInvoiceDetails" in read
    assert read <= granted, read - granted


def test_check_show_sql_with_ids_writes_in_this_databases_ids(tmp_path: Path,
                                                               demo_db: Path) -> None:
    path = write_config(tmp_path, f"sqlite:///{demo_db}")
    result = CliRunner().invoke(cli, ["check", "-c", str(path), "--show-sql", "--with-ids"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "ids from" not in out and "@attribute_id" not in out and "GO\n" not in out
    assert re.search(r'"ICModels"\."CategoryID" IN \(\d+(, \d+)*\)', out)
    assert "IN (NULL /* the CustomerIDs of this chunk" in out  # known only when writing
