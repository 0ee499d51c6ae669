"""The morning, top first (#24, item 8): every digest copy opens with the money (this week's won
and lost annual value, what the calls listed are worth), a rep's or branch's copy counting only
its own customers; the unwritable lists say themselves in one line once they are unchanged
since the previous night's digest, and in full again when they change."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import re
from pathlib import Path

import sqlalchemy as sa

import keyservices
from keyservices.model import CustomerRef, DigestData
from keyservices.outputs.digest import (
    HTML_LIMIT,
    find_templates_dir,
    for_branch,
    for_sales_rep,
    load_data,
    render,
)
from keyservices.outputs.morning import settle_unwritable
from keyservices.resources import SECTION_TEMPLATE

from .conftest import AS_OF, ErpBuilder
from .test_digest_screens import BRANCHES, REPS, bodies, layout, night

WEEK = {"since": "2026-11-18", "until": "2026-11-24", "all": [5, 2, 14400.0, 3000.0],
        "branch": {BRANCHES[0]: [3, 1, 12400.0, 2100.0], BRANCHES[1]: [2, 1, 2000.0, 900.0]},
        "sales_rep": {REPS[0]: [4, 0, 13000.0, 0.0], REPS[1]: [1, 2, 1400.0, 3000.0]}}
REP_LINE = '  sales_reps:\n    "Dana Rep": [dana@example.com]\n    "Lee Other": [lee@example.com]\n'


def with_money(n: int = 40, **kw: object) -> DigestData:
    """A night whose calls are worth 1,000 + i a year and whose week is ``WEEK``."""
    data = night(n, **{"notes": [], **kw})
    data.opportunities = [dataclasses.replace(o, estimated_annual_value=1000.0 + i)
                          for i, o in enumerate(data.opportunities)]
    data.won_lost = {**data.won_lost, "week": WEEK}
    return data


def plain(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).replace("&middot;", "·")


# -- the money ------------------------------------------------------------------------------------
def test_the_money_opens_the_digest_before_the_changes() -> None:
    rendered = render(with_money(20), find_templates_dir(), max_opportunities=5)
    html, text, _ = bodies(rendered)
    shown = sum(1000.0 + i for i in range(5))  # the five calls listed, not all forty
    for part, changes, calls in ((plain(html), "Services added and removed", "Who to call first"),
                                 (text, "SERVICES ADDED AND REMOVED", "WHO TO CALL FIRST")):
        won = part.index("Won this week (18 Nov to 24 Nov): 5 services, ~14,400 a year; "
                         "lost: 2, ~3,000 a year.")
        stake = part.index(f"~{shown:,.0f} a year at stake in the 5 calls below" if part is not text
                           else f"At stake in the 5 calls below: ~{shown:,.0f} a year")
        assert won < part.index(calls) < part.index(changes)
        assert stake < part.index(calls)
    # on the first screen: right under the headline numbers, above the run's summary line
    assert html.index("Won this week") < html.index("customers read")
    assert text.index("Won this week") < text.index("WHO TO CALL FIRST")


def test_a_reps_and_a_branchs_copy_count_their_own_week_and_calls() -> None:
    data = with_money(40)
    templates = find_templates_dir()
    rep = render(for_sales_rep(data, REPS[1]), templates, max_opportunities=3)
    html, text, _ = bodies(rep)
    assert "Won this week (18 Nov to 24 Nov): 1 service, ~1,400 a year; lost: 2, ~3,000 a year." \
        in text
    # the rep's calls are every fifth one (i = 1, 6, 11): what those three are worth
    assert "At stake in the 3 calls below: ~3,018 a year" in text
    assert "14,400" not in text and "14,400" not in html
    branch = render(for_branch(data, BRANCHES[0]), templates)
    _, text, _ = bodies(branch)
    assert "Won this week (18 Nov to 24 Nov): 3 services, ~12,400 a year; lost: 1, ~2,100 a year." \
        in text
    # a rep with nothing this week reads 0, not the company's figures
    nobody = render(for_sales_rep(data, REPS[4]), templates)
    assert "Won this week (18 Nov to 24 Nov): 0 services; lost: 0." in nobody.text


def test_no_week_where_the_run_did_not_read_it_and_a_zero_week_says_so() -> None:
    data = with_money(10)
    data.won_lost = {}  # a test-mode run, or the change guard tripped: no won/lost was read
    text = render(data, find_templates_dir()).text
    assert "Won this week" not in text and "At stake in the 10 calls below" in text
    # a baseline has no week behind it: nothing won or lost yet is not news
    baseline = dataclasses.replace(with_money(10), baseline=True)
    assert "Won this week" not in render(baseline, find_templates_dir()).text


def test_the_groups_section_carries_the_money_in_one_line() -> None:
    rendered = render(with_money(40), find_templates_dir(), max_opportunities=4,
                      html_template=SECTION_TEMPLATE, max_html_bytes=10**9)
    flat = plain(rendered.html)
    assert "Won this week: 5, ~14,400 a year; lost: 2, ~3,000 a year · ~4,006 a year in the " \
           "4 calls below" in flat
    assert flat.index("Won this week") < flat.index("Who to call first")


def test_the_first_screen_fits_a_phone_and_the_mail_stays_under_100_kb() -> None:
    huge = with_money(5000)
    huge.unchanged = {"no_configuration": "2026-11-23"}
    rendered = render(huge, find_templates_dir(), max_rows=5000, max_unwritable_rows=5000,
                      max_opportunities=5000)
    assert len(rendered.html.encode("utf-8")) <= HTML_LIMIT
    found = layout(rendered.html)
    assert [w for w in found.widths if w[1] > 375] == []
    assert [t for t in found.nowrap_texts if len(t) > 16] == []


# -- the unwritable lists, collapsed while unchanged ----------------------------------------------
def refs(*numbers: str, rep: str = REPS[0]) -> list[CustomerRef]:
    return [CustomerRef(n, f"Cedar {n}", BRANCHES[0], rep) for n in numbers]


def test_a_list_unchanged_since_the_previous_digest_is_one_line() -> None:
    templates = find_templates_dir()
    first = night(5, no_configuration=refs("A1", "A2", "A3"), no_attribute=refs("B1"))
    first.unwritable_seen = settle_unwritable([first], None)
    assert first.unchanged == {}
    second = night(5, as_of=AS_OF + dt.timedelta(days=1),
                   no_configuration=refs("A3", "A1", "A2"), no_attribute=refs("B1", "B2"))
    second.unwritable_seen = settle_unwritable([second], first)
    assert second.unchanged == {"no_configuration": AS_OF.isoformat()}  # B2 is new
    html, text, _ = bodies(render(second, templates))
    assert ("WITHOUT A CUSTOM-PROPERTY CONFIGURATION: 3 customers, unchanged since last night "
            "(keyservices run --dry-run --json -c config.yaml lists them)") in text
    assert "A1  Cedar A1" not in text and "B2  Cedar B2" in text
    assert ("Without a custom-property configuration: 3 customers, unchanged since last night "
            "(keyservices run --dry-run --json -c config.yaml lists them)") in plain(html)
    # a third night, still the same: since the night it was last listed in full
    third = night(5, as_of=AS_OF + dt.timedelta(days=3), no_configuration=refs("A1", "A2", "A3"),
                  no_attribute=refs("B1", "B2"))
    third.unwritable_seen = settle_unwritable([third], second)
    text = render(third, templates).text
    assert "3 customers, unchanged since Tue 24 Nov" in text
    assert "CONFIGURATION WITHOUT ZCJKeyServices: 2 customers, unchanged since Wed 25 Nov" in text
    # a dry run always lists them in full
    dry = dataclasses.replace(third, dry_run=True)
    assert "A1  Cedar A1" in render(dry, templates).text


def test_a_copy_compares_its_own_customers() -> None:
    """A customer moving from one rep to another leaves the company's list as it was, but
    changes both reps' lists: those copies list in full, the consolidated one collapses."""
    first = night(5, no_configuration=refs("A1", "A2") + refs("A3", rep=REPS[1]),
                  no_attribute=[])
    copies = [first, for_sales_rep(first, REPS[0]), for_sales_rep(first, REPS[1])]
    first.unwritable_seen = settle_unwritable(copies, None)
    moved = night(5, as_of=AS_OF + dt.timedelta(days=1),
                  no_configuration=refs("A1") + refs("A2", "A3", rep=REPS[1]), no_attribute=[])
    copies = [moved, for_sales_rep(moved, REPS[0]), for_sales_rep(moved, REPS[1]),
              for_sales_rep(moved, REPS[2])]
    settle_unwritable(copies, first)
    assert [bool(c.unchanged) for c in copies] == [True, False, False, False]


