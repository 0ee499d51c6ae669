"""The morning digest: rendered from Jinja templates into an email, always written to the outbox.

The HTML is email-safe (tables and inline styles only: Outlook ignores most CSS) and autoescaped, the
plain-text twin carries the same facts, and the subject carries dates and counts only, never customer
data. Long lists are capped in the body and attached in full as CSV.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.policy
import email.utils
import gzip
import io
import json
import re
from dataclasses import dataclass
from email.message import EmailMessage
from itertools import groupby
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError

from ..errors import ConfigError
from ..model import Change, Counts, CustomerRef, DigestData, Opportunity, ServiceCount, StatusAlert
from ..resources import DIGEST_TEMPLATES
from ..resources import templates_dir as packaged_templates
from .cells import csv_writer
from .files import atomic_write

HTML_TEMPLATE, TEXT_TEMPLATE = DIGEST_TEMPLATES


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    subject: str
    html: str
    text: str
    csv: str  # every change and unwritable customer; empty when there is nothing to list


@dataclass(frozen=True, slots=True)
class OutboxPaths:
    eml: Path
    html: Path


def find_templates_dir(override: Path | None = None) -> Path:
    """The configured template folder, else the one that ships with keyservices."""
    folder = override or packaged_templates()
    if not (folder / HTML_TEMPLATE).is_file() or not (folder / TEXT_TEMPLATE).is_file():
        raise ConfigError(f"digest templates {HTML_TEMPLATE} and {TEXT_TEMPLATE} not found in "
                          f"{folder} (check digest.templates in config.yaml)")
    return folder


def for_branch(data: DigestData, branch: str) -> DigestData:
    """A branch manager's copy: the same run, listing only that branch's customers."""
    return _only(data, "branch", branch)


def for_sales_rep(data: DigestData, rep: str) -> DigestData:
    """A sales rep's copy: the same run, listing only the customers the rep owns."""
    return _only(data, "sales_rep", rep)


def _only(data: DigestData, attribute: str, value: str) -> DigestData:
    def mine(items: list[Any]) -> list[Any]:
        return [x for x in items if (getattr(x, attribute) or "") == value]

    won_lost = data.won_lost
    if attribute == "sales_rep" and won_lost:  # a rep sees their own line
        rows = [r for r in won_lost["rows"] if r["group"] == value]
        won_lost = {**won_lost, "rows": rows} if rows else {}
    return dataclasses.replace(
        data, changes=mine(data.changes), no_configuration=mine(data.no_configuration),
        no_attribute=mine(data.no_attribute), opportunities=mine(data.opportunities),
        alerts=mine(data.alerts), won_lost=won_lost, **{attribute: value})


def slug(text: str) -> str:
    """A file-name-safe form of a branch name."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "branch"


def subject_for(data: DigestData) -> str:
    c = data.counts
    added = sum(len(ch.added) for ch in data.changes)
    removed = sum(len(ch.removed) for ch in data.changes)
    marks = [m for m, on in (("TEST", data.mode == "test"), ("DRY RUN", data.dry_run),
                             ("CHANGE GUARD", bool(data.guard_message))) if on]
    if data.branch or data.sales_rep:
        marks.insert(0, data.branch or data.sales_rep or "")
    prefix = "[keyservices" + "".join(f" {m}" for m in marks) + "]"
    unwritable = (len(data.no_configuration) + len(data.no_attribute)
                  if data.branch or data.sales_rep
                  else c.no_configuration + c.no_attribute)
    if data.baseline:
        body = f"baseline, {c.classified:,} customers classified"
    elif not data.changes:
        body = "nothing changed"
    else:
        body = f"{added:,} services added, {removed:,} removed on {len(data.changes):,} customers"
    return f"{prefix} {data.as_of.isoformat()}: {body}; {unwritable:,} cannot be written"


def _groups(changes: list[Change], names: dict[str, str], limit: int) -> list[dict[str, Any]]:
    """Changes grouped by branch then sales rep, capped at ``limit`` rows in all."""
    ordered = sorted(changes, key=lambda ch: (ch.branch or "~", ch.sales_rep or "~",
                                              ch.number.upper()))[:limit]
    out = []
    for (branch, rep), rows in groupby(ordered, key=lambda ch: (ch.branch, ch.sales_rep)):
        out.append({"branch": branch or "(no branch)", "sales_rep": rep or "(no sales rep)",
                    "rows": [{"number": ch.number, "name": ch.name,
                              "added": [names.get(c, c) for c in ch.added],
                              "removed": [names.get(c, c) for c in ch.removed],
                              "before": ch.before or "", "after": ch.after or "",
                              "carried_from": ch.carried_from}
                             for ch in rows]})
    return out


def render(data: DigestData, templates_dir: Path, *, max_rows: int = 50,
           max_unwritable_rows: int = 20, max_opportunities: int = 25) -> RenderedDigest:
    """Both parts of the digest, and the CSV of everything listed.

    The unwritable lists repeat every night until fixed, so they get a smaller cap than changes.
    """
    env = Environment(loader=FileSystemLoader(str(templates_dir)), undefined=StrictUndefined,
                      autoescape=lambda name: bool(name and name.endswith(".html.j2")),
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["pct"] = lambda x: f"{x * 100:.0f}%"
    context = {
        "d": data, "c": data.counts, "subject": subject_for(data), "max_rows": max_rows,
        "groups": _groups(data.changes, data.service_names, max_rows),
        "more_changes": max(0, len(data.changes) - max_rows),
        "no_configuration": data.no_configuration[:max_unwritable_rows],
        "more_no_configuration": max(0, len(data.no_configuration) - max_unwritable_rows),
        "no_attribute": data.no_attribute[:max_unwritable_rows],
        "more_no_attribute": max(0, len(data.no_attribute) - max_unwritable_rows),
        "opportunities": data.opportunities[:max_opportunities],
        "more_opportunities": max(0, len(data.opportunities) - max_opportunities),
        "alerts": data.alerts[:max_rows],
        "more_alerts": max(0, len(data.alerts) - max_rows),
        "added_total": sum(len(ch.added) for ch in data.changes),
        "removed_total": sum(len(ch.removed) for ch in data.changes),
        "wrote": data.mode == "live" and not data.dry_run and not data.guard_message,
    }
    try:
        html = env.get_template(HTML_TEMPLATE).render(context)
        text = env.get_template(TEXT_TEMPLATE).render(context)
    except TemplateError as exc:
        where = getattr(exc, "filename", None) or templates_dir
        line = getattr(exc, "lineno", None)
        raise ConfigError(f"digest template error in {where}{f':{line}' if line else ''}: "
                          f"{exc}") from None
    return RenderedDigest(subject=context["subject"], html=html, text=text, csv=_csv(data))


def _csv(data: DigestData) -> str:
    if not (data.changes or data.no_configuration or data.no_attribute):
        return ""
    buf = io.StringIO()
    w = csv_writer(buf)  # ERP names that look like formulas are neutralised (OWASP)
    w.writerow(["kind", "customer_number", "customer_name", "branch", "sales_rep", "before",
                "after", "added", "removed"])
    for ch in data.changes:
        w.writerow(["change", ch.number, ch.name, ch.branch or "", ch.sales_rep or "",
                    ch.before or "", ch.after or "", ";".join(ch.added), ";".join(ch.removed)])
    refs: list[tuple[str, CustomerRef]] = [("no_configuration", r) for r in data.no_configuration]
    refs += [("no_attribute", r) for r in data.no_attribute]
    for kind, r in refs:
        w.writerow([kind, r.number, r.name, r.branch or "", r.sales_rep or "", "", "", "", ""])
    return buf.getvalue()


def build_message(rendered: RenderedDigest, *, sender: str, recipients: list[str],
                  csv_name: str = "keyservices-changes.csv") -> EmailMessage:
    """A multipart/alternative email (text, then HTML) with the full lists attached as CSV."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = rendered.subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients) if recipients else sender
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = email.utils.make_msgid(domain="keyservices.local")
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    if rendered.csv:
        # the BOM makes Excel read the UTF-8 correctly (accents in customer names)
        msg.add_attachment("\ufeff" + rendered.csv, subtype="csv", charset="utf-8",
                           filename=csv_name)
    return msg


