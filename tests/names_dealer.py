"""A small demo dealer whose ERP names are what real ERPs hold on a bad day: Polish letters and an
emoji, Rich markup, terminal escape sequences, other control characters, and spreadsheet formulas.

Shared by the terminal, console-encoding and CSV tests. Two live nights have run (so the audit
and the opportunity list hold these names) and a third day has happened in the ERP, so a dry run
as of ``NIGHT3`` has a plan to print.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import sqlalchemy as sa

from keyservices import demodb
from keyservices.commands.demo import CONFIG_TEMPLATE
from keyservices.commands.run import run
from keyservices.config import load_config
from keyservices.resources import example_rules_dir

NIGHT1 = dt.date(2026, 11, 24)
NIGHT2 = NIGHT1 + dt.timedelta(days=1)
NIGHT3 = NIGHT2 + dt.timedelta(days=1)

POLISH = "Łódź Print 😀"
LINK = "[link=https://evil.example]click[/link]"
HOSTILE = [
    POLISH,
    LINK,
    "[/red] closing tag",
    "\x1b[2J\x1b[HCleared",            # ESC: clear the screen, cursor home
    "Bell\x07 and\rCR",                 # BEL, a carriage return that overwrites the line
    "\x9b31mC1 CSI",                    # the one-byte C1 control sequence introducer
    "Line\nbreak",
    '=HYPERLINK("https://evil.example","x")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\tTabbed",
]
FIRST_NUMBER_SQL = sa.text("SELECT CustomerNumber FROM ARCustomers ORDER BY CustomerID LIMIT 1")


def build(directory: Path, customers: int = 150) -> Path:
    """The dealer in ``directory``; returns its config.yaml. The first customer is named exactly
    POLISH, every other "<one of HOSTILE> <its demo name>"."""
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "erp.sqlite"
    # without the two years of adoption: the names, not the history, are what is tested
    demodb.build_demo_db(db, customers=customers, seed=42, as_of=NIGHT1, history=False)
    engine = sa.create_engine(f"sqlite:///{db.as_posix()}")
    try:
        with engine.begin() as conn:
            rows = conn.execute(sa.text("SELECT CustomerID, CustomerName FROM ARCustomers "
                                        "ORDER BY CustomerID")).all()
            for i, (cid, name) in enumerate(rows):
                new = POLISH if i == 0 else f"{HOSTILE[i % len(HOSTILE)]} {name}"
                conn.execute(sa.text("UPDATE ARCustomers SET CustomerName = :n "
                                     "WHERE CustomerID = :i"), {"n": new, "i": cid})
            # a branch and a sales rep as hostile as the names (the report groups by them)
            conn.execute(sa.text("UPDATE GLBranches SET Description = '=1+1 ' || Description "
                                 "WHERE BranchID = (SELECT MIN(BranchID) FROM GLBranches)"))
            conn.execute(sa.text("UPDATE SHAgents SET PrefFullName = '@' || PrefFullName "
                                 "WHERE AgentID = (SELECT MIN(AgentID) FROM SHAgents)"))
        shutil.copytree(example_rules_dir(), directory / "rules")
        path = directory / "config.yaml"
        path.write_text(CONFIG_TEMPLATE, encoding="utf-8")
        config = load_config(path)
        run(config, as_of=NIGHT1)
        demodb.simulate_next_day(engine, day=NIGHT2, seed=43)
        run(config, as_of=NIGHT2)
        demodb.simulate_next_day(engine, day=NIGHT3, seed=44)
        with engine.begin() as conn:  # edited in the ERP: night 3's plan restores the values of
            # the first parents (POLISH, LINK, "[/red] ...", "Bell...", ...)
            conn.execute(sa.text("UPDATE ARCustomerCustomProperties SET TextVal = NULL WHERE "
                                 "CustomerID IN (SELECT CustomerID FROM ARCustomers WHERE "
                                 "LocationID IS NULL ORDER BY CustomerID LIMIT 6) AND "
                                 "ShAttributeID = (SELECT ShAttributeID FROM ShAttributes "
                                 "WHERE AttributeName = 'ZCJKeyServices')"))
    finally:
        engine.dispose()
    return path


def first_number(config_path: Path) -> str:
    """The customer number of the customer named exactly POLISH."""
    engine = sa.create_engine(f"sqlite:///{(config_path.parent / 'erp.sqlite').as_posix()}")
    try:
        with engine.connect() as conn:
            return str(conn.execute(FIRST_NUMBER_SQL).scalar_one())
    finally:
        engine.dispose()


def number_named(config_path: Path, start: str) -> str:
    """The number of the first customer whose name starts with ``start`` (one of HOSTILE)."""
    engine = sa.create_engine(f"sqlite:///{(config_path.parent / 'erp.sqlite').as_posix()}")
    try:
        with engine.connect() as conn:
            names = conn.execute(sa.text("SELECT CustomerNumber, CustomerName FROM ARCustomers "
                                         "WHERE Active = 1 ORDER BY CustomerID")).all()
    finally:
        engine.dispose()
    return next(str(number) for number, name in names if name.startswith(start))