# -- end to end: nights of a live run -------------------------------------------------------------
def html_of(path: Path) -> str:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    return msg.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]


def second_rep(erp: ErpBuilder, cid: int) -> None:
    t = erp.t["ARCustomers"]
    with erp.engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c.CustomerID == cid).values(SalesRepID=2))


def test_live_nights_show_the_weeks_money_and_collapse_the_unchanged_lists(
        erp: ErpBuilder, config_for) -> None:
    erp.insert("SHAgents", AgentID=2, PrefFullName="Lee Other")
    dana = erp.customer("C100", "Dana's Copier Co")
    erp.equipment(dana, "MFP-A3-CO-03")
    lee = erp.customer("C200", "Lee's Copier Co")
    erp.equipment(lee, "MFP-A3-CO-03")
    second_rep(erp, lee)
    gone = erp.contract(lee, "DM-SUB", rate=50.0)
    for i in range(3):
        erp.customer(f"NOC{i}", f"No Config {i}", config=None)
    second_rep(erp, erp.customer("NOC9", "No Config Lee", config=None))
    config = config_for(erp, REP_LINE)

    night1 = keyservices.run(config, as_of=AS_OF)  # the baseline: every list in full
    assert night1.baseline and night1.digest_eml is not None
    assert "NOC1" in html_of(night1.digest_eml) and "Won this week" not in html_of(
        night1.digest_eml)

    # night 2: Dana's customer wins Document Management (1,200 a year), Lee's loses it (600)
    erp.contract(dana, "DM-SUB", rate=100.0)
    contracts = erp.t["SCContracts"]
    with erp.engine.begin() as conn:
        conn.execute(sa.update(contracts).where(contracts.c.ContractID == gone)
                     .values(Active=False))
    night2 = keyservices.run(config, as_of=AS_OF + dt.timedelta(days=1))
    assert night2.digest_eml is not None
    by_name = {p.name: p for p in night2.digests}
    consolidated = plain(html_of(night2.digest_eml))
    assert "Won this week (18 Nov to 25 Nov)" not in consolidated  # 7 nights, not 8
    assert ("Won this week (19 Nov to 25 Nov): 1 service, ~1,200 a year; lost: 1, ~600 a year."
            in consolidated)
    assert consolidated.index("Won this week") < consolidated.index("Services added and removed")
    collapsed = "Without a custom-property configuration: 4 customers, unchanged since last night"
    # (NOC1 is a call on the list: its status monitor fires; not a row of the collapsed list)
    assert collapsed in consolidated and "NOC1" not in consolidated.split(collapsed)[1][:300]
    dana_copy = plain(html_of(next(p for n, p in by_name.items() if "dana-rep" in n)))
    assert "Won this week (19 Nov to 25 Nov): 1 service, ~1,200 a year; lost: 0." in dana_copy
    assert "3 customers, unchanged since last night" in dana_copy
    lee_copy = plain(html_of(next(p for n, p in by_name.items() if "lee-other" in n)))
    assert "Won this week (19 Nov to 25 Nov): 0 services; lost: 1, ~600 a year." in lee_copy
    assert "1 customer, unchanged since last night" in lee_copy
    # what the run stored says the same when re-rendered (digest --preview)
    stored = load_data(config.state.dir / "digests" / f"run-{night2.run_id:06d}.json.gz")
    assert stored.unchanged == {"no_configuration": AS_OF.isoformat()}
    assert "unchanged since last night" in render(stored, find_templates_dir()).text

    # night 3: one more customer without a configuration: the list is shown in full again
    erp.customer("NOC5", "No Config 5", config=None)
    night3 = keyservices.run(config, as_of=AS_OF + dt.timedelta(days=2))
    assert night3.digest_eml is not None
    third = plain(html_of(night3.digest_eml))
    assert "NOC5" in third and "NOC1" in third and "unchanged since" not in third
    # night 4: the same five again: one line, unchanged since night 3
    night4 = keyservices.run(config, as_of=AS_OF + dt.timedelta(days=3))
    assert night4.digest_eml is not None
    fourth = plain(html_of(night4.digest_eml))
    line = "5 customers, unchanged since last night"
    assert line in fourth and "NOC5" not in fourth.split(line)[1][:300]
