"""Contract lines with dates and machines by install date (#24, items 3 and 4): a machine is on
contract only between its line's StartDate and EndDate, and a night as of a past date counts no
machine installed after it. A database without those columns still runs, and check names them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import sqlalchemy as sa

import keyservices
from keyservices.commands.check import check
from keyservices.commands.export import export_opportunities

from .conftest import AS_OF, ErpBuilder, write_config
from .test_cross_sell import ON_CONTRACT, rules_dir


def _uncovered(config: keyservices.Config, as_of: dt.date = AS_OF) -> dict[str, str]:
    text, _ = export_opportunities(config, as_of=as_of)
    return {r["customer_number"]: r["reason"] for r in csv.DictReader(io.StringIO(text))
            if r["service"] == "Copiers"}


def _line(erp: ErpBuilder, contract: int, machine: int, start: dt.date | None = None,
          end: dt.date | None = None) -> None:
    erp.insert("SCContractDetails", ContractID=contract, EquipmentID=machine,
               StartDate=dt.datetime.combine(start, dt.time()) if start else None,
               EndDate=dt.datetime.combine(end, dt.time()) if end else None)


def test_a_contract_line_covers_its_machine_only_between_its_dates(any_erp: ErpBuilder,
                                                                    tmp_path: Path) -> None:
    erp = any_erp
    ended = erp.customer("ENDED")  # the contract runs on; the machine's line ended
    k = erp.contract(ended, "COPY-MAINT")
    _line(erp, k, erp.equipment(ended, "MFP-A3-CO-03"), end=AS_OF - dt.timedelta(days=60))
    later = erp.customer("LATER")  # the line starts next month
    k = erp.contract(later, "COPY-MAINT")
    _line(erp, k, erp.equipment(later, "MFP-A3-CO-03"), start=AS_OF + dt.timedelta(days=30))
    fine = erp.customer("FINE")  # a line with dates around the run date, and one without any
    k = erp.contract(fine, "COPY-MAINT")
    _line(erp, k, erp.equipment(fine, "MFP-A3-CO-03"), start=AS_OF - dt.timedelta(days=30),
          end=AS_OF)
    _line(erp, k, erp.equipment(fine, "MFP-A3-CO-03"))
    path = write_config(tmp_path, erp.url, schema=erp.schema)
    rules_dir(tmp_path, ON_CONTRACT)
    got = _uncovered(keyservices.load_config(path))
    assert set(got) == {"ENDED", "LATER"}
    assert "1 COPIER unit on no active contract" in got["ENDED"]


def test_a_past_night_counts_no_machine_installed_after_it(erp: ErpBuilder,
                                                           tmp_path: Path) -> None:
    new = erp.customer("NEW")
    machine = erp.equipment(new, "MFP-A3-CO-03")
    t = erp.t["SCEquipments"]
    with erp.engine.begin() as conn:
        conn.execute(t.update().where(t.c.EquipmentID == machine).values(
            InstallDate=dt.datetime.combine(AS_OF - dt.timedelta(days=10), dt.time())))
    path = write_config(tmp_path, erp.url)
    rules_dir(tmp_path, ON_CONTRACT)
    config = keyservices.load_config(path)
    assert set(_uncovered(config)) == {"NEW"}
    assert _uncovered(config, AS_OF - dt.timedelta(days=11)) == {}


def test_a_database_without_the_dated_columns_runs_and_check_names_them(
        erp: ErpBuilder, tmp_path: Path) -> None:
    ended = erp.customer("ENDED")
    k = erp.contract(ended, "COPY-MAINT")
    _line(erp, k, erp.equipment(ended, "MFP-A3-CO-03"), end=AS_OF - dt.timedelta(days=60))
    with erp.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE SCContractDetails DROP COLUMN EndDate")
        conn.exec_driver_sql("ALTER TABLE SCEquipments DROP COLUMN InstallDate")
    path = write_config(tmp_path, erp.url)
    rules_dir(tmp_path, ON_CONTRACT)
    config = keyservices.load_config(path)
    assert _uncovered(config) == {}  # without the end date the line still covers it
    warnings = "\n".join(check(config).warnings)
    assert "SCContractDetails.EndDate (contract_details.end_date) not found" in warnings
    assert "SCEquipments.InstallDate (equipment.install_date) not found" in warnings
    assert keyservices.run(config, as_of=AS_OF, dry_run=True).statements > 0
    with erp.engine.connect() as conn:
        assert "EndDate" not in [c["name"] for c in sa.inspect(conn).get_columns(
            "SCContractDetails")]
