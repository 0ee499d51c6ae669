"""The digest on every screen and at any size: the HTML part under Gmail's clipping size, a layout
that fits a phone, a text part with each line where it belongs, a bounded attachment, and a
demo whose nights end today so that following its next steps never undoes night 2."""

from __future__ import annotations

import csv
import datetime as dt
import email
import email.policy
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

import keyservices
from keyservices.cli import cli
from keyservices.model import (
    Change,
    Counts,
    CustomerRef,
    DigestData,
    Opportunity,
    ServiceCount,
    StatusAlert,
)
from keyservices.outputs.attachment import changes_listing
from keyservices.outputs.digest import (
    HTML_LIMIT,
    build_message,
    find_templates_dir,
    load_data,
    render,
    save_data,
    trimmed,
)

ROOT = Path(__file__).resolve().parents[1]
NAMES = {"CPY": "Copiers", "MPS": "Managed Print", "DM": "Document Management",
         "MIT": "Managed IT"}
BRANCHES = ("Springfield (Main)", "Shelbyville", "Ogdenville", "Capital City")
REPS = ("Dana Whitfield", "Lena Schäfer", "Marco Rossi", "Priya Nair", "Zoë Lambert")
AS_OF = dt.date(2026, 11, 24)


def night(n: int, **kw: object) -> DigestData:
    """A night with ``n`` of everything a digest lists, with realistic ERP-sized texts."""
    def where(i: int) -> dict[str, str]:
        return {"branch": BRANCHES[i % 4], "sales_rep": REPS[i % 5]}

    changes = [Change(customer_id=i, number=f"CUS{i:06d}", name=f"Evergreen Fabrication {i} Inc.",
                      before="CPY;MPS;DM", after="CPY;MPS;DM;MIT", added=("MIT",),
                      removed=("DM",) if i % 3 == 0 else (), **where(i))
               for i in range(n)]
    opportunities = [Opportunity(f"CUS{i:06d}", f"Maple Medical Center {i}", service="Copiers",
                                 priority=("Critical", "High", "Medium", "Low")[i % 4],
                                 reason="84% of 129 Healthcare customers use Copiers",
                                 status="open" if i % 2 else "new", age_days=i % 40,
                                 why=(("Renewal conversation coming up (a contract expires within "
                                      "90 days): High, +15 points"),
                                      "Mid-size account (tier B): +5 points"), **where(i))
                     for i in range(n)]
    alerts = [StatusAlert(f"CUS{i:06d}", f"Bluebird Tooling Co. {i}", BRANCHES[i % 4],
                          "Document management lapsing",
                          f"Bluebird Tooling Co. {i} paid 553.63 for document management in the "
                          "last 90 days but nothing in the last 30. Call Kai Lefèvre "
                          "(555-852-3110) or email kai.lefevre@customer355.example.",
                          sales_rep=REPS[i % 5]) for i in range(n)]
    refs = [CustomerRef(f"NOC{i:06d}", f"Cedar Home & Garden {i}", **where(i)) for i in range(n)]
    won_lost = {"windows": ["tonight", "last 30 days", "last 90 days"],
                "rows": [{"group": f"Sales rep {i}", "cells": [[3, 1, 12345.0, 6789.0]] * 3}
                         for i in range(min(n, 400))]}
    base: dict[str, object] = {
        "run_id": 12, "as_of": AS_OF, "generated_at": dt.datetime(2026, 11, 24, 2, 30),
        "dealer": "Demo Office Systems", "property_name": "ZCJKeyServices", "mode": "live", "dry_run": False,
        "baseline": False,
        "counts": Counts(read=n * 3, classified=n * 2, changed=n, written=n, no_configuration=n,
                      no_attribute=n),
        "changes": changes, "no_configuration": refs, "no_attribute": refs[: n // 2],
        "services": [ServiceCount(code, name, n, 0.5) for code, name in NAMES.items()],
        "service_names": NAMES, "opportunities": opportunities, "alerts": alerts, "won_lost": won_lost,
        "notes": ["x" * 3000 for _ in range(40)]}
    base.update(kw)
    return DigestData(**base)  # type: ignore[arg-type]


def bodies(rendered) -> tuple[str, str, email.message.EmailMessage]:  # type: ignore[no-untyped-def]
    msg = build_message(rendered, sender="ks@example.com", recipients=["m@example.com"])
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    html = parsed.get_body(preferencelist=("html",)).get_content()
    text = parsed.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    return html, text, parsed


# -- size -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_rows", [50, 5000])
def test_html_part_stays_under_gmails_clipping_size_on_a_huge_night(max_rows: int) -> None:
    """5,000 changes, opportunities, alerts and unwritable customers: the HTML part stays under
    100 KB even when an admin sets digest.max_rows to 5,000, and every capped list points to
    the command that lists the rest."""
    rendered = render(night(5000, config_file="/opt/keyservices/config.yaml"), find_templates_dir(),
                      max_rows=max_rows, max_unwritable_rows=max_rows, max_opportunities=max_rows)
    html, text, _ = bodies(rendered)
    html = re.sub(r"<[^>]+>", "", html)  # the commands are set in a monospace span
    assert HTML_LIMIT == 100_000
    assert len(rendered.html.encode("utf-8")) <= HTML_LIMIT
    for part in (html, text):
        assert re.search(r"\+[\d,]+ more, ranked lower: keyservices export opportunities "
                         r"-c /opt/keyservices/config.yaml", part), part[-3000:]
        # the capped list is tonight's new alerts: the command lists those (#24)
        assert re.search(r"\+[\d,]+ more new: keyservices export alerts --new -c "
                         r"/opt/keyservices/config\.yaml", part)
        assert re.search(r"\+[\d,]+ more \(full list in the attached", part)
    # the headline numbers and the lower sections are all still there (nothing clipped away)
    for section in ("Services added and removed", "Who to call first", "Status alerts",
                    "Won and lost", "Customers that cannot be written", "Service penetration"):
        assert section in html, section


def test_a_busy_ordinary_night_keeps_the_configured_caps() -> None:
    """Ten reps, ten new alerts, 400 of everything else: every list as long as configured (50
    changes, 25 opportunities, 20 unwritable), with room to spare under the limit."""
    reps = {"windows": ["tonight", "last 30 days", "last 90 days"],
            "rows": [{"group": rep, "cells": [[3, 1, 12345.0, 6789.0]] * 3} for rep in REPS * 2]}
    d = night(400, notes=["1 value(s) were edited in e-automate meanwhile"], won_lost=reps)
    d.alerts = d.alerts[:10]
    rendered = render(d, find_templates_dir())
    assert len(rendered.html.encode("utf-8")) <= 85_000
    for line in ("+350 more (full list in the attached CSV)", "+375 more, ranked lower:",
                 "+380 more (full list in the attached CSV)"):
        assert line in rendered.text, line


# -- the layout on a phone, without a browser -----------------------------------------------------
class _Layout(HTMLParser):
    """Fixed widths, nowrap texts and table headers of an HTML part (MSO-only comments skipped,
    as only Outlook on Windows reads them, at its own fixed width)."""

    def __init__(self) -> None:
        super().__init__()
        self.widths: list[tuple[str, int]] = []
        self.headers: list[str] = []
        self.nowrap_texts: list[str] = []
        self._stack: list[tuple[str, bool]] = []
        self._th = False
        self.viewport = ""
        self.containers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        style = a.get("style", "").replace(" ", "").lower()
        if tag == "meta" and a.get("name") == "viewport":
            self.viewport = a.get("content", "")
        if a.get("width", "").isdigit():
            self.widths.append((tag, int(a["width"])))
        for m in re.finditer(r"(?<![-a-z])(?:min-)?width:(\d+)px", style):
            self.widths.append((tag, int(m.group(1))))
        if "max-width:680px" in style:
            self.containers.append(style + f"|width={a.get('width', '')}")
        if tag not in ("br", "meta", "img"):
            nowrap = "white-space:nowrap" in style or (
                bool(self._stack) and self._stack[-1][1] and "white-space:normal" not in style)
            self._stack.append((tag, nowrap))
        self._th = self._th or tag == "th"

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            if self._stack.pop()[0] == tag:
                break
        if tag == "th":
            self._th = False

    def handle_data(self, data: str) -> None:
        if self._th and data.strip():
            self.headers.append(data.strip())
        if self._stack and self._stack[-1][1] and data.strip():
            self.nowrap_texts.append(data.strip())


def layout(html: str) -> _Layout:
    parser = _Layout()
    parser.feed(re.sub(r"<!--\[if mso\]>.*?<!\[endif\]-->", "", html, flags=re.DOTALL))
    return parser


def test_layout_is_fluid_and_fits_a_375px_phone() -> None:
    d = night(60, changes=[Change(customer_id=1, number="CUS000001",
                                  name="Lakeside" * 12, branch="North", sales_rep="Dana",
                                  before="CPY;MPS;DM;MIT;" * 8, after="CPY", added=(),
                                  removed=("MPS", "DM", "MIT"))])
    rendered = render(d, find_templates_dir())
    found = layout(rendered.html)
    assert "width=device-width" in found.viewport
    # one content column: as wide as the screen, never wider than 680 px
    assert found.containers and all("width:100%" in c or "width=100%" in c
                                    for c in found.containers), found.containers
    assert [w for w in found.widths if w[1] > 375] == []
    # only short tokens (customer numbers, amounts) may refuse to wrap
    assert [t for t in found.nowrap_texts if len(t) > 16] == []
    # long unbroken values wrap instead of pushing the table wider than the screen
    assert "overflow-wrap:anywhere" in rendered.html.replace(" ", "")
    for column in ("Customer", "Change", "Priority · customer", "Why", "Alert", "Sales rep",
                   "tonight", "last 30 days", "last 90 days", "Branch · sales rep"):
        assert column in found.headers, column
    # the four headline numbers sit in one row of four quarter-width cells
    assert len(re.findall(r'<td width="25%"', rendered.html)) == 4


# -- the text part --------------------------------------------------------------------------------
def test_text_part_puts_every_line_on_its_own_and_counts_in_the_singular() -> None:
    d = night(3)
    opportunities = [Opportunity("CUS000001", "Maple Medical Center", "North", "Lena Schäfer",
                                 "Copiers", "High", "84% of 129 Healthcare customers use Copiers",
                                 status="open", age_days=1,
                                 why=("Renewal conversation coming up: High, +15 points",
                                      "Mid-size account (tier B): +5 points"))]
    carried = Change(customer_id=9, number="CAR000009", name="Carried Co", branch="North",
                     sales_rep="Dana", before="CPY", after="CPY;MIT", added=("MIT",), removed=(),
                     carried_from=11)
    d = night(3, opportunities=opportunities, changes=[carried, *d.changes[:1]],
              counts=Counts(read=1, classified=1, changed=1, written=1, no_configuration=1,
                            no_attribute=1),
              services=[ServiceCount("CPY", "Copiers", 1, 1.0)])
    rendered = render(d, find_templates_dir())
    text = rendered.text
    lines = text.splitlines()
    assert ("  [High] CUS000001  Maple Medical Center - Copiers (Lena Schäfer)" in lines), text
    reason = lines.index("      84% of 129 Healthcare customers use Copiers (open 1 day)")
    assert lines[reason + 1] == "      - Renewal conversation coming up: High, +15 points"
    assert lines[reason + 2] == "      - Mid-size account (tier B): +5 points"
    # a change's services are on their own line, also after a carried-over mark
    at = lines.index("  CAR000009  Carried Co  (written by run 11, carried over)")
    assert lines[at + 1] == "      + Managed IT"
    at = lines.index("  CUS000000  Evergreen Fabrication 0 Inc.")
    assert lines[at + 1:at + 3] == ["      + Managed IT", "      - Document Management"]
    assert "1 customer read, 1 classified" in text and "1 customers" not in text
    assert "1 services" not in text and "1 days" not in text
    one = render(night(3, changes=[carried]), find_templates_dir()).subject
    assert "1 service added, 0 removed on 1 customer;" in one
    html = rendered.html
    assert "open 1 day<" in html and "1 customers" not in html


# -- the attachment -------------------------------------------------------------------------------
def test_attachment_of_a_big_night_is_zipped_then_replaced_by_a_command() -> None:
    templates = find_templates_dir()
    small = render(night(50), templates)
    assert small.attachment is not None and small.attachment.filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(small.attachment.data.decode("utf-8-sig"))))
    assert len([r for r in rows if r["kind"] == "change"]) == 50
    # over the limit: zipped, and the zip holds the same CSV
    zipped = render(night(3000), templates, attachment_limit=150_000)
    assert zipped.attachment is not None and zipped.attachment.filename.endswith(".zip")
    assert len(zipped.attachment.data) <= 150_000
    with zipfile.ZipFile(io.BytesIO(zipped.attachment.data)) as zf:
        (name,) = zf.namelist()
        content = zf.read(name).decode("utf-8-sig")
    assert name.endswith(".csv") and content.count("\r\nchange,") == 3000
    html, text, parsed = bodies(zipped)
    assert "full list in the attached keyservices-changes.zip" in text
    (part,) = list(parsed.iter_attachments())
    assert part.get_content_type() == "application/zip"
    # even zipped too large: no attachment, and the digest names the command that lists them
    huge = render(night(3000, config_file="/opt/ks/config.yaml"), templates,
                  attachment_limit=20_000)
    assert huge.attachment is None
    html, text, parsed = bodies(huge)
    assert not list(parsed.iter_attachments())
    assert re.search(r"\+[\d,]+ more: keyservices history --run 12 --limit 0 -c "
                     r"/opt/ks/config\.yaml", text)
    assert "too large to attach" in text and "too large to attach" in html
    # a night of more rows than anyone reads in a mail is not even streamed
    assert changes_listing(night(300), max_rows=300).too_large  # 750 rows
    assert changes_listing(night(100), max_rows=300).attachment is not None  # 250 rows


