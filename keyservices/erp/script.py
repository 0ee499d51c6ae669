"""One night's statements as a script a DBA can read and paste (``check --show-sql``).

Like alembic's ``--sql`` mode: every statement the run sends, in the order it sends them, built by
the same functions the run calls, with the values written into the text. Values only the run
knows appear as placeholders that are still valid SQL: ``(NULL /* what goes here */)`` for an id
list read from a code table, the customers of a write chunk or the customers an alert names, and
(on SQL Server) a ``DECLARE`` for the attribute id and for the row of a write. With the dealer's
own ids (``check --show-sql --with-ids``) the code lists and the attribute are written in as the
run sends them.

Why not ``literal_binds`` alone: SQLAlchemy leaves ``__[POSTCOMPILE_...]`` markers for lists, writes
dates in a format SQL Server reads by the login's language (``'2026-11-24 00:00:00'`` fails under
``SET DATEFORMAT dmy``) and non-ASCII text without ``N''``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BinaryExpression, BindParameter

from ..calls.cross_sell import uncovered_offers
from ..engine.metrics import Codes, Column, NotCompilable, compile_rules
from ..rules import RuleSet
from .connection import ErpTables, attribute_statement
from .contacts import contacts_statement
from .facts import code_list_statements
from .history import history_statements
from .lines import lines_statement
from .queries import customers_query, fact_queries, metric_queries
from .renewals import renewals_statement
from .writeback import read_back_statement, update_statements

ATTRIBUTE_KEYS = frozenset({"attr_id", "b_attr"})
# the row of one change in a write chunk: bind key -> (T-SQL variable, type, what the run sends)
ROW_VARIABLES: dict[str, tuple[str, str, str]] = {
    "b_customer_id": ("customer_id", "int", "the CustomerID of one change"),
    "b_after": ("after", "nvarchar(1024)", "its new value (NULL clears it)"),
    "b_before": ("before", "nvarchar(1024)", "the value read tonight (the guard)"),
}
RUN_TIME_LISTS = {"ids": "the CustomerIDs of this chunk, up to 1,000 a statement",
                  "owners": "the CustomerIDs whose uncovered-machines offers close tonight",
                  "listed": "the CustomerIDs tonight's digest lists (status alerts, the "
                            "opportunities of rep and branch copies)"}
# a filtered id column -> the Codes list and the code table its ids come from
_CODE_LISTS = {"category_id": ("categories", "model_categories"),
               "contract_code_id": ("contract_codes", "contract_codes"),
               "bill_code_id": ("bill_codes", "bill_codes"),
               "status_id": ("statuses", "contract_statuses"),
               "account_id": ("accounts", "gl_accounts"),
               "item_category_id": ("item_categories", "item_categories")}
LINES_NOTE = ("sent only when an uncovered-machines offer closes: the contract lines started since "
              "the offer that may have won it")


def learn_note(every_days: int, dates: int) -> str:
    """When the win-rate learning statements are sent (``night.rates_for``)."""
    when = (f"sent once a week (ranking.learn_every_days: {every_days} days)" if every_days == 7
            else f"sent once every {every_days} days (ranking.learn_every_days)" if every_days
            else "sent when no stored win rates fit the night's date (ranking.learn_every_days: "
                 "0)")
    return (f"{when}, to learn the win rates from the ERP's history on {dates} past dates; "
            "the code lists and customers above are read again first")


WRITE_NOTE = ("sent once per chunk of up to write.chunk_size changes, each chunk one short "
              "transaction; on SQL Server the chunk's rows go as one batch (fast_executemany)")


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of the night, and when the run sends it."""

    name: str
    statement: sa.ClauseElement | str
    note: str = ""


