"""Integer flags on PostgreSQL (issue #26): a database whose Active/Prospect/Void columns are
declared ``smallint`` passed ``check`` and then failed the run with "operator does not exist:
smallint = boolean". A flag is compared the way its declared type needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import keyservices
from keyservices.cli import cli

from .conftest import AS_OF, postgres_erp, write_config

pytestmark = pytest.mark.postgres

# (table, column) of every flag the run reads
FLAG_COLUMNS = [("ARCustomers", "Active"), ("ARCustomers", "Prospect"),
                ("SCEquipments", "Active"), ("SCContracts", "Active"), ("ARInvoices", "Void")]


def night(pg_server: str, folder: Path, runner: CliRunner, *, smallint: bool) -> list[Any]:
    """The values a night writes on a small dealer, with boolean or smallint flags."""
    gen = postgres_erp(pg_server)
    erp = next(gen)
    try:
        ids = []
        for i, (active, code) in enumerate([(True, "MPS-FLEET"), (False, "COPY-MAINT"),
                                            (True, None), (False, None)]):
            cid = erp.customer(f"COP{i:03d}", f"Copier {i}", active=i != 3)
            erp.equipment(cid, "MFP-A3-CO-03", active=active)
            if code:
                erp.contract(cid, code, active=active)
            ids.append(cid)
        with erp.engine.begin() as conn:
            for table, column in FLAG_COLUMNS if smallint else []:
                exists = conn.execute(sa.text(
                    "SELECT 1 FROM information_schema.columns WHERE table_schema = :s AND "
                    "table_name = :t AND column_name = :c"),
                    {"s": erp.schema, "t": table, "c": column}).first()
                if exists:
                    conn.execute(sa.text(
                        f'ALTER TABLE {erp.schema}."{table}" ALTER COLUMN "{column}" '
                        f'TYPE smallint USING "{column}"::int'))
        folder.mkdir()
        path = write_config(folder, erp.url, schema=erp.schema)
        checked = runner.invoke(cli, ["check", "-c", str(path)])
        assert checked.exit_code == 0, checked.output
        result = keyservices.run(keyservices.load_config(path), as_of=AS_OF)
        assert result.exit_code == 0
        return [erp.value(i) for i in ids]
    finally:
        gen.close()


def test_smallint_flags_pass_check_and_the_run_on_postgresql(pg_server: str, tmp_path: Path,
                                                             runner: CliRunner) -> None:
    reference = night(pg_server, tmp_path / "bool", runner, smallint=False)
    assert reference[0] and reference[1] != reference[0]  # the flags decide something
    assert night(pg_server, tmp_path / "smallint", runner, smallint=True) == reference