def test_saved_digest_data_is_bounded_and_previews_the_same(tmp_path: Path) -> None:
    d = night(5000)
    kept = trimmed(d, keep=60, attachment="")
    assert len(kept.changes) == 60 and len(kept.alerts) == 60
    save_data(kept, tmp_path / "run.json.gz")
    assert (tmp_path / "run.json.gz").stat().st_size < 200_000
    templates = find_templates_dir()
    full = render(d, templates, attachment_limit=0)
    again = render(load_data(tmp_path / "run.json.gz"), templates, attachment_limit=0)
    assert again.html == full.html and again.text == full.text


# -- a real browser, when there is one --------------------------------------------------------------
@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="chromium is not installed (apt-get install chromium)")
def test_chromium_lays_the_digest_out_within_375px(tmp_path: Path) -> None:
    d = night(60)
    page = tmp_path / "digest.html"
    page.write_text(render(d, find_templates_dir()).html, encoding="utf-8")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "screenshot_digest.py"),
                          str(page), "--measure", "--width", "375"], capture_output=True,
                         text=True, timeout=180, check=True)
    width, height = map(int, out.stdout.split()[-1].split("x"))
    assert width <= 375 and height > 2000


# -- the demo -------------------------------------------------------------------------------------
def test_demo_nights_end_today_and_its_next_steps_change_nothing(tmp_path: Path,
                                                                 runner: CliRunner) -> None:
    folder = tmp_path / "demo"
    shown = runner.invoke(cli, ["demo", "--dir", str(folder), "--customers", "300"])
    assert shown.exit_code == 0, shown.output
    today = dt.date.today()
    assert f"Night 1 ({today - dt.timedelta(days=1)}, baseline)" in shown.output
    assert f"Night 2 ({today}, changes)" in shown.output
    steps = [line.split("Next:", 1)[1] if "Next:" in line else line
             for line in shown.output.splitlines()
             if line.strip().startswith(("Next:", "keyservices "))]
    assert steps and steps[0].strip().startswith("keyservices run ")
    dry = shlex.split(steps[0])[1:] + ["--json"]
    planned = runner.invoke(cli, dry)
    assert planned.exit_code == 0, planned.output
    assert json.loads(planned.output)["counts"]["changed"] == 0  # night 2 stays as it is
    report_step = next(s for s in steps if "keyservices report" in s)
    shown = runner.invoke(cli, shlex.split(report_step)[1:] + ["--out", str(tmp_path / "r"),
                                                               "--json"])
    assert shown.exit_code == 0, shown.output
    won_lost = json.loads(shown.output)["won_lost"]["last 30 days"]
    assert won_lost["won"] > 0 and won_lost["lost"] > 0


