"""The penetration report: counts per group, the CSV files, one standalone escaped HTML page."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import subprocess
import sys
from pathlib import Path

import pytest

from keyservices.errors import ConfigError
from keyservices.model import Customer
from keyservices.outputs.report import (
    NO_GROUP,
    PENETRATION_COLUMNS,
    TOTAL_GROUP,
    WON_LOST_COLUMNS,
    Matrix,
    WonLostRow,
    find_report_templates,
    heat_colour,
    penetration_matrix,
    write_report,
)
from keyservices.resources import templates_dir

AS_OF = dt.date(2026, 11, 24)
NAMES = {"CPY": "Copiers", "MPS": "Managed Print", "DM": "Document Management",
         "MIT": "Managed IT"}
SCRIPT = "<script>alert(1)</script>"
OBRIEN = "O'Brien & Sons"


def customer(cid: int, industry: str | None, branch: str | None = None,
             sales_rep: str | None = None) -> Customer:
    return Customer(cid, f"C{cid:04d}", f"Customer {cid}", None, True, False, industry=industry,
                    branch=branch, sales_rep=sales_rep)


# Five in-scope customers in two industries, and one (6) that was not classified.
CUSTOMERS = {
    1: customer(1, "Legal", "North", "Dana"),
    2: customer(2, "Legal", "North", "Dana"),
    3: customer(3, "Legal", "South", None),
    4: customer(4, "Health", "South", "Lee"),
    5: customer(5, "Health", None, "Lee"),
    6: customer(6, "Legal", "North", "Dana"),
}
SERVICES = {
    1: frozenset({"CPY", "MPS"}),
    2: frozenset({"CPY"}),
    3: frozenset(),
    4: frozenset({"CPY", "DM"}),
    5: frozenset({"MIT"}),
}


def shares(matrix: Matrix) -> dict[str, tuple[int, dict[str, tuple[int, float]]]]:
    """group -> (customers, {code: (users, share)}), the total row included."""
    return {r.group: (r.customers, {c.code: (c.users, c.share) for c in r.cells})
            for r in (*matrix.rows, matrix.total)}


def all_matrices(customers=CUSTOMERS, services=SERVICES) -> list[Matrix]:
    return [penetration_matrix(customers, services, NAMES, by)
            for by in ("industry", "branch", "sales_rep")]


def won_lost() -> dict[str, list[WonLostRow]]:
    return {
        "last 30 days": [
            WonLostRow("sales_rep", "Lee", "MIT", 1, 0, 900.0, 0.0),
            WonLostRow("branch", "South", "MIT", 1, 0, 900.0, 0.0),
            WonLostRow("branch", "North", "DM", 0, 2, 0.0, 1234.5),
            WonLostRow("branch", "North", "CPY", 3, 1, 4500.0, 1500.0),
        ],
        "last 90 days": [],
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_industry_matrix_counts_users_and_shares_per_group_and_in_total() -> None:
    m = penetration_matrix(CUSTOMERS, SERVICES, NAMES, "industry")
    assert m.by == "industry" and m.label == "Industry"
    assert [r.group for r in m.rows] == ["Legal", "Health"]  # 3 customers, then 2
    assert shares(m) == {
        "Legal": (3, {"CPY": (2, 2 / 3), "MPS": (1, 1 / 3), "DM": (0, 0.0), "MIT": (0, 0.0)}),
        "Health": (2, {"CPY": (1, 0.5), "MPS": (0, 0.0), "DM": (1, 0.5), "MIT": (1, 0.5)}),
        TOTAL_GROUP: (5, {"CPY": (3, 0.6), "MPS": (1, 0.2), "DM": (1, 0.2), "MIT": (1, 0.2)}),
    }


def test_services_keep_the_order_of_service_names() -> None:
    m = penetration_matrix(CUSTOMERS, SERVICES, NAMES, "industry")
    assert m.services == tuple(NAMES.items())
    assert [c.code for c in m.total.cells] == ["CPY", "MPS", "DM", "MIT"]
    assert m.rows[0].cell("MPS").name == "Managed Print"


def test_customers_without_a_group_are_counted_under_none() -> None:
    branch = penetration_matrix(CUSTOMERS, SERVICES, NAMES, "branch")
    assert [(r.group, r.customers) for r in branch.rows] == [
        ("North", 2), ("South", 2), (NO_GROUP, 1)]
    assert shares(branch)[NO_GROUP][1]["MIT"] == (1, 1.0)
    rep = penetration_matrix(CUSTOMERS, SERVICES, NAMES, "sales_rep")
    assert [(r.group, r.customers) for r in rep.rows] == [
        ("Dana", 2), ("Lee", 2), (NO_GROUP, 1)]


def test_blank_group_names_count_as_none() -> None:
    customers = {1: customer(1, ""), 2: customer(2, "   "), 3: customer(3, None)}
    m = penetration_matrix(customers, {i: frozenset() for i in customers}, NAMES, "industry")
    assert [(r.group, r.customers) for r in m.rows] == [(NO_GROUP, 3)]


def test_groups_of_equal_size_sort_by_name_ignoring_case() -> None:
    customers = {1: customer(1, "beta"), 2: customer(2, "Alpha"), 3: customer(3, "Gamma"),
                 4: customer(4, "Gamma")}
    m = penetration_matrix(customers, {i: frozenset() for i in customers}, NAMES, "industry")
    assert [r.group for r in m.rows] == ["Gamma", "Alpha", "beta"]


def test_customers_not_classified_and_unknown_codes_are_not_counted() -> None:
    services = {**SERVICES, 2: frozenset({"CPY", "XYZ"})}
    m = penetration_matrix(CUSTOMERS, services, NAMES, "industry")
    assert m.total.customers == 5  # customer 6 has no classification
    assert [c.code for c in m.total.cells] == list(NAMES)
    assert shares(m) == shares(penetration_matrix(CUSTOMERS, SERVICES, NAMES, "industry"))


def test_no_classified_customers_gives_no_rows_and_zero_shares() -> None:
    m = penetration_matrix(CUSTOMERS, {}, NAMES, "branch")
    assert m.rows == ()
    assert m.total.customers == 0
    assert {c.share for c in m.total.cells} == {0.0}


def test_unknown_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown dimension 'region'"):
        penetration_matrix(CUSTOMERS, SERVICES, NAMES, "region")  # type: ignore[arg-type]


def test_penetration_csv_reads_back_in_long_format(tmp_path: Path) -> None:
    files = write_report(tmp_path, dealer="Demo", as_of=AS_OF, matrices=all_matrices())
    raw = files.csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM, for Excel, as the digest's CSV
    assert raw.count(b"\r\n") == raw.count(b"\n")
    rows = read_csv(files.csv)
    assert list(rows[0]) == PENETRATION_COLUMNS
    # industry: 2 groups + total; branch and sales rep: 3 groups + total; 4 services each
    assert len(rows) == (3 + 4 + 4) * 4
    legal = [r for r in rows if r["dimension"] == "industry" and r["group"] == "Legal"]
    assert [(r["service_code"], r["service_name"], r["users"], r["share"]) for r in legal] == [
        ("CPY", "Copiers", "2", "0.6667"), ("MPS", "Managed Print", "1", "0.3333"),
        ("DM", "Document Management", "0", "0.0000"), ("MIT", "Managed IT", "0", "0.0000")]
    assert {r["customers"] for r in legal} == {"3"}
    total = [r for r in rows if r["dimension"] == "branch" and r["group"] == TOTAL_GROUP]
    assert [(r["customers"], r["users"], r["share"]) for r in total] == [
        ("5", "3", "0.6000"), ("5", "1", "0.2000"), ("5", "1", "0.2000"), ("5", "1", "0.2000")]
    none = [r for r in rows if r["dimension"] == "sales_rep" and r["group"] == NO_GROUP]
    assert [r["share"] for r in none] == ["0.0000"] * 4  # customer 3 uses nothing


def test_html_is_one_standalone_page_with_the_chart_and_every_matrix(tmp_path: Path) -> None:
    files = write_report(tmp_path, dealer="Demo", as_of=AS_OF, matrices=all_matrices())
    html = files.html.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") == 1 and html.count('fill="#3b82f6"') == 4  # a bar per service
    for name in NAMES.values():
        assert name in html
    assert "By industry" in html and "By branch" in html and "By sales rep" in html
    assert html.count("All customers") == 3
    assert "60%" in html and "67%" in html  # total and Legal copiers
    lowered = html.lower()
    for external in ("http", "<link", "<script", "<img", "src=", "@import", "url("):
        assert external not in lowered, external


def test_heat_cells_are_shaded_by_share() -> None:
    assert heat_colour(0.0) == "#eff6ff" and heat_colour(1.0) == "#1e40af"
    assert heat_colour(-1) == heat_colour(0.0) and heat_colour(2) == heat_colour(1.0)


def test_hostile_names_are_escaped(tmp_path: Path) -> None:
    customers = {1: customer(1, SCRIPT, branch=OBRIEN), 2: customer(2, OBRIEN)}
    services = {1: frozenset({"CPY"}), 2: frozenset({"DM"})}
    rows = {"last 30 days": [WonLostRow("sales_rep", SCRIPT, "CPY", 1, 0, 10.0, 0.0)]}
    files = write_report(tmp_path, dealer=f"{OBRIEN} {SCRIPT}", as_of=AS_OF,
                         matrices=all_matrices(customers, services), won_lost=rows)
    html = files.html.read_text(encoding="utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "O&#39;Brien &amp; Sons" in html and OBRIEN not in html
    csv_groups = {r["group"] for r in read_csv(files.csv)}
    assert {SCRIPT, OBRIEN} <= csv_groups  # the CSV keeps the names as they are


def test_won_and_lost_are_written_per_window(tmp_path: Path) -> None:
    files = write_report(tmp_path, dealer="Demo", as_of=AS_OF, matrices=all_matrices(),
                         won_lost=won_lost())
    assert files.won_lost_csv == tmp_path / "won-lost.csv"
    rows = read_csv(files.won_lost_csv)
    assert list(rows[0]) == WON_LOST_COLUMNS
    assert [list(r.values()) for r in rows] == [  # branch first, groups by name, rule order
        ["last 30 days", "branch", "North", "CPY", "Copiers", "3", "1", "4500.00", "1500.00"],
        ["last 30 days", "branch", "North", "DM", "Document Management", "0", "2", "0.00",
         "1234.50"],
        ["last 30 days", "branch", "South", "MIT", "Managed IT", "1", "0", "900.00", "0.00"],
        ["last 30 days", "sales_rep", "Lee", "MIT", "Managed IT", "1", "0", "900.00", "0.00"],
    ]
    html = files.html.read_text(encoding="utf-8")
    assert "Won and lost &middot; last 30 days" in html
    assert "Won and lost &middot; last 90 days" in html
    assert html.count("No customer won or lost a service.") == 1  # the empty 90-day window
    # branch totals: won 3 + 0 + 1 = 4, lost 1 + 2 + 0 = 3, values 5,400 and 2,734 (2734.5)
    assert ('<td class="num won">4</td><td class="num lost">3</td><td class="num">+1</td>'
            '<td class="num won">5,400</td><td class="num lost">2,734</td>') in html


def test_without_won_lost_there_is_no_file_and_no_section(tmp_path: Path) -> None:
    files = write_report(tmp_path, dealer="Demo", as_of=AS_OF, matrices=all_matrices())
    assert files.won_lost_csv is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["penetration.csv", "report.html"]
    assert "Won and lost" not in files.html.read_text(encoding="utf-8")


def test_same_input_gives_byte_identical_files(tmp_path: Path) -> None:
    first = write_report(tmp_path / "a", dealer="Demo", as_of=AS_OF, matrices=all_matrices(),
                         won_lost=won_lost())
    ids = list(SERVICES)
    random.Random(3).shuffle(ids)
    shuffled = {i: SERVICES[i] for i in ids}
    rows = {k: list(reversed(v)) for k, v in won_lost().items()}
    second = write_report(tmp_path / "b", dealer="Demo", as_of=AS_OF,
                          matrices=all_matrices(services=shuffled), won_lost=rows)
    for a, b in ((first.csv, second.csv), (first.html, second.html),
                 (first.won_lost_csv, second.won_lost_csv)):
        assert a is not None and b is not None
        assert a.read_bytes() == b.read_bytes(), a.name


def test_rewriting_replaces_the_files_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("old", encoding="utf-8")
    write_report(tmp_path, dealer="Demo", as_of=AS_OF, matrices=all_matrices(),
                 won_lost=won_lost())
    write_report(tmp_path, dealer="Demo", as_of=AS_OF, matrices=all_matrices(),
                 won_lost=won_lost())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "penetration.csv", "report.html", "won-lost.csv"]
    assert (tmp_path / "report.html").read_text(encoding="utf-8") != "old"


def test_a_report_needs_a_matrix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one penetration matrix"):
        write_report(tmp_path, dealer="Demo", as_of=AS_OF, matrices=[])


def test_templates_fall_back_to_the_packaged_report(tmp_path: Path) -> None:
    (tmp_path / "digest.html.j2").write_text("custom digest", encoding="utf-8")
    assert find_report_templates(None) == templates_dir()
    assert find_report_templates(tmp_path) == templates_dir()  # no report.html.j2 there
    (tmp_path / "report.html.j2").write_text("{{ dealer }}: {{ overall.customers }}\n",
                                             encoding="utf-8")
    assert find_report_templates(tmp_path) == tmp_path
    files = write_report(tmp_path / "out", dealer="A & B", as_of=AS_OF,
                         matrices=all_matrices(), templates=tmp_path)
    assert files.html.read_text(encoding="utf-8") == "A &amp; B: 5\n"


def test_a_missing_template_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"template folder .*nowhere not found \(check "
                                          r"digest.templates in config.yaml\)"):
        find_report_templates(tmp_path / "nowhere")


def test_a_broken_template_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "report.html.j2").write_text("ok\n{{ no_such_thing }}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"report template error in .*report.html.j2:2: "
                                          r"'no_such_thing' is undefined"):
        write_report(tmp_path / "out", dealer="Demo", as_of=AS_OF, matrices=all_matrices(),
                     templates=tmp_path)
    assert not (tmp_path / "out" / "penetration.csv").exists()  # nothing half-written


def test_the_report_module_needs_neither_sqlalchemy_nor_smtplib() -> None:
    code = ("import sys, keyservices.outputs.report; "
            "print(sorted(m for m in ('sqlalchemy', 'smtplib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_csv_text_is_plain_utf8_for_accented_names(tmp_path: Path) -> None:
    customers = {1: customer(1, "Café Müller")}
    files = write_report(tmp_path, dealer="Demo", as_of=AS_OF,
                         matrices=all_matrices(customers, {1: frozenset({"CPY"})}))
    text = files.csv.read_bytes().decode("utf-8")
    assert "Café Müller" in text
    assert list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))[1][:3] == [
        "industry", "Café Müller", "1"]
