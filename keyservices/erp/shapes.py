"""Before the facts are read: which enrichment tables this database lacks, and whether the
columns whose values the rules interpret (yes/no flags, dates, amounts) hold values the tool can
read.

Why: SQLite stores anything in any column, and a guess is worse than a stop. 'yes'/'no' in
``Active`` once made inactive customers active; a garbage ``StartDate`` silently removed forty
services. So a value the tool cannot interpret stops the night before anything is written, with
the table, the column and three sample values (``SchemaError``, exit 2).

Cost: a constant number of statements. On SQLite, on a good night: ``sqlite_master`` tells which
enrichment tables exist (before the facts are read: their statements leave missing ones out),
then one pass per table flags the columns holding a bad value; only then a third statement
fetches three distinct samples per bad column (``SELECT DISTINCT ... LIMIT 3`` joined by
``UNION ALL``). Elsewhere the database enforces its column types, so the declared types are read
instead (one reflection call, which also tells which enrichment tables exist), and only a column
declared with a type the SQL cannot compare as meant (text where a date is meant) costs a sample
statement, on that unhappy path only.

The pass over every table is the night's most expensive statement on SQLite (a third of its
database time at a million customers), and its verdict is needed only before anything is
written or shown. So a run sends it after the facts are read, on a second connection, while
Python classifies and works out the opportunities (``ValueCheck.start``), and waits for it
before the first write or output (``ValueCheck.verdict``). The database still runs one of the
night's big statements at a time. A failure while the facts are read or worked on waits for
the verdict first: a value the tool cannot interpret explains it better than a traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.reflection import ObjectKind

from ..errors import SchemaError
from ..progress import Reporter, Timings, step
from ..rules import RuleSet
from .connection import ErpTables
from .needs import run_reads
from .profile import ENRICHMENTS

FLAGS = frozenset({"active", "prospect", "void"})
DATES = frozenset({"start_date", "exp_date", "date", "created"})
AMOUNTS = frozenset({"base_rate", "amount", "cost", "quantity"})
SAMPLES = 3

_MEANT = {"flag": "yes/no", "date": "a date", "amount": "an amount"}
_SQLITE_EXPECTED = {
    "flag": "0 or 1 (as e-automate's bit columns hold them)",
    "date": "'YYYY-MM-DD' text, optionally followed by a time ('YYYY-MM-DD HH:MM:SS')",
    "amount": "numbers (integer or real, not text)",
}
_TYPE_EXPECTED = {"flag": "boolean or bit", "date": "date or datetime",
                  "amount": "numeric, money, integer or float"}


def kind_of(column: str) -> str | None:
    """How the rules interpret a logical column: flag, date, amount, or not at all."""
    return ("flag" if column in FLAGS else "date" if column in DATES
            else "amount" if column in AMOUNTS else None)


Check = tuple[str, str, str, sa.ColumnElement[bool], str]  # logical, column, kind, bad, wanted
ASIDE = "keyservices_aside"  # execution option of the check's own connection (not counted)
STEP = "check the data"
log = logging.getLogger(__name__)


@dataclass
class ValueCheck:
    """The verdict on the values the rules interpret, possibly still to be worked out.

    ``problems``: found already (declared types, elsewhere than SQLite); ``checks``: SQLite
    columns still to be scanned. ``run`` works it out on a connection; ``start`` on a second
    connection while the caller goes on, ``verdict`` waits for it and stops the night (exit 2)
    on a value the tool cannot interpret.
    """

    tables: ErpTables
    checks: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    statements: int = 0  # sent by ``run`` (on the second connection: not in the run's counter)
    seconds: float = 0.0
    _future: Future[list[str]] | None = field(default=None, init=False, repr=False)
    _done: bool = field(default=False, init=False, repr=False)
    _driver: Any = field(default=None, init=False, repr=False)  # the second connection's own
    _stopped: bool = field(default=False, init=False, repr=False)

    def run(self, conn: sa.Connection) -> list[str]:
        """Every problem, the scan's included: one pass per table, samples only for bad ones."""
        if not self._done:
            start = time.perf_counter()
            self._done = True
            if self.checks:
                hits = _sqlite_scan(conn, self.tables, self.checks)
                bad = [c for c, hit in zip(self.checks, hits) if hit]
                self.statements += 1 + bool(bad)
                self.problems = self.problems + _sampled(conn, self.tables, bad)
            self.seconds += time.perf_counter() - start
        return list(self.problems)

    def start(self, engine: sa.Engine) -> None:
        """Scan on a second connection, on a thread: the database works while Python does."""
        if self._done or self._future is not None or not self.checks:
            return
        pool = ThreadPoolExecutor(1, thread_name_prefix="keyservices-check")
        self._future = pool.submit(self._aside, engine)
        pool.shutdown(wait=False)

    def _aside(self, engine: sa.Engine) -> list[str]:
        with engine.connect() as conn:
            self._driver = conn.connection.dbapi_connection
            try:
                if self._stopped:
                    raise CancelledError
                return self.run(conn.execution_options(**{ASIDE: True}))
            finally:
                self._driver = None

    def cancel(self) -> None:
        """Stop a scan still running (Ctrl-C, a stopped task): SQLite's ``interrupt`` ends its
        statement at once, rather than the process waiting seconds for a verdict nobody reads."""
        self._stopped = True
        driver = self._driver
        interrupt = getattr(driver, "interrupt", None)
        if interrupt is not None:
            interrupt()

    def verdict(self, engine: sa.Engine, *, reporter: Reporter | None = None,
                timings: Timings | None = None) -> None:
        """Wait for the scan (started now if it was not) and raise ``SchemaError`` on any
        problem; the scan's time goes to the "check the data" step."""
        if self._future is None and not self._done:
            self.start(engine)
        future, self._future = self._future, None
        if future is not None:
            with nullcontext() if future.done() else step(reporter, None, f"{STEP} (finishing)"):
                future.result()
            if timings is not None:
                timings[STEP] = round(timings.get(STEP, 0.0) + self.seconds, 4)
        if self.problems:
            raise SchemaError("the ERP holds values keyservices cannot interpret; nothing was "
                              "written:\n" + "\n".join(f"  - {p}" for p in self.problems))

    @contextmanager
    def explaining(self, engine: sa.Engine, *, reporter: Reporter | None = None,
                   timings: Timings | None = None) -> Iterator[None]:
        """A failure inside waits for the verdict: bad values (``SchemaError``) are the better
        explanation; without any, the failure stands as it was."""
        try:
            yield
        except Exception as exc:
            try:
                self.verdict(engine, reporter=reporter, timings=timings)
            except SchemaError as verdict:
                raise verdict from exc
            except Exception as also:  # noqa: BLE001 - the first failure tells more
                log.debug("the check of the values failed as well: %s", also)
            raise
        except BaseException:  # interrupted: the scan is not waited for
            self.cancel()
            raise


