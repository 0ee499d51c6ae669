"""The group's table (#25): each company's money at stake and the group's total, and the HTML of
20 companies within the mail's 100 KB and laid out for a 375 px phone (checked as the single
digest is, without a browser: no fixed width over 375 px, no long text that refuses to wrap)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from keyservices.commands.group import company_row, run_group
from keyservices.config import load_config
from keyservices.demodb import build_demo_db
from keyservices.outputs.digest import HTML_LIMIT
from keyservices.outputs.group import COLUMNS, TOTAL, WHY_LIMIT, CompanyRow, render_group
from keyservices.outputs.headline import at_stake

from .conftest import AS_OF, write_config
from .test_digest_screens import layout

ROWS = [CompanyRow("North", "written", 0, 1200, 30, 4, 7, at_stake=125_000.4),
        CompanyRow("South", "failed", 1, why="the ERP database file does not exist"),
        CompanyRow("East", "guard", 3, 900, 0, 0, 2, why="the change guard tripped",
                   at_stake=20_000.0)]


def test_the_table_has_each_companys_money_at_stake_and_a_total_row() -> None:
    rendered = render_group("Acme Group", AS_OF, ROWS)
    assert COLUMNS[-1] == "money at stake"
    lines = rendered.text.splitlines()
    header = next(line for line in lines if line.startswith("company"))
    assert header.split("  ")[-1].strip() == "money at stake"
    north = next(line for line in lines if line.startswith("North "))
    assert north.split()[-1] == "125,000"
    assert next(line for line in lines if line.startswith("South ")).split()[-1] == "-"
    total = next(line for line in lines if line.startswith(TOTAL))
    # counts summed over the companies that have them; the failed one adds nothing
    assert total.split()[-5:] == ["2,100", "30", "4", "9", "145,000"]
    assert "1 of 3" in total  # companies written
    html = rendered.html
    assert html.count(f"<b>{TOTAL}</b>") == 1 and ">1 of 3</span>" in _figures(html, TOTAL)
    assert ">money at stake</th>" in html and ">145,000</td>" in _figures(html, TOTAL)
    assert ">125,000</td>" in _figures(html, "North") and ">-</td>" in _figures(html, "South")


def _figures(page: str, name: str) -> str:
    """A company's name and status row and its figures row in the table's HTML."""
    return "".join(page.split(f"<b>{name}</b>")[1].split("</tr>")[:2])


def test_nobody_with_figures_leaves_the_total_empty() -> None:
    rendered = render_group("Acme", AS_OF, [ROWS[1]])
    total = next(line for line in rendered.text.splitlines() if line.startswith(TOTAL))
    assert total.split()[-5:] == ["-"] * 5


@pytest.fixture
def group(tmp_path: Path) -> Path:
    for name, seed in (("north", 41), ("east", 42)):
        build_demo_db(tmp_path / f"{name}.sqlite", customers=150, seed=seed, as_of=AS_OF)
    companies = "".join(f"  - name: {name.title()}\n    erp: {{url: 'sqlite:///{name}.sqlite'}}\n"
                        for name in ("north", "east"))
    return write_config(tmp_path, "sqlite:///north.sqlite", f"companies:\n{companies}")


def test_the_nights_table_carries_what_each_digest_puts_at_stake(group: Path) -> None:
    result = run_group(load_config(group), as_of=AS_OF, send=False)
    assert result.exit_code == 0 and result.digest_eml is not None
    stakes = {}
    for night in result.companies:
        assert night.result is not None and night.result.opportunities
        stakes[night.company] = at_stake(night.result.opportunities)
        assert company_row(night).at_stake == stakes[night.company] > 0
    page = result.digest_eml.with_suffix(".html").read_text(encoding="utf-8")
    for name, value in stakes.items():
        assert f">{value:,.0f}</td>" in _figures(page, name)
    assert f">{sum(stakes.values()):,.0f}</td>" in _figures(page, TOTAL)


def _twenty(why: str) -> list[CompanyRow]:
    """20 companies with long names, half of them failed with a long message."""
    rows = []
    for i in range(20):
        name = f"Northwestern Office Equipment & Imaging Solutions of Springfield No.{i:02d}"
        if i % 2:
            rows.append(CompanyRow(name, "failed", 2, why=why))
        else:
            rows.append(CompanyRow(name, "written", 0, 250_000, 45_678, 12_345, 98_765,
                                   at_stake=12_345_678.0))
    return rows


@pytest.mark.parametrize("why", [("the ERP database file does not exist: "
                                 "D:\\Keyservices\\Companies\\Springfield\\erp.sqlite"),
                                 "GLDetail.Amount holds values that cannot be read: " * 400])
def test_twenty_companies_stay_within_100_kb_and_fit_a_375px_phone(why: str) -> None:
    rendered = render_group("Northwestern Imaging Group", dt.date(2026, 11, 24), _twenty(why))
    html = rendered.html
    assert len(html.encode("utf-8")) <= HTML_LIMIT
    assert all(html.count(f"No.{i:02d}</b>") == 1 for i in range(20))  # each one's row
    if len(why) > WHY_LIMIT:
        assert "…" in html and len(html.encode("utf-8")) < 40_000
    found = layout(html)
    assert "width=device-width" in found.viewport
    # nothing is laid out wider than the screen: no fixed width over 375 px (the columns are
    # shares of the width), no long text that refuses to wrap, long names wrap anywhere
    assert [w for w in found.widths if w[1] > 375] == []
    assert [t for t in found.nowrap_texts if len(t) > 16] == []
    tables = re.findall(r"<table style=\"([^\"]*)\"", html)
    assert tables and all("width:100%" in t and "table-layout:fixed" in t for t in tables)
    assert re.search(r"<colgroup>(<col style=\"width:\d+%\">){5}</colgroup>", html)
    assert "overflow-wrap:anywhere" in html.replace(" ", "")
    # the widest figure in a column fits its share of a 375 px screen at 13 px (7.5 px a digit
    # or comma, 6 px of padding, 16 px of page margin)
    shares = [int(w) for w in re.findall(r"<col style=\"width:(\d+)%\">", html)]
    figures = re.findall(r"<tr>((?:<td [^>]*>[^<]*</td>){5})</tr>", html)
    assert len(figures) == 21
    for row in figures:
        for share, value in zip(shares, re.findall(r">([^<]*)</td>", row), strict=True):
            if re.fullmatch(r"[\d,]+", value):
                assert len(value) * 7.5 + 6 <= (375 - 16) * share / 100, (value, share)
