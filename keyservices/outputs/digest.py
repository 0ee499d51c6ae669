"""The morning digest: rendered from Jinja templates into an email, always written to the outbox.

The HTML is email-safe (tables and inline styles only: Outlook ignores most CSS) and autoescaped, the
plain-text twin carries the same facts, and the subject carries dates and counts only, never customer
data. The HTML part stays under 100 KB whatever the night (Gmail clips a message body beyond
about 102 KB, hiding everything below the cut): the lists are capped, each "+N more" names the
command that lists the rest, and when the configured caps still do not fit they are lowered until
they do. The layout is fluid (one column up to 680 px, cells that wrap), so a phone shows every
column. The full lists go in a bounded attachment (``outputs.attachment``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.policy
import email.utils
import functools
import gzip
import heapq
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..errors import ConfigError
from ..model import (
    Change,
    Counts,
    CustomerRef,
    DigestData,
    Opportunity,
    Renewal,
    RiskFlag,
    ServiceCount,
    StatusAlert,
)
from ..resources import DIGEST_TEMPLATES, SECTION_TEMPLATE
from ..resources import templates_dir as packaged_templates
from ..words import plural
from .alerts import alert_context, quoted
from .attachment import ATTACHMENT_LIMIT, Attachment, Listing, changes_listing
from .files import atomic_write
from .headline import subject_for, totals, unwritable_counts
from .morning import money, own_won_lost, unwritable_lists

if TYPE_CHECKING:  # jinja2 is imported where a digest is rendered, not by every command
    from jinja2 import Environment
    from jinja2.sandbox import SandboxedEnvironment

HTML_TEMPLATE, TEXT_TEMPLATE = DIGEST_TEMPLATES
HTML_LIMIT = 100_000  # bytes of the HTML part: under Gmail's clipping size (about 102 KB)
MAX_NOTES, NOTE_CHARS = 30, 1000  # notes are written by the run; a few, each a sentence or two
log = logging.getLogger("keyservices")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    subject: str
    html: str
    text: str
    # every change and unwritable customer (CSV, or zipped); None when there is nothing to list
    # or the list is too large to attach (the digest then names the command that lists it)
    attachment: Attachment | None = None


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


def _only(data: DigestData, attribute: Literal["branch", "sales_rep"], value: str) -> DigestData:
    def mine(items: Sequence[T]) -> list[T]:
        return [x for x in items if (getattr(x, attribute) or "") == value]

    only = getattr(data.opportunities, "only", None)  # an OpportunityFrame: by column
    won_lost = own_won_lost(data.won_lost, attribute, value)  # a rep's line, their own week
    copy = dataclasses.replace(
        data, changes=mine(data.changes), no_configuration=mine(data.no_configuration),
        no_attribute=mine(data.no_attribute), alerts=mine(data.alerts), won_lost=won_lost,
        opportunities=mine(data.opportunities) if only is None else only(attribute, value))
    setattr(copy, attribute, value)  # the copy's branch or sales rep
    copy.risks = mine(data.risks)
    return copy


def slug(text: str) -> str:
    """A file-name-safe form of a branch name."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "branch"


def _change_order(ch: Change) -> tuple[str, str, str]:
    return (ch.branch or "~", ch.sales_rep or "~", ch.number.upper())


def _listed_changes(changes: list[Change], limit: int) -> list[Change]:
    """The first ``limit`` changes by branch, sales rep and number, without sorting them all."""
    if limit <= 0:
        return []
    if len(changes) <= limit:
        return sorted(changes, key=_change_order)
    return heapq.nsmallest(limit, changes, key=_change_order)


def _groups(changes: list[Change], names: dict[str, str], limit: int) -> list[dict[str, Any]]:
    """Changes grouped by branch then sales rep, capped at ``limit`` rows in all."""
    out = []
    for (branch, rep), rows in groupby(_listed_changes(changes, limit),
                                       key=lambda ch: (ch.branch, ch.sales_rep)):
        out.append({"branch": branch or "(no branch)", "sales_rep": rep or "(no sales rep)",
                    "rows": [{"number": ch.number, "name": ch.name,
                              "added": [names.get(c, c) for c in ch.added],
                              "removed": [names.get(c, c) for c in ch.removed],
                              "before": ch.before or "", "after": ch.after or "",
                              "carried_from": ch.carried_from, "causes": list(ch.causes)}
                             for ch in rows]})
    return out


