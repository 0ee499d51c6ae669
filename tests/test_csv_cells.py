"""CSV formula injection (OWASP): no CSV the tool writes holds a cell a spreadsheet would run.

Every CSV: the digest's attachment, ``export opportunities`` (csv and hubspot), ``export alerts``,
the report's penetration.csv and won-lost.csv. A text cell beginning with = + - @ tab or CR gets a
leading single quote; the numbers the tool computes stay numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import email
import email.policy
import io
import re
from pathlib import Path

import pytest

from keyservices.commands.export import export_alerts, export_opportunities
from keyservices.commands.report import report
from keyservices.config import load_config
from keyservices.model import Customer
from keyservices.outputs.cells import FORMULA_START, safe_cell
from keyservices.outputs.report import WonLostRow, penetration_matrix, write_report

from .names_dealer import HOSTILE, NIGHT2, build

FORMULAS = [h for h in HOSTILE if h.startswith(FORMULA_START)]
NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")  # what the tool computes: counts, shares, amounts


@pytest.fixture(scope="module")
def dealer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("names-dealer"))


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))


def assert_no_formula(rows: list[list[str]], name: str) -> None:
    runnable = [c for row in rows for c in row
                if c.startswith(FORMULA_START) and not NUMBER.fullmatch(c)]
    assert not runnable, f"{name}: {len(runnable)} cells a spreadsheet runs, e.g. {runnable[:3]}"


def neutralised(rows: list[list[str]]) -> list[str]:
    return [c for row in rows for c in row if c.startswith("'") and c[1:].startswith(FORMULA_START)]


def test_digest_csv_attachment_neutralises_formulas(dealer: Path) -> None:
    baseline = min((dealer.parent / "outbox").glob("*run0001-digest.eml"))
    msg = email.message_from_bytes(baseline.read_bytes(), policy=email.policy.default)
    (attachment,) = list(msg.iter_attachments())  # type: ignore[attr-defined]
    rows = cells(attachment.get_content())
    assert_no_formula(rows, "digest attachment")
    assert any(c.startswith("'=HYPERLINK(") for c in neutralised(rows))


@pytest.mark.parametrize("fmt", ["csv", "hubspot"])
def test_export_opportunities_neutralises_formulas(dealer: Path, fmt: str) -> None:
    result = export_opportunities(load_config(dealer), fmt=fmt, as_of=NIGHT2)  # type: ignore[arg-type]
    rows = cells(result.text)
    assert_no_formula(rows, f"export opportunities --format {fmt}")
    assert neutralised(rows)


def test_export_alerts_neutralises_formulas(dealer: Path) -> None:
    text, count = export_alerts(load_config(dealer), as_of=NIGHT2)
    rows = cells(text)
    assert count and len(rows) == count + 1
    assert_no_formula(rows, "export alerts")
    assert neutralised(rows)


def test_report_csvs_neutralise_formulas_and_keep_numbers(tmp_path: Path) -> None:
    customers = {i: Customer(i, f"C{i}", f"Customer {i}", None, True, False,
                             industry=FORMULAS[i % len(FORMULAS)], branch=FORMULAS[-1],
                             sales_rep="@rep") for i in range(1, 7)}
    services = {i: frozenset({"CPY"}) for i in customers}
    names = {"CPY": "Copiers"}
    matrices = [penetration_matrix(customers, services, names, by)
                for by in ("industry", "branch", "sales_rep")]
    won_lost = {"last 30 days": [WonLostRow("branch", "=1+1", "CPY", 1, 2, 10.0, 12.5)]}
    files = write_report(tmp_path, dealer="Demo", as_of=dt.date(2026, 11, 24),
                         matrices=matrices, won_lost=won_lost)
    assert files.won_lost_csv is not None
    penetration = cells(files.csv.read_text(encoding="utf-8"))
    assert_no_formula(penetration, "penetration.csv")
    groups = {row[1] for row in penetration[1:]}
    assert "'=HYPERLINK(\"https://evil.example\",\"x\")" in groups and "'@rep" in groups
    assert {row[2] for row in penetration[1:]} <= {"1", "2", "6"}  # customers: numbers
    won = cells(files.won_lost_csv.read_text(encoding="utf-8"))
    assert won[1] == ["last 30 days", "branch", "'=1+1", "CPY", "Copiers", "1", "2", "10.00",
                      "12.50"]


def test_report_command_writes_safe_csvs(dealer: Path, tmp_path: Path) -> None:
    result = report(load_config(dealer), out=tmp_path, as_of=NIGHT2)
    assert result.files.won_lost_csv is not None
    for path in (result.files.csv, result.files.won_lost_csv):
        rows = cells(path.read_text(encoding="utf-8"))
        assert_no_formula(rows, path.name)
        assert "'=" in {c[:2] for c in neutralised(rows)}, path.name  # the branch "=1+1 ..."
    assert "'@" in {c[:2] for c in neutralised(cells(result.files.csv.read_text("utf-8")))}


@pytest.mark.parametrize(("value", "cell"), [
    ("=1+1", "'=1+1"), ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\tTab", "'\tTab"), ("\rCR", "'\rCR"),
    ("-12.50", "-12.50"), ("+1", "+1"), ("-1e5", "-1e5"), ("Acme = good", "Acme = good"),
    ("", ""), (12, 12), (-3.5, -3.5), (None, None),
])
def test_safe_cell(value: object, cell: object) -> None:
    assert safe_cell(value) == cell
