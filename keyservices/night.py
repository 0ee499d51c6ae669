"""One night's numbers: open the ERP, read the facts, classify, work out who to call.

``run``, ``explain``, both exports and ``report`` all go through ``compute``. What they do with
the result differs (write, show, export, count); how the numbers are made does not, so the five
can never disagree about a customer.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from . import calls as calls_mod
from .calls.backtest import HORIZON_DAYS, Backtest, as_of_dates, run_backtest
from .calls.monitors import Contact
from .calls.rates import Rates
from .calls.tonight import monitors_naming_contacts
from .calls.wonlost import ValueColumns
from .config import Config
from .engine.classify import Classification, classify
from .engine.metrics import NotCompilable
from .erp import ErpTables, StatementCounter, attribute, connect, verify_schema, wrap_db_error
from .erp.contacts import read_contacts
from .erp.dated import note_absent
from .erp.facts import read_facts
from .erp.history import read_history
from .erp.identity import database_identity
from .erp.needs import needed_tables, unused_columns
from .erp.renewals import read_renewals
from .erp.shapes import ValueCheck, ensure_readable
from .errors import ConfigError, KeyservicesError, SchemaError
from .model import Facts, Renewal
from .progress import Beside, Reporter, Timings, gc_paused, step
from .rules import RuleSet, load_rules
from .state import StateStore
from .state.rates import load_rates

log = logging.getLogger("keyservices")


def rules_for(config: Config) -> RuleSet:
    """The configured rules, validated completely (before any database is touched), and checked
    against the settings that depend on them."""
    rules = load_rules(config.rules)
    if config.write.locations and rules.level != "parent":
        where = config.sources.get("write.locations", "config")
        raise ConfigError(
            f"write.locations: true ({where}) writes each parent's value to its locations, which "
            f"needs level: parent, but the rules in {config.rules} set level: {rules.level} "
            "(every record is already judged and written on its own). Remove write.locations "
            "from the config, or set level: parent in the rules.")
    return rules


def reads_contacts(config: Config, rules: RuleSet) -> bool:
    """Whether a run reads the contacts table: a monitor text shows a contact, or a rep or
    branch copy prints whom to call. Otherwise it is neither read nor required."""
    copies = bool(config.digest.sales_reps or config.digest.branches)
    return bool(monitors_naming_contacts(rules)) or (
        copies and (bool(rules.monitors) or rules.opportunities is not None))


def tables_for(config: Config, rules: RuleSet) -> ErpTables:
    """The ERP tables as the profile maps them, plus the columns these rules add."""
    extra = {}
    if rules.industry_source.startswith("column:"):
        extra["customers"] = [rules.industry_source.split(":", 1)[1]]
    return ErpTables(config.erp.profile and {k: v.model_dump() for k, v in config.erp.profile.items()},
                     config.erp.db_schema, extra)


def engine_for(config: Config) -> sa.Engine:
    """The ERP engine, with the password from the environment and the configured timeout."""
    return connect(config.erp.url, password=config.erp_password(),
                   connect_timeout=config.erp.connect_timeout,
                   read_isolation=config.erp.read_isolation,
                   lock_timeout_seconds=config.erp.lock_timeout_seconds)


@dataclass
class Erp:
    """The dealer's database for the length of one command: engine, tables, statement count."""

    config: Config
    rules: RuleSet
    tables: ErpTables
    engine: sa.Engine
    counter: StatementCounter
    _attribute: tuple[int, str] | None = None
    _identity: str | None = None
    _dated: bool = False

    def attribute(self) -> tuple[int, str]:
        """The rules' property as the ERP knows it: its id and its name as the ERP spells it
        (looked up once). The state store keys runs by these, never by the config's spelling."""
        if self._attribute is None:
            with self.engine.connect() as conn:
                self._attribute = attribute(conn, self.tables, self.rules.property)
        return self._attribute

    def attribute_id(self) -> int:
        """The id of the rules' property (looked up once)."""
        return self.attribute()[0]

    def identity(self) -> str:
        """The database by what it says about itself (server and database, or the file),
        asked once."""
        if self._identity is None:
            with self.engine.connect() as conn:
                self._identity = database_identity(conn)
        return self._identity

    def note_dated(self, conn: sa.Connection) -> None:
        """Which optional dated columns the database has (asked once): the statements built
        after this leave out the ones it lacks."""
        if not self._dated:
            self._dated = True
            note_absent(conn, self.tables, needed_tables(self.rules, self.tables))

    def contacts(self, ids: set[int]) -> dict[int, Contact]:
        """The best contact of each of these customers: one more query, kept to the few named."""
        with self.engine.connect() as conn:
            return read_contacts(conn, self.tables, ids)


@contextmanager
def open_erp(config: Config, rules: RuleSet | None = None) -> Iterator[Erp]:
    """The ERP, open for one command and disposed after it; a failed statement is explained (a
    missing table is a setup problem, exit 2; anything else an outage, exit 1)."""
    rules = rules or rules_for(config)
    tables = tables_for(config, rules)
    engine = engine_for(config)
    counter = StatementCounter()
    sa.event.listen(engine, "before_cursor_execute", counter)
    erp = Erp(config, rules, tables, engine, counter)
    try:
        yield erp
    except SQLAlchemyError as exc:
        raise explain_db_error(exc, erp) from exc
    finally:
        engine.dispose()