def prepare(conn: sa.Connection, tables: ErpTables, reads: dict[str, set[str]]) -> list[str]:
    """Note the missing enrichment tables on ``tables`` (their values are then blank) and
    return one problem per column holding values the tool cannot interpret."""
    return begin(conn, tables, reads).run(conn)


def begin(conn: sa.Connection, tables: ErpTables, reads: dict[str, set[str]]) -> ValueCheck:
    """Note the missing enrichment tables on ``tables`` (the statements that follow leave them
    out) and return the check of the values, still to be run on SQLite."""
    optional = sorted(lo for lo in reads if tables.optional(lo))
    columns = [(logical, column, kind) for logical, cols in sorted(reads.items())
               if logical not in optional
               for column in sorted(cols) if (kind := kind_of(column)) is not None]
    if conn.dialect.name == "sqlite":
        present = _sqlite_present(conn, tables, optional)
        tables.missing = {lo for lo in optional if tables.physical(lo).lower() not in present}
        return ValueCheck(tables, [(lo, c, k, _sqlite_bad(tables, lo, c, k),
                                    _SQLITE_EXPECTED[k]) for lo, c, k in columns])
    found = _reflect(conn, tables, [lo for lo, _, _ in columns] + optional)
    tables.missing = {lo for lo in optional if tables.physical(lo).lower() not in
                      {table for table, _ in found}}
    mistyped = {}
    for logical, column, kind in columns:
        phys = tables.profile[logical]["columns"][column]
        declared = found.get((tables.physical(logical).lower(), phys.lower()))
        if declared is not None and not _fits(declared, kind):
            mistyped[(logical, column, kind)] = declared
        elif kind == "flag" and isinstance(declared, sa.Integer) \
                and not isinstance(declared, sa.Boolean):
            tables.integer_flag(logical, column)  # compared with 1, not true
    return ValueCheck(tables, problems=_sampled(conn, tables, [
        (lo, c, k, sa.true(), (f"a {_TYPE_EXPECTED[k]} column (it is declared {declared}); "
                               "a view that converts it will do"))
        for (lo, c, k), declared in mistyped.items()], always=True))


