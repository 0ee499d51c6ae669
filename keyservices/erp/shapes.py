"""Before the facts are read: which enrichment tables this database lacks, and whether the
columns whose values the rules interpret (yes/no flags, dates, amounts) hold values the tool can
read.

Why: SQLite stores anything in any column, and a guess is worse than a stop. 'yes'/'no' in
``Active`` once made inactive customers active; a garbage ``StartDate`` silently removed forty
services. So a value the tool cannot interpret stops the night before anything is written, with
the table, the column and three sample values (``SchemaError``, exit 2).

Cost: a constant number of small statements. On SQLite one statement on a good night: one pass
per table flags the columns holding a bad value (and ``sqlite_master`` tells which enrichment
tables exist); only then a second one fetches three distinct samples per bad column
(``SELECT DISTINCT ... LIMIT 3`` joined by ``UNION ALL``). Elsewhere the database enforces its
column types, so the declared types are read instead (one reflection call, which also tells which
enrichment tables exist), and only a column declared with a type the SQL cannot compare as meant
(text where a date is meant) costs a sample statement, on that unhappy path only.
"""

from __future__ import annotations

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


def prepare(conn: sa.Connection, tables: ErpTables, reads: dict[str, set[str]]) -> list[str]:
    """Note the missing enrichment tables on ``tables`` (their values are then blank) and
    return one problem per column holding values the tool cannot interpret."""
    optional = sorted(lo for lo in reads if tables.optional(lo))
    columns = [(logical, column, kind) for logical, cols in sorted(reads.items())
               if logical not in optional
               for column in sorted(cols) if (kind := kind_of(column)) is not None]
    if conn.dialect.name == "sqlite":
        checks = [(lo, c, k, _sqlite_bad(tables, lo, c, k), _SQLITE_EXPECTED[k])
                  for lo, c, k in columns]
        hits, present = _sqlite_scan(conn, tables, checks, optional)
        tables.missing = {lo for lo in optional if tables.physical(lo).lower() not in present}
        return _sampled(conn, tables, [c for c, hit in zip(checks, hits) if hit])
    found = _reflect(conn, tables, [lo for lo, _, _ in columns] + optional)
    tables.missing = {lo for lo in optional if tables.physical(lo).lower() not in
                      {table for table, _ in found}}
    mistyped = {}
    for logical, column, kind in columns:
        phys = tables.profile[logical]["columns"][column]
        declared = found.get((tables.physical(logical).lower(), phys.lower()))
        if declared is not None and not _fits(declared, kind):
            mistyped[(logical, column, kind)] = declared
    return _sampled(conn, tables, [
        (lo, c, k, sa.true(), f"a {_TYPE_EXPECTED[k]} column (it is declared {declared}); a "
                              "view that converts it will do")
        for (lo, c, k), declared in mistyped.items()], always=True)


def _sqlite_scan(conn: sa.Connection, tables: ErpTables,
                 checks: list[tuple[str, str, str, sa.ColumnElement[bool], str]],
                 optional: list[str]) -> tuple[list[bool], set[str]]:
    """Which checks find a bad value, and which enrichment tables exist: one statement, one
    pass per table (every checked column of a table in the same pass)."""
    if not checks and not optional:
        return [], set()
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
    master = sa.table("sqlite_master", sa.column("name"), sa.column("type"),
                      schema=tables.schema)
    names = (sa.select(sa.func.group_concat(sa.func.lower(master.c.name), "|"))
             .where(master.c.type.in_(["table", "view"]),
                    sa.func.lower(master.c.name).in_([tables.physical(lo).lower()
                                                      for lo in optional] or [""]))
             .scalar_subquery())
    stmt = sa.select(*[flags[n] for n in range(len(checks))], names)
    if scans:  # one row each: joined side by side
        joined = scans[0]
        for scan in scans[1:]:
            joined = joined.join(scan, sa.true())
        stmt = stmt.select_from(joined)
    *hits, present = conn.execute(stmt).one()
    return [bool(h) for h in hits], set((present or "").split("|"))


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
                    reporter: Reporter | None = None, timings: Timings | None = None) -> None:
    """Before the first fact is read: ``prepare``, and stop (exit 2) on values the tool cannot
    interpret, so nothing is written on a guess."""
    with step(reporter, timings, "check the data"):
        problems = prepare(conn, tables, run_reads(tables, rules))
    if problems:
        raise SchemaError("the ERP holds values keyservices cannot interpret; nothing was "
                          "written:\n" + "\n".join(f"  - {p}" for p in problems))


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


def _sampled(conn: sa.Connection, tables: ErpTables,
             checks: list[tuple[str, str, str, sa.ColumnElement[bool], str]],
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


__all__ = ["AMOUNTS", "DATES", "ENRICHMENTS", "FLAGS", "ensure_readable", "kind_of",
           "prepare"]