def explain_db_error(exc: SQLAlchemyError, erp: Erp) -> KeyservicesError:
    """A failed statement may mean a missing table or column (a setup problem, exit 2) rather
    than an outage (exit 1); the schema is inspected only on this unhappy path."""
    try:
        with erp.engine.connect() as conn:
            contacts = reads_contacts(erp.config, erp.rules)
            problems = verify_schema(conn, erp.tables,
                                     needed_tables(erp.rules, contacts=contacts),
                                     unused_columns(erp.rules, contacts=contacts))
    except SQLAlchemyError:
        problems = []
    if problems:
        return SchemaError("the ERP database is not as configured:\n" + "\n".join(
            f"  - {p}" for p in problems))
    return wrap_db_error(exc, erp.config.erp.url)


@dataclass
class Night:
    """Everything one night computes before anything is written or sent."""

    as_of: dt.date
    rules: RuleSet
    attribute_id: int
    facts: Facts
    classification: Classification
    values: ValueColumns | None  # contract value per service (won/lost, report)
    calls: calls_mod.Calls | None  # opportunities and alerts (None: not asked for)
    statements: int  # statements read, the attribute lookup included
    timings: Timings = field(default_factory=Timings)
    renewals: list[Renewal] = field(default_factory=list)  # listing.renewals_days: the calendar
    check: ValueCheck | None = None  # the verdict on the values, until ``settle``
    rates: Rates | None = None  # the win rates the calls were ranked with
    backtest: Backtest | None = None  # the backtest that learned them tonight (a live run
    # keeps both: the rates for the next nights, its scores for ``report``)

    @property
    def learned(self) -> bool:
        """Whether the rates were learned tonight (not read from the state store)."""
        return self.backtest is not None

    def settle(self, erp: Erp, reporter: Reporter | None = None) -> None:
        """Wait for the check of the values; ``SchemaError`` (exit 2) if the ERP holds values
        the tool cannot interpret. Before anything is written or shown."""
        if self.check is not None:
            check, self.check = self.check, None
            try:
                check.verdict(erp.engine, reporter=reporter, timings=self.timings)
            finally:
                self.statements += check.statements

    @contextmanager
    def explaining(self, erp: Erp) -> Iterator[None]:
        """Until ``settle``: a failure waits for the verdict, which explains it better."""
        if self.check is None:
            yield
            return
        with self.check.explaining(erp.engine):
            yield



def compute(config: Config, as_of: dt.date | None = None, *, erp: Erp,
            reporter: Reporter | None = None, timings: Timings | None = None,
            values: bool = True, calls: bool = True,
            alert_limit: int | None = calls_mod.ALERTS_PER_MONITOR_AND_BRANCH,
            listing: calls_mod.Listing | Future[calls_mod.Listing] | None = None,
            settle: bool = True, beside: Beside | None = None) -> Night:
    """Read the facts (a constant number of set-based statements), classify every customer and,
    with ``calls``, work out tonight's opportunities and status alerts.

    ``erp`` is the open database (``open_erp``); the caller keeps it for what follows (writing,
    reading contacts). ``alert_limit`` caps the alert texts rendered per monitor and branch
    (None: all, for the alerts export). ``listing`` says what the digest will list (alerts
    seen on earlier nights, the rep and branch copies whose contacts are read, renewals); it
    may still be read from the state store on the ``beside`` thread (a ``Future`` of it), which
    is let go once the customers are read (``progress.Beside``).

    The check of the values runs on a second connection while Python classifies (see
    ``erp.shapes``). With ``settle`` (the default) ``compute`` waits for its verdict; a caller
    that has more to work out first passes ``settle=False`` and must call ``Night.settle``
    before it writes or shows anything (and inside ``Night.explaining`` meanwhile).
    """
    as_of = as_of or dt.date.today()
    timings = timings if timings is not None else Timings()
    rules = erp.rules
    attr = erp.attribute_id()
    rates: Rates | None = None
    learned: Backtest | None = None
    erp.counter.count = 0
    value_columns = ValueColumns(rules) if values else None
    extra = ([value_columns] if value_columns is not None else []) + (
        calls_mod.extras(rules) if calls else [])
    with gc_paused():
        with erp.engine.connect() as conn:
            erp.note_dated(conn)
            check = ensure_readable(conn, erp.tables, rules, reporter=reporter, timings=timings,
                                    contacts=reads_contacts(config, rules))
            if calls and rules.opportunities is not None:
                # stored, or learned from the history before ``as_of`` (weekly at most), before
                # the night's own facts are read, so the learning's dates and the night's facts
                # are not held at once, and before the scan of the values starts (one big
                # statement at a time); that scan covers the columns these reads use, and a
                # failure here waits for its verdict. Its statements are the week's.
                with check.explaining(erp.engine):
                    sent = erp.counter.count
                    rates, learned = rates_for(config, erp, as_of, reporter=reporter,
                                               timings=timings)
                    erp.counter.count = sent
            with check.explaining(erp.engine):
                facts = read_facts(conn, erp.tables, rules, attr, as_of, reporter=reporter,
                                   timings=timings, extra=extra, beside=beside)
        # the scan of the values runs now, on a second connection, while Python works
        check.start(erp.engine)
        if isinstance(listing, Future):
            listing = beside.result(listing) if beside is not None else listing.result()
        with check.explaining(erp.engine):
            with step(reporter, timings, "classify", total=len(facts.customers)) as advance:
                classification = classify(facts, rules)
                if facts.metrics is not None:
                    facts.metrics.release()
                advance(len(facts.customers))
            tonight = None
            if calls:
                with step(reporter, timings, "opportunities") as advance:
                    tonight = calls_mod.who_to_call(facts, classification, rules,
                                                    erp.contacts, alert_limit=alert_limit,
                                                    listing=listing, rates=rates)
                    advance(len(tonight.opportunities))
            renewals: list[Renewal] = []
            if listing is not None and listing.renewals_days and listing.sales_reps:
                with erp.engine.connect() as conn:
                    renewals = read_renewals(conn, erp.tables, as_of, facts.customers,
                                             listing.sales_reps, days=listing.renewals_days)
    done = Night(as_of=as_of, rules=rules, attribute_id=attr, facts=facts,
                 classification=classification, values=value_columns, calls=tonight,
                 statements=erp.counter.count + 1, timings=timings, renewals=renewals,
                 check=check, rates=rates, backtest=learned)
    if settle:
        done.settle(erp, reporter=reporter)
    return done