def trimmed(data: DigestData, keep: int, attachment: str = "") -> DigestData:
    """A copy whose long lists keep only what a digest capped at ``keep`` rows can show, with
    their full lengths in ``totals``: what a run stores for ``digest --preview`` (a million
    changes would otherwise be stored, and re-read, in full). ``attachment`` is the file the
    digest attached ("" if none), which a re-render names without building it again."""
    counted: dict[str, Any] = {**totals(data), "attachment": attachment}
    cut: dict[str, Any] = (  # field -> its list cut short (changes, customers, opportunities...)
        {"changes": _listed_changes(data.changes, keep)} if len(data.changes) > keep else {})
    for name in ("no_configuration", "no_attribute", "opportunities"):
        if len(getattr(data, name)) > keep:
            cut[name] = list(getattr(data, name)[:keep])
    if "opportunities" not in cut and not isinstance(data.opportunities, list):
        data = dataclasses.replace(data, opportunities=list(data.opportunities))  # a frame
    if len(data.alerts) > keep:  # the digest lists the new ones: keep those first
        fresh = [a for a in data.alerts if a.new][:keep]
        cut["alerts"] = fresh + [a for a in data.alerts if not a.new][:keep - len(fresh)]
    if not cut:
        return data
    return dataclasses.replace(data, **cut, totals=counted)


@dataclass(frozen=True, slots=True)
class _Caps:
    rows: int
    unwritable: int
    opportunities: int
    notes: int = MAX_NOTES

    def lowered(self, factor: float) -> _Caps:
        """Every cap times ``factor`` (below 1), and at least one row fewer where there are any."""
        def low(n: int) -> int:
            return max(0, min(n - 1, int(n * factor)))
        return _Caps(low(self.rows), low(self.unwritable), low(self.opportunities),
                     low(self.notes))

    @property
    def exhausted(self) -> bool:
        return not (self.rows or self.unwritable or self.opportunities or self.notes)


def _pointers(data: DigestData, listing: Listing, wrote: bool) -> dict[str, str]:
    """Where the rest of each capped list is: the attachment, or the command that lists it."""
    cfg = f" -c {quoted(data.config_file)}" if data.config_file else ""
    if data.company:  # a group's config: each command acts on the company this digest is for
        cfg += f" --company {quoted(data.company)}"
    owner = f" --owner {quoted(data.sales_rep)}" if data.sales_rep else ""
    if wrote and data.run_id:
        everything = f"keyservices history --run {data.run_id} --limit 0{cfg}"
    else:
        everything = f"keyservices run --dry-run --json{cfg}"
    return {
        "attached": ("CSV" if listing.name.endswith(".csv") else listing.name),
        "changes": everything,
        "unwritable": f"keyservices run --dry-run --json{cfg}",
        "opportunities": f"keyservices export opportunities{owner}{cfg}",
        # the capped list is tonight's new alerts: the command lists exactly those
        "alerts": f"keyservices export alerts --new{owner}{cfg}",
        # a dry run lists every risk flag and starts nothing (a plain run would write)
        "risks": f"keyservices run --dry-run --json{cfg}",
        "won_lost": f"keyservices report{cfg}",
    }


@functools.lru_cache(maxsize=8)
def template_environment(templates_dir: Path) -> SandboxedEnvironment:
    """One sandboxed Jinja environment per template folder: templates compile once per process and
    are reloaded when their file changes (``digest --preview`` while editing them).

    Sandboxed because digest.templates is a folder an admin edits and the run renders as the
    service account that writes the ERP: in a plain environment
    ``{{ cycler.__init__.__globals__.os.popen('...') }}`` runs a command. The templates are
    checked when the environment is made (``check_templates``), so ``run`` stops at its
    preflight, before anything is written, even for a line the sample digest does not reach."""
    from jinja2 import FileSystemLoader, StrictUndefined

    env = sandbox_class()(loader=FileSystemLoader(str(templates_dir)),
                          undefined=StrictUndefined,
                          autoescape=lambda name: bool(name and name.endswith(".html.j2")),
                          trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["pct"] = lambda x: f"{x * 100:.0f}%"
    env.filters["plural"] = plural
    check_templates(env)
    return env


@functools.cache
def sandbox_class() -> type[SandboxedEnvironment]:
    """Jinja's sandbox failing at the first unsafe access (the stock one returns an undefined
    value that fails later, as a vaguer "has no attribute"); for any template an admin edits."""
    from jinja2.sandbox import SandboxedEnvironment, SecurityError

    class DigestSandbox(SandboxedEnvironment):
        def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
            raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} "
                                f"object is unsafe")

    return DigestSandbox


