"""The digest: what managers read. Escaping, caps, CSV, baseline, guard, nothing-changed."""

from __future__ import annotations

import csv
import datetime as dt
import email
import email.policy
import io
import re
from pathlib import Path

from keyservices.model import Change, Counts, CustomerRef, DigestData, ServiceCount
from keyservices.outputs.digest import build_message, find_templates_dir, render, write_outbox

HOSTILE = "<script>alert(\"x\")</script> & 'Co'"
NAMES = {"CPY": "Copiers", "MPS": "Managed Print", "DM": "Document Management",
         "MIT": "Managed IT"}


def change(i: int, name: str = "Plain Co", **kw: object) -> Change:
    base = {"customer_id": i, "number": f"C{i:04d}", "name": name, "branch": "North",
                "sales_rep": "Dana", "before": "CPY", "after": "CPY;MIT", "added": ("MIT",), "removed": ()}
    base.update(kw)
    return Change(**base)  # type: ignore[arg-type]


def data(**kw: object) -> DigestData:
    base = {
        "run_id": 7, "as_of": dt.date(2026, 11, 24), "generated_at": dt.datetime(2026, 11, 24, 2, 30),
        "dealer": "Demo & Sons", "property_name": "ZCJKeyServices", "mode": "live", "dry_run": False,
        "baseline": False, "counts": Counts(read=10, classified=8, changed=2, written=2, no_configuration=1,
                      no_attribute=1),
        "changes": [change(1, HOSTILE), change(2, "Café Müller", added=(), removed=("DM",),
                                              before="CPY;DM", after="CPY")],
        "no_configuration": [CustomerRef("N001", "No Config <Ltd>", "North", "Dana")],
        "no_attribute": [CustomerRef("A001", "Legacy & Co", "South", None)],
        "services": [ServiceCount("CPY", "Copiers", 6, 0.75), ServiceCount("MIT", "Managed IT",
                                                                         1, 0.125)],
        "service_names": NAMES}
    base.update(kw)
    return DigestData(**base)  # type: ignore[arg-type]


def parts(d: DigestData, max_rows: int = 50):
    rendered = render(d, find_templates_dir(), max_rows=max_rows)
    msg = build_message(rendered, sender="ks@example.com", recipients=["m@example.com"])
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    html = parsed.get_body(preferencelist=("html",)).get_content()
    text = parsed.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    return rendered, parsed, html, text


def test_hostile_names_are_escaped_in_html_and_plain_in_text() -> None:
    _, _, html, text = parts(data())
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#39;Co&#39;" in html
    assert "No Config &lt;Ltd&gt;" in html and "Demo &amp; Sons" in html
    assert HOSTILE in text and "Café Müller" in text


def test_subject_has_date_and_counts_but_no_customer_data() -> None:
    rendered, parsed, _, _ = parts(data())
    assert parsed["Subject"] == ("[keyservices] 2026-11-24: 1 service added, 1 removed on 2 "
                                 "customers; 2 cannot be written")
    assert "Café" not in rendered.subject and "C0001" not in rendered.subject


def test_changes_grouped_with_added_removed_and_unwritable_with_fix_steps() -> None:
    _, _, html, text = parts(data())
    assert "North / Dana" in text
    assert "+ Managed IT" in text and "- Document Management" in text
    assert "CUSTOMERS WITHOUT A CUSTOM-PROPERTY CONFIGURATION (1)" in text
    assert "CUSTOMERS WHOSE CONFIGURATION LACKS ZCJKeyServices (1)" in text
    assert "Configurations (Custom Properties), select\n  Customer, click Assign" in text
    assert "&rarr; select <b>Customer</b> &rarr; <b>Assign</b>" in html
    assert "Service penetration" in html and "75%" in html


def test_long_lists_are_capped_and_attached_in_full_as_csv() -> None:
    many = [change(i) for i in range(120)]
    _, parsed, html, text = parts(data(changes=many), max_rows=50)
    assert "+70 more (full list in the attached CSV)" in html
    assert "+70 more (full list in the attached CSV)" in text
    (attachment,) = list(parsed.iter_attachments())
    assert attachment.get_filename() == "keyservices-changes.csv"
    rows = list(csv.DictReader(io.StringIO(attachment.get_content().lstrip("\ufeff"))))
    assert len([r for r in rows if r["kind"] == "change"]) == 120
    assert {r["kind"] for r in rows} == {"change", "no_configuration", "no_attribute"}