def write_outbox(message: EmailMessage, rendered: RenderedDigest, outbox: Path,
                 stem: str) -> OutboxPaths:
    """Queue the message as ``stem.eml`` (atomically) and keep ``stem.html`` to open by hand."""
    outbox.mkdir(parents=True, exist_ok=True)
    html_path = outbox / f"{stem}.html"
    eml_path = outbox / f"{stem}.eml"
    atomic_write(html_path, rendered.html.encode("utf-8"))
    atomic_write(eml_path, message.as_bytes())
    return OutboxPaths(eml=eml_path, html=html_path)


def failure_message(*, error: str, exit_code: int, when: dt.datetime, dealer: str,
                    log_tail: list[str], sender: str, recipients: list[str]) -> EmailMessage:
    """A short plain-text alert for a run that failed (exit 1-4): what, when, and the log tail."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = f"[keyservices FAILED] {when:%Y-%m-%d %H:%M}: exit {exit_code}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients) if recipients else sender
    msg["Date"] = email.utils.format_datetime(when.astimezone())
    msg["Message-ID"] = email.utils.make_msgid(domain="keyservices.local")
    body = [f"The keyservices run for {dealer} failed at {when:%Y-%m-%d %H:%M} with exit code "
            f"{exit_code}.", "", error, "",
            "Nothing was half-written: a failed run writes no value it has not audited.",
            "See 'keyservices --help' for the exit codes; 'keyservices check -c config.yaml' "
            "tests the setup.", ""]
    if log_tail:
        body += ["Last lines of the log:", *("  " + line for line in log_tail)]
    msg.set_content("\n".join(body) + "\n")
    return msg


# -- the digest data of each run, kept so that 'keyservices digest --preview' can re-render it ---
def save_data(data: DigestData, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(dataclasses.asdict(data), default=_json_default).encode("utf-8")
    atomic_write(path, gzip.compress(payload))


def load_data(path: Path) -> DigestData:
    raw = json.loads(gzip.decompress(path.read_bytes()))
    raw["as_of"] = dt.date.fromisoformat(raw["as_of"])
    raw["generated_at"] = dt.datetime.fromisoformat(raw["generated_at"])
    raw["counts"] = Counts(**raw["counts"])
    raw["changes"] = [Change(**{**c, "added": tuple(c["added"]), "removed": tuple(c["removed"])})
                      for c in raw["changes"]]
    raw["no_configuration"] = [CustomerRef(**r) for r in raw["no_configuration"]]
    raw["no_attribute"] = [CustomerRef(**r) for r in raw["no_attribute"]]
    raw["services"] = [ServiceCount(**r) for r in raw["services"]]
    raw["opportunities"] = [Opportunity(**{**r, "why": tuple(r.get("why", ()))})
                            for r in raw.get("opportunities", [])]
    raw["alerts"] = [StatusAlert(**r) for r in raw.get("alerts", [])]
    return DigestData(**raw)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")