def rates_for(config: Config, erp: Erp, as_of: dt.date, *, reporter: Reporter | None = None,
              timings: Timings | None = None) -> tuple[Rates, Backtest | None]:
    """The win rates to rank ``as_of``'s calls with, and the backtest that learned them just
    now (None: the stored ones).

    The stored ones (``backtest --save``, or a live run) when they were learned from outcomes
    known by ``as_of`` and at most ``ranking.learn_every_days`` before it (0: however old);
    else learned now from the ERP's history before ``as_of``, so that a list as of a past date
    never uses what happened after it."""
    reader = StateStore.reader(config.state_url)
    stored = None
    if reader is not None:
        try:
            stored = load_rates(reader.engine, erp.identity())
        finally:
            reader.close()
    every = config.ranking.learn_every_days
    if stored is not None and stored.learned_on is not None and stored.last is not None \
            and stored.last + dt.timedelta(days=HORIZON_DAYS) <= as_of \
            and (not every or as_of - stored.learned_on <= dt.timedelta(days=every)):
        return stored, None
    try:
        result = learn(erp, as_of, config.ranking.months, reporter, timings or Timings(),
                       check=False)[0]
    except NotCompilable as exc:  # the night reads these rules' detail; the history cannot
        log.warning("the win rates cannot be learned from the ERP's history: %s (the history "
                    "is read as numbers the database adds up). The calls are ranked with %s; "
                    "'keyservices backtest' says the same.", exc,
                    "the rates learned earlier" if stored is not None else
                    "no learned rates (each call at the prior, by its value)")
        return (stored if stored is not None else Rates.learn([])), None
    return result.rates, result


def learn(erp: Erp, as_of: dt.date, months: int, reporter: Reporter | None,
          timings: Timings, keep: bool = False, check: bool = True) -> tuple[Backtest, int]:
    """The backtest over ``months`` as-of dates before ``as_of`` (``calls.backtest``), read
    from the ERP's dated history in one statement per kind of fact; and the statements sent.
    ``check``: the values these reads interpret are checked beside them, on a second
    connection, with the verdict before anything is returned (the night checks its own). A
    dealer above ``ranking.learn_customers`` is learned from a sample of
    its customer groups (``erp.history.sample_groups``; the backtest's limits name it): rates
    per cell need a few hundred thousand customers, and time and memory follow the sample."""
    rules = erp.rules
    extra = calls_mod.extras(rules)  # the monitors' too: their hits are calls (monitor plays)
    before = erp.counter.count
    with step(reporter, timings, "learn win rates") as advance, gc_paused():
        with erp.engine.connect() as conn:
            erp.note_dated(conn)
            # the scan of the values runs beside the reads, on a second connection; nothing
            # is saved before its verdict, and a failure meanwhile waits for it
            values = ensure_readable(conn, erp.tables, rules, contacts=False) if check else None
            if values is not None:
                values.start(erp.engine)
            with values.explaining(erp.engine) if values is not None else nullcontext():
                rebuilt = read_history(conn, erp.tables, rules, erp.attribute_id(),
                                       as_of_dates(as_of, months), extra,
                                       limit=erp.config.ranking.learn_customers)
                result = run_backtest(rebuilt.facts, rules, limits=rebuilt.limits,
                                      names=rules.service_names(), keep=keep,
                                      last=rebuilt.points[-1])
            if values is not None:
                values.verdict(erp.engine)
        advance(result.rates.offered)
    return result, erp.counter.count - before