# what the sandbox refuses besides names starting with _ (jinja2.sandbox.is_internal_attribute)
_INTERNAL = frozenset({"mro", "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_code", "ag_frame"})
_SANDBOX = ("The templates run in a sandbox that refuses attributes starting with _ and Python's "
            "internals: remove them, and use the values the built-in templates use")


def check_templates(env: Environment) -> None:
    """Refuse, with file and line, what the sandbox refuses when rendering (``x.__class__``,
    ``x['_y']``, ``x | attr('__init__')``) in the digest templates and those they include,
    import or extend. A name built while rendering is left to the sandbox."""
    from jinja2 import TemplateError, meta, nodes

    if env.loader is None:  # no templates to read
        return
    pending, seen, problems = [*DIGEST_TEMPLATES, SECTION_TEMPLATE], set[str](), list[str]()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            source, filename, _ = env.loader.get_source(env, name)
            tree = env.parse(source, name, filename)
        except TemplateError:
            continue  # a syntax error or a missing include: reported when rendered, as before
        found: set[tuple[int, str]] = set()
        for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
            if isinstance(node, nodes.Getattr):
                attr: Any = node.attr
            elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
                attr = node.arg.value
            elif (isinstance(node, nodes.Filter) and node.name == "attr" and node.args
                  and isinstance(node.args[0], nodes.Const)):
                attr = node.args[0].value
            else:
                continue
            if isinstance(attr, str) and (attr.startswith("_") or attr in _INTERNAL):
                found.add((node.lineno, attr))
        problems += [f"{filename}:{line}: not allowed in a digest template: the attribute {a!r}"
                     for line, a in sorted(found)]
        pending += [r for r in meta.find_referenced_templates(tree) if isinstance(r, str)]
    if problems:
        raise ConfigError("\n".join(problems) + f"\n{_SANDBOX}")


def _template_place(exc: BaseException, templates_dir: Path) -> str:
    """file:line of a template error: its own, else its traceback's innermost template frame."""
    where, line = getattr(exc, "filename", None), getattr(exc, "lineno", None)
    tb = exc.__traceback__ if where is None else None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(".j2"):
            where, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next
    return f"{where or templates_dir}{f':{line}' if line else ''}"


def _context(data: DigestData, caps: _Caps, counted: dict[str, Any], listing: Listing,
             subject: str) -> dict[str, Any]:
    """What the templates see; only the capped lists are built (never a copy of every change)."""
    wrote = data.mode == "live" and not data.dry_run and not data.guard_message
    shown = data.opportunities[:caps.opportunities]
    return {
        "d": data, "c": data.counts, "subject": subject, "max_rows": caps.rows,
        "groups": _groups(data.changes, data.service_names, caps.rows),
        "more_changes": max(0, counted["changes"] - caps.rows),
        # each capped, or none and one line when unchanged since an earlier digest
        **unwritable_lists(data, caps.unwritable, counted),
        "opportunities": shown, "money": money(data, shown),  # the first screen's money
        "more_opportunities": max(0, counted["opportunities"] - caps.opportunities),
        **alert_context(data, caps.rows),  # the new alerts, continuing ones counted per monitor
        "won_lost_rows": (data.won_lost.get("rows") or [])[:caps.rows] if data.won_lost else [],
        "more_won_lost": (max(0, len(data.won_lost.get("rows") or []) - caps.rows)
                          if data.won_lost else 0),
        "notes": [n if len(n) <= NOTE_CHARS else n[:NOTE_CHARS - 1] + "\u2026"
                  for n in data.notes[:caps.notes]],
        "more_notes": max(0, len(data.notes) - caps.notes),
        "total": counted, "added_total": counted["added"], "removed_total": counted["removed"],
        "wrote": wrote, "more": _pointers(data, listing, wrote), "listing": listing,
        # the copy's own counts where the subject uses them (a rep's copy, its customers)
        **unwritable_counts(data, counted),
        "risk_customers": len({r.number for r in data.risks}),  # one customer, two flags
    }