def _sqlite_present(conn: sa.Connection, tables: ErpTables, optional: list[str]) -> set[str]:
    """Which of the optional enrichment tables (or views) exist, lower-cased: one small
    statement, sent only when the rules read one."""
    if not optional:
        return set()
    master = sa.table("sqlite_master", sa.column("name"), sa.column("type"),
                      schema=tables.schema)
    names = (sa.select(sa.func.group_concat(sa.func.lower(master.c.name), "|"))
             .where(master.c.type.in_(["table", "view"]),
                    sa.func.lower(master.c.name).in_([tables.physical(lo).lower()
                                                      for lo in optional])))
    return set((conn.execute(names).scalar() or "").split("|"))


def _sqlite_scan(conn: sa.Connection, tables: ErpTables, checks: list[Check]) -> list[bool]:
    """Which checks find a bad value: one statement, one pass per table (every checked column
    of a table in the same pass)."""
    by_table: dict[str, list[int]] = {}
    for n, (logical, *_) in enumerate(checks):
        by_table.setdefault(logical, []).append(n)
    flags: dict[int, sa.ColumnElement] = {}
    scans = []
    for logical, ns in by_table.items():
        t = getattr(tables, logical)
        scan = sa.select(*[
            sa.func.max(sa.case((sa.and_(t.c[checks[n][1]].is_not(None), checks[n][3]),
                                 sa.literal_column("1")), else_=sa.literal_column("0")))
            .label(f"b{n}") for n in ns]).select_from(t).subquery(f"scan_{logical}")
        scans.append(scan)
        flags.update({n: scan.c[f"b{n}"] for n in ns})
    joined: sa.FromClause = scans[0]  # one row each: joined side by side
    for scan in scans[1:]:
        joined = joined.join(scan, sa.true())
    hits = conn.execute(sa.select(*[flags[n] for n in range(len(checks))])
                        .select_from(joined)).one()
    return [bool(h) for h in hits]


def _reflect(conn: sa.Connection, tables: ErpTables, logicals: list[str]
             ) -> dict[tuple[str, str], sa.types.TypeEngine]:
    """(table, column) -> declared type, lower-cased names, for the tables (and views) that
    exist among ``logicals``: one reflection call."""
    names = sorted({tables.physical(lo) for lo in logicals})
    if not names:
        return {}
    reflected = sa.inspect(conn).get_multi_columns(schema=tables.schema, filter_names=names,
                                                    kind=ObjectKind.ANY)
    return {(table.lower(), c["name"].lower()): c["type"]
            for (_, table), cols in reflected.items() for c in cols}