def night_steps(tables: ErpTables, rules: RuleSet, codes: Codes, needed: set[str],
                extra: Sequence[Column], as_of: dt.date, *, attr_id: int = 0,
                session: Sequence[str] = (), listed: bool = False,
                renewals_days: int = 0, learn: Sequence[Column] | None = None,
                learn_dates: Sequence[dt.date] = (), learn_every: int = 7) -> list[Step]:
    """Every statement of a live run, in run order: the session settings, the attribute, the code
    lists, the customers, one aggregate per kind of fact (or the per-code detail when the rules
    cannot be compiled to numbers, as ``read_facts`` falls back), the win-rate learning on
    ``learn_dates`` with the ``learn`` columns (None: the rules find no calls), the contacts
    for alerts and the rep and branch copies (``listed``), the renewals (``renewals_days``),
    the contract lines of closing uncovered-machines offers, and the guarded UPDATEs with their
    read-back."""
    steps = [Step("session settings", "\n".join(f"{s};" for s in session),
                  "run on each new connection")] if session else []
    steps.append(Step("attribute id", attribute_statement(tables, rules.property)))
    steps += [Step(f"code list: {name}", stmt)
              for name, stmt in code_list_statements(tables, needed)]
    steps.append(Step("customers", customers_query(tables, rules, attr_id)))
    if learn is not None and learn_dates:  # before the night's facts (night.compute)
        note = learn_note(learn_every, len(learn_dates))
        try:
            history = history_statements(tables, compile_rules(rules, codes, learn), learn_dates)
        except NotCompilable:  # rules read per code: the history has no statements for them
            history = []
        steps += [Step(f"learn the win rates: {kind}", stmt, note) for kind, stmt in history]
    try:
        compiled = compile_rules(rules, codes, extra)
        facts = {kind: stmt for kind, (stmt, _) in metric_queries(tables, compiled, as_of).items()}
        note = ""
    except NotCompilable as exc:
        facts = fact_queries(tables, rules, list(codes.categories.values()), as_of)
        note = f"per-code detail: {exc}, so the rules are evaluated row by row"
    steps += [Step(f"facts: {kind}", stmt, note) for kind, stmt in facts.items()]
    if rules.monitors or (listed and rules.opportunities is not None):
        steps.append(Step("contacts", contacts_statement(tables, {0}),
                          "only when tonight's digest lists customers (status alerts, the "
                          "opportunities of rep and branch copies)"))
    if renewals_days:
        steps.append(Step("renewals", renewals_statement(tables, as_of, renewals_days),
                          "digest.renewals_ics: the sales reps' renewal calendars"))
    offers = uncovered_offers(rules, codes)
    if offers:
        steps.append(Step("contract lines of closing uncovered-machines offers", lines_statement(
            tables, {0}, set().union(*offers.values()), as_of,
            parent_level=rules.level == "parent"), LINES_NOTE))
    when_null, when_text = update_statements(tables, attr_id)
    steps += [Step("update (value was empty)", when_null, WRITE_NOTE),
              Step("update (value was text)", when_text, WRITE_NOTE),
              Step("read-back", read_back_statement(tables, attr_id, [0]),
                   "in a chunk's transaction, after its UPDATEs, only when the driver cannot "
                   "say that every row was updated (SQL Server's fast_executemany, or a value "
                   "edited since it was read); also settles the audit of an unfinished run")]
    return steps