def test_baseline_says_so_instead_of_listing_everyone() -> None:
    _, parsed, _, text = parts(data(baseline=True))
    assert "baseline, 8 customers classified" in parsed["Subject"]
    assert "BASELINE: 8 customers classified" in text
    assert "SERVICES ADDED AND REMOVED" not in text


def test_guard_test_mode_and_nothing_changed() -> None:
    _, parsed, html, _ = parts(data(guard_message="Change guard: 900 changes exceed 50."))
    assert "CHANGE GUARD" in parsed["Subject"] and "Change guard tripped." in html
    _, parsed, html, _ = parts(data(mode="test"))
    assert parsed["Subject"].startswith("[keyservices TEST]") and "TEST MODE" in html
    _, parsed, html, text = parts(data(changes=[], no_configuration=[], no_attribute=[]))
    assert "nothing changed" in parsed["Subject"] and "Nothing changed" in text
    assert not list(parsed.iter_attachments())


def test_html_is_email_safe() -> None:
    _, _, html, _ = parts(data())
    # only Outlook on Windows reads [if mso] comments (its fonts and fixed width live there)
    lowered = re.sub(r"<!--\[if mso\]>.*?<!\[endif\]-->", "", html, flags=re.DOTALL).lower()
    for banned in ("<style", "<script", "display:flex", "display: flex", "grid", "<img",
                   "http://", "https://", "<link"):
        assert banned not in lowered, banned


def test_outbox_files_are_written(tmp_path: Path) -> None:
    rendered, _, _, _ = parts(data())
    msg = build_message(rendered, sender="ks@example.com", recipients=["m@example.com"])
    paths = write_outbox(msg, rendered, tmp_path / "outbox", "2026-11-24-run0007-digest")
    assert paths.eml.read_bytes().startswith(b"Subject:") or b"Subject:" in paths.eml.read_bytes()
    assert paths.html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not list((tmp_path / "outbox").glob("*.tmp"))


def test_opportunities_and_status_alerts_render_when_present() -> None:
    from keyservices.model import Opportunity, StatusAlert

    d = data(opportunities=[Opportunity("C0009", "Law & Order <LLP>", "North", "Dana",
                                        "Document Management", "High",
                                        "60% of Legal peers use it")],
             alerts=[StatusAlert("C0010", "Lapsing Ltd", "North", "Lapsing managed IT",
                                 "No managed-IT revenue in 30 days, 4,200.00 in 90")])
    _, _, html, text = parts(d)
    assert "Who to call first" in html and "Law &amp; Order &lt;LLP&gt;" in html
    assert "[High] C0009  Law & Order <LLP> - Document Management (Dana)" in text
    assert "Status alerts" in html and "STATUS ALERTS (1 new tonight, 0 continuing)" in text
    _, _, html, text = parts(data())
    assert "Who to call first" not in html and "STATUS ALERTS" not in text


def test_branch_copy_lists_only_that_branch() -> None:
    from keyservices.outputs.digest import for_branch

    d = data(changes=[change(1, branch="North"), change(2, branch="South")])
    south = for_branch(d, "South")
    assert [c.number for c in south.changes] == ["C0002"]
    assert south.no_configuration == [] and south.branch == "South"
    _, parsed, html, _ = parts(south)
    assert parsed["Subject"].startswith("[keyservices South]")
    assert "branch <b style=\"color:#ffffff;\">South</b> only" in html


def test_preview_rerenders_the_latest_run_with_current_templates(tmp_path: Path) -> None:
    import shutil

    import keyservices
    from keyservices.resources import templates_dir

    result = keyservices.demo(tmp_path / "demo", customers=80, as_of=dt.date(2026, 11, 24))
    config = keyservices.load_config(result.config)
    path, text = keyservices.preview_digest(config)
    night2 = result.nights[1].digest_html.read_text(encoding="utf-8")
    # the same digest as night 2 sent, but for the rendering time in the footer
    strip = lambda html: "\n".join(l for l in html.splitlines() if "keyservices run" not in l)
    assert strip(path.read_text(encoding="utf-8")) == strip(night2)
    assert "Key services 2026-11-24" in text  # the demo's night 2 is its as_of
    custom = tmp_path / "templates"
    shutil.copytree(templates_dir(), custom)
    html_t = custom / "digest.html.j2"
    html_t.write_text(html_t.read_text(encoding="utf-8").replace(
        "Service penetration", "Penetration by service"), encoding="utf-8")
    config.digest.templates = custom
    path, _ = keyservices.preview_digest(config, run_id=1)
    assert "Penetration by service" in path.read_text(encoding="utf-8")
    assert "Baseline" in path.read_text(encoding="utf-8")