def ensure_readable(conn: sa.Connection, tables: ErpTables, rules: RuleSet, *,
                    reporter: Reporter | None = None, timings: Timings | None = None,
                    contacts: bool | None = None) -> ValueCheck:
    """Before the first fact is read: which enrichment tables exist, and (elsewhere than
    SQLite) the declared types, stopping (exit 2) on a column the tool cannot interpret. The
    SQLite scan of the values is returned to be run (``ValueCheck.start`` / ``verdict``)."""
    with step(reporter, timings, STEP):
        tables.missing = set()  # asked afresh: the statements read every table until then
        check = begin(conn, tables, run_reads(tables, rules, contacts=contacts))
    if check.problems:
        check.verdict(conn.engine)
    return check


def _sqlite_bad(tables: ErpTables, logical: str, column: str, kind: str
                ) -> sa.ColumnElement[bool]:
    """Values SQLite holds that the statements would compare or add up wrongly."""
    col = getattr(tables, logical).c[column]
    text = sa.type_coerce(col, sa.String)
    typeof = sa.func.typeof(col)
    if kind == "flag":
        return sa.or_(typeof != "integer", text.not_in([sa.literal_column("0"),
                                                       sa.literal_column("1")]))
    if kind == "amount":
        return typeof.not_in(["integer", "real"])
    # 'YYYY-MM-DD' then nothing, or a time after ' ' or 'T': such text sorts as its day does
    # against the statements' 'YYYY-MM-DD' bounds (SQLite's date() would also reject 02-30,
    # at twice the cost of the whole check on a large GL table)
    return sa.not_(sa.and_(
        typeof == "text",
        text.op("GLOB")("[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]*"),
        sa.or_(sa.func.length(text) == 10, sa.func.substr(text, 11, 1).in_([" ", "T"]))))


def _fits(declared: sa.types.TypeEngine, kind: str) -> bool:
    if isinstance(declared, sa.types.NullType):
        return True  # a type the dialect does not know: trust the database
    if kind == "flag":
        return isinstance(declared, sa.Boolean | sa.Integer)
    if kind == "date":
        return isinstance(declared, sa.Date | sa.DateTime)
    return (isinstance(declared, sa.Numeric | sa.Integer | sa.Float)
            or type(declared).__name__.upper() in {"MONEY", "SMALLMONEY"})


def _sampled(conn: sa.Connection, tables: ErpTables, checks: list[Check],
             always: bool = False) -> list[str]:
    """Up to three distinct bad values per checked column, in one statement (sent only when
    something is wrong); a problem per column with any (with ``always``, per column: its type
    is the problem)."""
    if not checks:
        return []
    parts = []
    for n, (logical, column, _, bad, _) in enumerate(checks):
        col = getattr(tables, logical).c[column]
        sub = (sa.select(sa.literal_column(str(n)).label("n"),
                         sa.cast(col, sa.String(64)).label("v"))
               .where(col.is_not(None), bad).distinct().order_by("v").limit(SAMPLES)
               .subquery(f"bad{n}"))
        parts.append(sa.select(sub.c.n, sub.c.v))
    found: dict[int, list[str]] = {}
    for n, value in conn.execute(sa.union_all(*parts) if len(parts) > 1 else parts[0]):
        found.setdefault(int(n), []).append(value)
    problems = []
    for n, (logical, column, kind, _, want) in enumerate(checks):
        if n not in found and not always:
            continue
        phys = tables.profile[logical]["columns"][column]
        samples = ", ".join(repr(v) for v in found.get(n, [])) or "(no values)"
        problems.append(
            f"{tables.physical(logical)}.{phys} ({logical}.{column}) holds values keyservices "
            f"cannot read as {_MEANT[kind]}, e.g. {samples}: it needs {want}. Correct the data, "
            f"or set erp.profile.{logical}.columns.{column} to a column that holds them")
    return problems


__all__ = ["AMOUNTS", "ASIDE", "DATES", "ENRICHMENTS", "FLAGS", "ValueCheck", "begin",
           "ensure_readable", "kind_of", "prepare"]