def test_demo_as_of_is_night_two_and_the_next_steps_carry_it(tmp_path: Path) -> None:
    result = keyservices.demo(tmp_path / "demo", customers=300, as_of=AS_OF)
    assert [n.as_of for n in result.nights] == [AS_OF - dt.timedelta(days=1), AS_OF]
    assert all(f"--as-of {AS_OF}" in step for step in result.next_steps)
    config = keyservices.load_config(result.config)
    again = keyservices.run(config, dry_run=True, as_of=AS_OF)
    assert again.counts.changed == 0
    night2 = result.nights[1]
    report = keyservices.report(config, out=tmp_path / "report", as_of=AS_OF)
    assert report.won_lost is not None
    assert report.won_lost["last 30 days"]["won"] == sum(len(c.added) for c in night2.changes)
    assert report.won_lost["last 30 days"]["lost"] == sum(len(c.removed) for c in night2.changes)


def test_the_overflow_hints_name_commands_that_list_without_writing() -> None:
    """'+140 more (keyservices run --json lists them all)' started a live nightly run, and
    '+141 more new: keyservices export alerts' listed every alert, not the new ones (#24)."""
    from keyservices.model import RiskFlag

    data = night(60, config_file="/opt/keyservices/config.yaml")
    data.risks = [RiskFlag(i, f"CUS{i:06d}", f"Leaving Co {i}", BRANCHES[i % 4], REPS[i % 5],
                           "takeout", "machines gone, contract active") for i in range(60)]
    rendered = render(data, find_templates_dir(), max_rows=10, max_unwritable_rows=10,
                      max_opportunities=10)
    html, text, _ = bodies(rendered)
    html = re.sub(r"<[^>]+>", "", html)
    for part in (html, text):
        assert "+50 more (keyservices run --dry-run --json -c /opt/keyservices/config.yaml " \
               "lists them all)" in part
        assert "keyservices run --json" not in part and "run -c" not in part
        assert re.search(r"more new: keyservices export alerts --new ", part)