def render(data: DigestData, templates_dir: Path, *, max_rows: int = 50,
           max_unwritable_rows: int = 20, max_opportunities: int = 25,
           max_html_bytes: int = HTML_LIMIT,
           attachment_limit: int = ATTACHMENT_LIMIT, max_notes: int = MAX_NOTES,
           listing: Listing | None = None, html_template: str = HTML_TEMPLATE) -> RenderedDigest:
    """Both parts of the digest, and the attachment of everything listed.

    The unwritable lists repeat every night until fixed, so they get a smaller cap than changes.
    When the HTML part passes ``max_html_bytes`` at the configured caps, every cap is lowered
    (in proportion) until it fits; the "+N more" lines say where the rest is. The time this
    takes depends on the caps, not on the night: the full lists are only counted and streamed
    into the attachment. ``listing`` given: what became of the full list (a group's digest
    attaches none, and its sections name the commands instead); ``html_template``: a company's
    section of a group's message renders the small one.
    """
    from jinja2 import TemplateError
    from jinja2.sandbox import SecurityError

    env = template_environment(templates_dir)
    counted = totals(data)
    subject = subject_for(data, counted)
    if listing is not None:
        pass
    elif data.totals:  # a stored, trimmed copy: name the attachment the digest had
        listing = Listing(attachment=None, rows=counted["changes"] + counted["no_configuration"]
                          + counted["no_attribute"], name=counted.get("attachment", ""))
    else:
        listing = changes_listing(data, limit=attachment_limit)
    caps = _Caps(max(0, max_rows), max(0, max_unwritable_rows), max(0, max_opportunities),
                 max(0, max_notes))
    try:
        page = env.get_template(html_template)
        while True:
            context = _context(data, caps, counted, listing, subject)
            html = page.render(context)
            size = len(html.encode("utf-8"))
            if size <= max_html_bytes or caps.exhausted:
                break
            caps = caps.lowered(0.9 * max_html_bytes / size)
        text = env.get_template(TEXT_TEMPLATE).render(context)
    except SecurityError as exc:
        raise ConfigError(f"{_template_place(exc, templates_dir)}: not allowed in a digest "
                          f"template: {str(exc).rstrip('.')}. {_SANDBOX}") from None
    except TemplateError as exc:
        raise ConfigError(f"digest template error in {_template_place(exc, templates_dir)}: "
                          f"{exc}") from None
    if size > max_html_bytes:
        log.warning("the digest's HTML part is %d KB even with no rows listed (over %d KB, so "
                    "Gmail clips it): check the templates", size // 1000, max_html_bytes // 1000)
    return RenderedDigest(subject=subject, html=html, text=text, attachment=listing.attachment)


def build_message(rendered: RenderedDigest, *, sender: str, recipients: list[str],
                  ics: str = "") -> EmailMessage:
    """A multipart/alternative email (text, then HTML) with the full lists attached, and a sales
    rep's renewals calendar (``ics``, from ``outputs.calendar``) when there is one."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = rendered.subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients) if recipients else sender
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = email.utils.make_msgid(domain="keyservices.local")
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    if rendered.attachment is not None:
        a = rendered.attachment
        params = {"charset": "utf-8"} if a.maintype == "text" else {}
        msg.add_attachment(a.data, maintype=a.maintype, subtype=a.subtype, filename=a.filename,
                           params=params)
    if ics:
        msg.add_attachment(ics, subtype="calendar", charset="utf-8", filename="renewals.ics",
                           params={"method": "PUBLISH"})
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
    body = [(f"The keyservices run for {dealer} failed at {when:%Y-%m-%d %H:%M} with exit code "
             f"{exit_code}."), "", error, "",
            "Nothing was half-written: a failed run writes no value it has not audited.",
            ("See 'keyservices --help' for the exit codes; 'keyservices check -c config.yaml' "
             "tests the setup."), ""]
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
    raw["changes"] = [Change(**{**c, "added": tuple(c["added"]), "removed": tuple(c["removed"]),
                                "causes": tuple(c.get("causes", ()))})
                      for c in raw["changes"]]
    raw["risks"] = [RiskFlag(**r) for r in raw.get("risks", [])]
    raw["no_configuration"] = [CustomerRef(**r) for r in raw["no_configuration"]]
    raw["no_attribute"] = [CustomerRef(**r) for r in raw["no_attribute"]]
    raw["services"] = [ServiceCount(**r) for r in raw["services"]]
    raw["opportunities"] = [Opportunity(**{**r, "why": tuple(r.get("why", ()))})
                            for r in raw.get("opportunities", [])]
    raw["alerts"] = [StatusAlert(**{**r, "first_seen": _day(r.get("first_seen"))})
                     for r in raw.get("alerts", [])]
    raw["renewals"] = [Renewal(**{**r, "expires": dt.date.fromisoformat(r["expires"])})
                       for r in raw.get("renewals", [])]
    return DigestData(**raw)


def _day(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")