class Printer:
    """Renders steps for one dialect, the values written in.

    ``attribute``: the attribute id when known (else looked up by name in the text);
    ``examples``: the stand-in code lists used to build the statements without a connection
    (their id lists print as placeholders naming the globs), or None when the ids are real.
    """

    def __init__(self, dialect: sa.Dialect, tables: ErpTables, rules: RuleSet, *,
                 attribute: int | None, examples: Codes | None) -> None:
        self.dialect = dialect
        self.tsql = dialect.name == "mssql"
        self.tables = tables
        self.attribute = attribute
        self.examples = examples
        a = tables.attributes
        self._lookup = self._compile(sa.select(a.c.id).where(a.c.name == rules.property), {})

    def sql(self, step: Step) -> str:
        """The step as text: a comment saying when it is sent, DECLAREs, the statement."""
        lines = [f"-- {step.note}"] if step.note else []
        if isinstance(step.statement, str):
            return "\n".join([*lines, step.statement])
        keys = {el.key for el in visitors.iterate(step.statement)
                if isinstance(el, BindParameter)}
        if self.tsql and self.attribute is None and keys & ATTRIBUTE_KEYS:
            lines.append(f"DECLARE @attribute_id int = ({self._lookup});")
        if self.tsql:
            lines += [f"DECLARE @{var} {type_} = NULL;  -- {what}"
                      for key, (var, type_, what) in ROW_VARIABLES.items() if key in keys]
        body = self._compile(step.statement, self._placeholders(step.statement))
        return "\n".join([*lines, f"{body};"])

    def _compile(self, stmt: sa.ClauseElement, placeholders: Mapping[str, str]) -> str:
        def replace(element: Any, **kw: Any) -> Any:
            if isinstance(element, BindParameter):
                text = self._bind_text(element, placeholders)
                if text is not None:
                    return sa.literal_column(text, type_=element.type)
            return None

        # a copy of ``stmt``, of its class; the stubs only say "something traversible"
        rendered = cast(sa.ClauseElement, visitors.replacement_traverse(stmt, {}, replace))
        return str(rendered.compile(dialect=self.dialect,
                                    compile_kwargs={"literal_binds": True,
                                                    "render_postcompile": True})).strip()

    def _bind_text(self, bind: BindParameter, placeholders: Mapping[str, str]) -> str | None:
        key = bind.key
        if key in ATTRIBUTE_KEYS:
            if self.attribute is not None:
                return str(int(self.attribute))
            return "@attribute_id" if self.tsql else f"({self._lookup})"
        if key in ROW_VARIABLES:
            var, _, what = ROW_VARIABLES[key]
            return f"@{var}" if self.tsql else f"NULL /* {_comment(what)} */"
        if key in placeholders:
            return f"(NULL /* {_comment(placeholders[key])} */)"
        if self.tsql:
            value = bind.effective_value
            if isinstance(value, list | tuple):
                return "(" + ", ".join(tsql_literal(v) for v in value) + ")" if value else "(NULL)"
            return tsql_literal(value)
        return None  # the dialect's own literal rendering

    def _placeholders(self, stmt: sa.ClauseElement) -> dict[str, str]:
        """Bind key -> what the run puts in that list, for lists this script cannot know."""
        out = {}
        for el in visitors.iterate(stmt):
            if not (isinstance(el, BinaryExpression) and isinstance(el.right, BindParameter)
                    and el.right.expanding):
                continue
            key = el.right.key
            if key in RUN_TIME_LISTS:
                out[key] = RUN_TIME_LISTS[key]
            elif self.examples is not None:
                out[key] = self._describe(el.left, el.right.effective_value or [])
        return out

    def _describe(self, column: Any, values: Sequence[Any]) -> str:
        """What an id list holds at run time, with the globs that select it."""
        logical = getattr(column, "key", "")
        if logical in _CODE_LISTS and self.examples is not None:
            listed, table = _CODE_LISTS[logical]
            names = getattr(self.examples, listed)
            globs = sorted({str(names.get(v, v)) for v in values})
            return (f"ids from {self.tables.physical(table)} matching {', '.join(globs)}: read "
                    f"at run time")
        return (f"{getattr(column, 'name', logical)} values matching "
                f"{', '.join(sorted(map(str, values)))}: read at run time")


def tsql_literal(value: Any) -> str:
    """A value as T-SQL reads it whatever the login's language: ISO dates with a T, N'' text."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.datetime):
        spec = "milliseconds" if value.microsecond else "seconds"
        return f"CAST('{value.replace(tzinfo=None).isoformat(timespec=spec)}' AS DATETIME)"
    if isinstance(value, dt.date):
        return f"CAST('{value.isoformat()}' AS DATE)"
    if isinstance(value, str):
        return "N'" + value.replace("'", "''") + "'"
    raise TypeError(f"no T-SQL literal for {type(value).__name__}")


def _comment(text: str) -> str:
    """Text safe inside /* */."""
    return text.replace("*/", "* /").replace("/*", "/ *")
