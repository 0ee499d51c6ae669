"""The promoter filter of ``export opportunities``: only contacts with an NPS score >= a minimum."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import keyservices
from keyservices.cli import cli
from keyservices.commands.export import NpsFilter, export_opportunities, read_nps_csv
from keyservices.config import Config
from keyservices.erp import StatementCounter
from keyservices.errors import ConfigError, SchemaError
from keyservices.settings.sections import TableOverride

from .conftest import AS_OF, ErpBuilder, write_config

NPS_ATTR = 3001
SURVEY = """email,contact_id,score
ann@law6.example,,10
bob@law6.example,,8
,700,9
di@law8.example,,8
nobody@else.example,,10
ann@law6.example,,abc
,x7,9
,,9
BOB@law6.example,,11

"""


@pytest.fixture
def law_firms(erp: ErpBuilder, tmp_path: Path) -> Config:
    """Ten law firms; six have a DM contract, so LAW06-LAW09 are DM opportunities.

    LAW06: Ann (ann@law6) and Bob (bob@law6, the decision contact); LAW07: Cy (contact 700);
    LAW08: Di (di@law8) and Ed (no email); LAW09: no contact.
    """
    ids = [erp.customer(f"LAW{i:02d}", f"Law Firm {i}") for i in range(10)]
    for cid in ids[:6]:
        erp.contract(cid, "DM-SUB")
    contacts = [(600, 6, "Ann", "ann@law6.example"), (601, 6, "Bob", "bob@law6.example"),
                (700, 7, "Cy", "cy@law7.example"), (800, 8, "Di", "di@law8.example"),
                (801, 8, "Ed", None)]
    for contact_id, firm, first, email in contacts:
        erp.insert("CMContacts", ContactID=contact_id, CustomerID=ids[firm], FirstName=first,
                   LastName="Lawyer", Email=email, Phone1=f"555-{contact_id}", Active=True)
    t = erp.t["ARCustomers"]
    with erp.engine.begin() as conn:
        conn.execute(t.update().where(t.c.CustomerID == ids[6]).values(DecisionContactID=601))
    erp.insert("ShAttributes", ShAttributeID=NPS_ATTR, AttributeName="ZNPSScore")
    path = write_config(tmp_path, erp.url)
    rules = tmp_path / "rules" / "model-classes.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace("min_peers: 10", "min_peers: 5"),
                     encoding="utf-8")
    return keyservices.load_config(path)


def scores(erp: ErpBuilder, values: dict[int, str], attribute: int = NPS_ATTR) -> None:
    for contact_id, text in values.items():
        erp.insert("CMContactCustomProperties", ContactID=contact_id, ShAttributeID=attribute,
                   TextVal=text)


def contacts_of(text: str) -> dict[str, str]:
    return {r["customer_number"]: r["contact_first_name"]
            for r in csv.DictReader(io.StringIO(text))}


def test_without_the_filter_every_opportunity_is_listed(law_firms: Config) -> None:
    text, count = export_opportunities(law_firms, service="DM", as_of=AS_OF)
    assert count == 4
    assert contacts_of(text) == {"LAW06": "Bob", "LAW07": "Cy", "LAW08": "Di", "LAW09": ""}


def test_promoters_from_a_survey_csv(law_firms: Config, tmp_path: Path) -> None:
    survey = tmp_path / "survey.csv"
    survey.write_text(SURVEY, encoding="utf-8")
    result = export_opportunities(law_firms, service="DM", as_of=AS_OF,
                                  nps=NpsFilter(csv=survey))
    # Ann (10) rather than Bob (8), though Bob is the decision contact; Cy (9, by contact id);
    # Di (8) is no promoter and LAW09 has no contact: both customers are left out
    assert contacts_of(result.text) == {"LAW06": "Ann", "LAW07": "Cy"}
    assert (result.count, result.left_out_customers, result.left_out_rows) == (2, 2, 2)
    assert result.promoters == 2 and result.csv_unmatched == 1  # nobody@else.example
    assert result.csv_problems == [
        (7, "score 'abc' is not a number from 0 to 10"),
        (8, "contact id 'x7' is not a whole number"),
        (9, "no contact email or contact id"),
        (10, "score '11' is not a number from 0 to 10"),
    ]


def test_promoters_from_a_contact_property_read_in_one_query(law_firms: Config, erp: ErpBuilder,
                                                             monkeypatch) -> None:
    scores(erp, {600: "10", 601: "8", 700: " 9 ", 800: "8", 801: "n/a"})
    scores(erp, {800: "10"}, attribute=2001)  # another attribute's value: not a score
    counters: list[StatementCounter] = []
    import keyservices.night as api_module  # every command opens the ERP through night.engine_for

    real = api_module.connect

    def counting(*args, **kwargs):
        engine = real(*args, **kwargs)
        counters.append(StatementCounter())
        sa.event.listen(engine, "before_cursor_execute", counters[-1])
        return engine

    monkeypatch.setattr(api_module, "connect", counting)
    export_opportunities(law_firms, service="DM", as_of=AS_OF)
    result = export_opportunities(law_firms, service="DM", as_of=AS_OF,
                                  nps=NpsFilter(property="ZNPSScore"))
    assert counters[1].count - counters[0].count == 2  # the attribute's id, then every score
    assert contacts_of(result.text) == {"LAW06": "Ann", "LAW07": "Cy"}
    assert (result.left_out_customers, result.promoters, result.bad_property_values) == (2, 2, 1)
    eights = export_opportunities(law_firms, service="DM", as_of=AS_OF,
                                  nps=NpsFilter(property="ZNPSScore", min_score=8))
    assert contacts_of(eights.text) == {"LAW06": "Bob", "LAW07": "Cy", "LAW08": "Di"}
    assert (eights.count, eights.left_out_customers) == (3, 1)


def test_a_csv_score_wins_over_the_property(law_firms: Config, erp: ErpBuilder,
                                            tmp_path: Path) -> None:
    scores(erp, {600: "10", 700: "9"})
    survey = tmp_path / "survey.csv"
    survey.write_text("\ufeffContact ID;NPS\r\n600;3\r\n", encoding="utf-8")  # Excel, Europe
    result = export_opportunities(law_firms, service="DM", as_of=AS_OF,
                                  nps=NpsFilter(property="ZNPSScore", csv=survey))
    assert contacts_of(result.text) == {"LAW07": "Cy"} and result.left_out_customers == 3


def test_the_export_command_reports_what_it_left_out(law_firms: Config, tmp_path: Path,
                                                     runner: CliRunner) -> None:
    survey = tmp_path / "survey.csv"
    survey.write_text(SURVEY, encoding="utf-8")
    out = tmp_path / "promoters.csv"
    result = runner.invoke(cli, ["export", "opportunities", "-c", str(law_firms.config_path),
                                 "--service", "DM", "--format", "hubspot", "--nps-csv",
                                 str(survey), "--out", str(out), "--as-of", AS_OF.isoformat()],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "Wrote 2 opportunities to " + str(out),
        f"{survey}:7: score 'abc' is not a number from 0 to 10; row skipped",
        f"{survey}:8: contact id 'x7' is not a whole number; row skipped",
        f"{survey}:9: no contact email or contact id; row skipped",
        f"{survey}:10: score '11' is not a number from 0 to 10; row skipped",
        "1 survey row(s) name no active contact",
        ("Promoters (NPS 9 or more): 2 contact(s). Left out 2 customer(s) with no promoter "
        "contact (2 opportunities)."),
    ]
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert [(r["Customer Number"], r["Email"]) for r in rows] == [
        ("LAW06", "ann@law6.example"), ("LAW07", "cy@law7.example")]
    bad = runner.invoke(cli, ["export", "opportunities", "-c", str(law_firms.config_path),
                              "--nps-csv", str(survey), "--min-nps", "11"])
    assert bad.exit_code == 2 and "0<=x<=10" in bad.output


def test_a_survey_csv_without_the_columns_or_usable_rows_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "survey.csv"
    path.write_text("name,comment\nAnn,great\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"survey\.csv:1: the header \(name, comment\) lacks a "
                                          r"score column \(score or nps\) and a contact column "
                                          r"\(email or contact_id\)"):
        read_nps_csv(path)
    path.write_text("email,score\nann@x.example,\nbob@x.example,ten\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"has no usable row \(line 2: no score; line 3: score "
                                          r"'ten' is not a number from 0 to 10\)"):
        read_nps_csv(path)
    path.write_text("email,score\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="has no usable row$"):
        read_nps_csv(path)
    path.write_bytes(b"email,score\nj\xf6rg@x.example,9\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text; save it as 'CSV UTF-8'"):
        read_nps_csv(path)
    with pytest.raises(ConfigError, match="NPS file .*missing.csv not found"):
        read_nps_csv(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="needs --nps-property NAME or --nps-csv FILE"):
        NpsFilter()


def test_a_missing_attribute_or_table_is_a_setup_error(law_firms: Config) -> None:
    with pytest.raises(SchemaError, match="no attribute named 'ZNope' in ShAttributes"):
        export_opportunities(law_firms, as_of=AS_OF, nps=NpsFilter(property="ZNope"))
    law_firms.erp.profile = {"contact_custom_properties": TableOverride(table="CMContactProps")}
    with pytest.raises(SchemaError, match=r"table CMContactProps \(contact_custom_properties\) "
                                          r"not found; .*set erp\.profile\."
                                          r"contact_custom_properties\.table"):
        export_opportunities(law_firms, as_of=AS_OF, nps=NpsFilter(property="ZNPSScore"))


def test_a_snoozed_or_dismissed_opportunity_is_not_exported(law_firms: Config) -> None:
    """After 'opportunity dismiss ... --until' and a run, the HubSpot export still listed the
    customer the digest hid (#24)."""
    from keyservices.commands import opportunity

    keyservices.run(law_firms, as_of=AS_OF)
    before, count = export_opportunities(law_firms, service="DM", fmt="hubspot", as_of=AS_OF)
    assert "Law Firm 8" in before and "Law Firm 9" in before
    opportunity.dismiss(law_firms, "LAW08", "DM", until=AS_OF + dt.timedelta(days=90),
                        reason="not interested", today=AS_OF)
    opportunity.snooze(law_firms, "LAW09", "DM", until=AS_OF + dt.timedelta(days=30),
                       reason="call in spring", today=AS_OF)
    keyservices.run(law_firms, as_of=AS_OF)
    after, left = export_opportunities(law_firms, service="DM", fmt="hubspot", as_of=AS_OF)
    assert "Law Firm 8" not in after and "Law Firm 9" not in after and left == count - 2