def test_a_reps_copy_counts_its_own_customers_everywhere() -> None:
    """A rep's copy said '22 cannot be written' in the subject and the company's 106 + 49 in
    the body; 'AT RISK (7)' listed 6 customers, one under two flags (#24)."""
    from keyservices.model import RiskFlag
    from keyservices.outputs.digest import for_sales_rep

    data = night(100)
    data.counts.no_configuration, data.counts.no_attribute = 106, 49
    data.risks = [RiskFlag(1, "CUS000001", "Leaving Co", BRANCHES[1], REPS[1], kind, "gone")
                  for kind in ("takeout", "churn")]
    mine = for_sales_rep(data, REPS[1])
    own = len(mine.no_configuration) + len(mine.no_attribute)
    assert 0 < own < 155
    rendered = render(mine, find_templates_dir())
    html, text, _ = bodies(rendered)
    assert rendered.subject.endswith(f"; {own} cannot be written")
    flat = re.sub(r"<[^>]+>", " ", html)
    assert "155" not in flat and "106" not in text and f"{own}" in flat
    assert "At risk (1)" in html and "AT RISK (1)" in text


def test_the_calls_and_the_money_come_first() -> None:
    """'Who to call first' started about 37 % down the page, and no money figure appeared in
    the digest (#24): the calls now follow the headline numbers, with what they are worth."""
    import dataclasses

    data = night(40)
    data.opportunities = [dataclasses.replace(o, estimated_annual_value=1200.0 + i)
                          for i, o in enumerate(data.opportunities)]
    rendered = render(data, find_templates_dir())
    html, text, _ = bodies(rendered)
    total = sum(1200.0 + i for i in range(40))
    for part, calls, changes in ((html, "Who to call first", "Services added and removed"),
                                 (text, "WHO TO CALL FIRST", "SERVICES ADDED AND REMOVED")):
        assert part.index(calls) < part.index(changes)
    assert f"~{total:,.0f} a year at stake" in text
    assert f"~{total:,.0f} a year</b> at stake" in html
