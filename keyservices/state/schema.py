"""The state store's tables: runs, the audit of every change, the opportunity life cycle.

Created on first use; columns added by later versions are added on open (``migrate``).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from ..calls.lifecycle import REASON_UNVERIFIED

log = logging.getLogger("keyservices.state")

metadata = sa.MetaData()

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("erp", sa.String(512), nullable=False),  # the ERP URL, password masked
    sa.Column("property", sa.String(64), nullable=False),
    sa.Column("mode", sa.String(8), nullable=False),  # live | test
    sa.Column("baseline", sa.Boolean, nullable=False, default=False),
    sa.Column("status", sa.String(16), nullable=False),  # running | done | failed | guard
    sa.Column("exit_code", sa.Integer),
    sa.Column("message", sa.Text),
    sa.Column("counts", sa.Text),  # JSON
    sa.Column("timings", sa.Text),  # JSON
    sa.Column("statements", sa.Integer),
    sa.Column("pid", sa.Integer),
    sa.Column("host", sa.String(255)),
    # added later: the ERP as it names itself (server and database, or the resolved SQLite
    # file), so that a cosmetic URL edit is the same ERP and a copied install is not
    sa.Column("erp_id", sa.String(512)),
    # the run's changes reached a digest (a run killed mid-write has its changes carried over)
    sa.Column("reported", sa.Boolean),
    # the run's audit rows are stored and its write not yet settled: every one of its rows reads
    # as pending, whatever its status says (the status it will have once settled). Settling
    # clears it; the rows are written once, not rewritten by the settle.
    sa.Column("unsettled", sa.Boolean),
    # added later: the attribute's ShAttributeID (``property`` is its name as the ERP spells
    # it), so that every audit row (through its run) belongs to one ERP and one attribute
    sa.Column("attr_id", sa.Integer),
    # added later (#25): the company of a dealer group whose night this was (one company: the
    # dealer); a store made before it names its rows when a run first records one
    sa.Column("company", sa.String(128)),
)

changes = sa.Table(
    "changes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("customer_id", sa.Integer, nullable=False),
    sa.Column("customer_number", sa.String(32), nullable=False),
    sa.Column("customer_name", sa.String(128), nullable=False),
    sa.Column("before", sa.String(1024)),
    sa.Column("after", sa.String(1024)),
    sa.Column("added", sa.String(1024), nullable=False, default=""),
    sa.Column("removed", sa.String(1024), nullable=False, default=""),
    # pending: about to be written; applied; conflict: the ERP value changed since it was read
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    # added later (won and lost per branch and sales rep); see MIGRATIONS
    sa.Column("branch", sa.String(128)),
    sa.Column("sales_rep", sa.String(128)),
    # JSON {service code: annual value} of the services this change added (won/lost value)
    sa.Column("annual_values", sa.Text),
    # write.locations: the number of the parent whose value this location follows
    sa.Column("follows", sa.String(32)),
    # why: the change's causes (keyservices.engine.causes), one per line
    sa.Column("causes", sa.Text),
    sa.Column("company", sa.String(128)),  # the run's company, on every audit row (#25)
    sa.Index("ix_changes_customer", "customer_number"),
)

# One row per (customer, service) opportunity, kept across nights (keyservices.calls.lifecycle).
opportunities = sa.Table(
    "opportunities", metadata,
    sa.Column("customer_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("service_code", sa.String(32), primary_key=True),
    sa.Column("customer_number", sa.String(32), nullable=False),
    sa.Column("customer_name", sa.String(128), nullable=False),
    sa.Column("branch", sa.String(128)),
    sa.Column("owner", sa.String(128)),
    sa.Column("status", sa.String(16), nullable=False),  # new | open | won | closed | withdrawn
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("reason", sa.String(1024), nullable=False),
    sa.Column("first_seen", sa.Date, nullable=False),
    sa.Column("last_seen", sa.Date, nullable=False),
    sa.Column("closed_on", sa.Date),
    sa.Column("close_reason", sa.String(128)),
    sa.Column("snoozed_until", sa.Date),
    sa.Column("snooze_reason", sa.String(1024)),
    sa.Column("snoozed_by", sa.String(128)),
    sa.Column("dismissed", sa.Boolean, nullable=False, default=False),
    sa.Column("reopened", sa.Integer, nullable=False, default=0),
    # added later (#24): the play, the chance to win in 90 days and the expected value, as
    # tonight's one ranking gave them
    sa.Column("play", sa.String(128)),
    sa.Column("p_win", sa.Float),
    sa.Column("expected_value", sa.Float),
    sa.Index("ix_opportunities_customer", "customer_number"),
    sa.Index("ix_opportunities_status", "status"),
)

# One row per (customer, monitor) status alert firing now, with the night it was first seen
# (keyservices.calls.alertlife); a hit that clears is deleted, so when it comes back it is new.
alerts = sa.Table(
    "alerts", metadata,
    sa.Column("customer_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("monitor_code", sa.String(32), primary_key=True),
    sa.Column("first_seen", sa.Date, nullable=False),
)
# The win rates learned from the ERP's history (keyservices.calls.rates), the latest learning
# per ERP: one row per cell (play, service, industry, tier, fleet, services held) with its evidence.
win_rates = sa.Table(
    "win_rates", metadata,
    sa.Column("erp_id", sa.String(512), primary_key=True),
    sa.Column("play", sa.String(128), primary_key=True),
    sa.Column("service", sa.String(32), primary_key=True),
    sa.Column("industry", sa.String(128), primary_key=True),
    sa.Column("tier", sa.String(32), primary_key=True),
    sa.Column("fleet", sa.String(32), primary_key=True),
    sa.Column("held", sa.String(512), primary_key=True),
    sa.Column("offered", sa.Integer, nullable=False),
    sa.Column("won", sa.Integer, nullable=False),
    sa.Column("first_as_of", sa.Date, nullable=False),
    sa.Column("last_as_of", sa.Date, nullable=False),
    sa.Column("learned_on", sa.Date, nullable=False),
)
# The last backtest's scores per ERP (keyservices.calls.backtest ``Backtest.summary``), kept by
# ``backtest --save`` and a live run that learns its rates, for ``report`` to chart: one row per
# ERP, the summary as JSON (plain numbers; its shape is the one ``backtest --json`` prints).
backtests = sa.Table(
    "backtests", metadata,
    sa.Column("erp_id", sa.String(512), primary_key=True),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("made_at", sa.DateTime, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
)
# tables a store made by an earlier version may lack; a reader (dry run) treats them as empty
LATER_TABLES = frozenset({"alerts", "win_rates", "backtests"})
# the tables whose rows belong together: a store that has one and lacks the other was damaged
# (another table missing is made on open: the first version had only these two)
AUDIT_TABLES = frozenset({"runs", "changes"})

# Columns a state store made by an earlier version lacks: (table, column), added on open.
MIGRATIONS: tuple[tuple[sa.Table, str], ...] = (
    (runs, "erp_id"),
    (runs, "reported"),
    (runs, "unsettled"),
    (runs, "attr_id"),
    (changes, "branch"),
    (changes, "sales_rep"),
    (changes, "annual_values"),
    (changes, "follows"),
    (changes, "causes"),
    (opportunities, "play"),
    (opportunities, "p_win"),
    (opportunities, "expected_value"),
    (runs, "company"),
    (changes, "company"),
)

# The override fields belong to 'keyservices opportunity snooze/dismiss/unsnooze': the nightly
# upsert never overwrites them, so an override set while a run is working is not lost.
OVERRIDE_FIELDS = ("snoozed_until", "snooze_reason", "snoozed_by", "dismissed")
LIFECYCLE_FIELDS = tuple(c.name for c in opportunities.columns
                          if c.name not in ("customer_id", "service_code", *OVERRIDE_FIELDS))


def migrate(engine: sa.Engine) -> None:
    """Add the columns a state store created by an earlier version lacks (ADD COLUMN, nullable)."""
    inspector = sa.inspect(engine)
    quote = engine.dialect.identifier_preparer.quote
    for table, name in MIGRATIONS:
        if name in {c["name"] for c in inspector.get_columns(table.name)}:
            continue
        column = table.c[name]
        log.info("state store: adding column %s.%s (new in this version)", table.name, name)
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(name)} "
                                 f"{column.type.compile(dialect=engine.dialect)}"))
            if column is runs.c.unsettled:  # in the same transaction as the column
                _flag_unsettled_runs(conn)
            if column is opportunities.c.play:  # the first open by a version that ranks
                _unverified_wins(conn, engine.dialect.name)


def _unverified_wins(conn: sa.Connection, dialect: str) -> None:
    """An earlier version credited a win whenever the service appeared (a deactivated machine
    could win a contract offer): its wins are marked not verified, and the status column is
    widened for "withdrawn" where the database holds it to its length."""
    if dialect == "postgresql":
        conn.execute(sa.text("ALTER TABLE opportunities ALTER COLUMN status TYPE VARCHAR(16)"))
    conn.execute(opportunities.update()
                 .where(opportunities.c.status == "won",
                        opportunities.c.close_reason == "service appeared")
                 .values(close_reason=REASON_UNVERIFIED))


def _flag_unsettled_runs(conn: sa.Connection) -> None:
    """An earlier version kept the pending mark on each audit row (status 'pending'): the runs
    with such rows are flagged, so that the next run settles them (``reconcile``)."""
    pending = sa.select(changes.c.run_id).where(changes.c.status == "pending").distinct()
    conn.execute(runs.update().where(runs.c.id.in_(pending)).values(unsettled=True))


def verify(engine: sa.Engine) -> list[str]:
    """What in the state store's tables differs from what this version reads and writes.

    Checked when the store opens, before the ERP is touched: a store changed by hand or by
    another version must stop the run at once, not halfway through the write.
    """
    inspector = sa.inspect(engine)
    present = set(inspector.get_table_names())
    problems = []
    for table in metadata.sorted_tables:
        if table.name not in present:
            problems.append(f"table {table.name} is missing")
            continue
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        missing = [c.name for c in table.columns if c.name not in columns]
        if missing:
            problems.append(f"table {table.name} lacks column(s) {', '.join(missing)}")
    return problems


def missing_tables(engine: sa.Engine) -> list[str]:
    """The tables a store that exists lacks (a new, empty database lacks none: it is created).

    A store missing ``runs`` while it holds audit rows must never be recreated around them:
    the old rows would belong to the new run 1.
    """
    present = set(sa.inspect(engine).get_table_names())
    ours = {t.name for t in metadata.sorted_tables}
    missing = sorted(AUDIT_TABLES - present)
    if not present & ours or not missing:
        return []
    # a first run killed while it made the store leaves some tables, all empty (SQLite makes
    # each table in a transaction of its own): that store is still new, not damaged
    with engine.connect() as conn:
        if not any(conn.execute(sa.select(sa.literal(1)).select_from(metadata.tables[name])
                                .limit(1)).first() for name in AUDIT_TABLES & present):
            return []
    return [f"table {name} is missing" for name in missing]


def consistency(engine: sa.Engine) -> list[str]:
    """Audit rows whose run is not in ``runs`` (a table emptied or recreated by hand): two
    lookups on the run index, however long the audit."""
    with engine.connect() as conn:
        low, high = conn.execute(sa.select(sa.func.min(changes.c.run_id),
                                           sa.func.max(changes.c.run_id))).one()
        if low is None:
            return []
        known = set(conn.execute(sa.select(runs.c.id).where(runs.c.id.in_([low, high])))
                    .scalars())
    gone = sorted({low, high} - known)
    if not gone:
        return []
    return [(f"audit rows of run(s) {', '.join(map(str, gone))} have no run record (the runs "
             "table was emptied or recreated)")]
