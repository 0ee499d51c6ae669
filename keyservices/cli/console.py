"""Terminal output for the CLI: progress bars on a terminal, readable summaries, plan tables.

Kept apart from the library so that library code never prints.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

from ..progress import NullReporter
from .terminal import control_escaped, terminal_text

# rich is imported where a table or a progress bar is drawn: a nightly run under a scheduler
# (stderr not a terminal, no dry-run plan) never loads it.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from ..commands.check import CheckReport
    from ..commands.demo import DemoResult
    from ..commands.explain import Explanation
    from ..commands.group import GroupResult
    from ..commands.result import RunResult

PLAN_ROWS = 30


def cell(value: object) -> Text:
    """A rich table cell from ERP data: literal text (no markup, no emoji codes), controls escaped."""
    from rich.text import Text

    return Text(terminal_text(value))


def echo_data(text: str, *, err: bool = False) -> None:
    """Data meant for a file or a pipe (CSV on stdout): as is when redirected, and with control
    characters escaped (line ends kept) when a person watches a terminal."""
    stream = sys.stderr if err else sys.stdout
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        text = control_escaped(text, keep="\r\n")
    click.echo(text, nl=False, err=err, color=True)  # color=True: click strips no "ANSI" data


@contextlib.contextmanager
def reporter(enabled: bool = True) -> Iterator[Any]:
    """Progress bars when stderr is a terminal (and not --json); silent under a scheduler."""
    if not (enabled and sys.stderr.isatty()):
        yield NullReporter()
        return
    from .bars import RichReporter

    rich_reporter = RichReporter()
    try:
        yield rich_reporter
    finally:
        rich_reporter.close()


def _out() -> Console:
    """stdout for tables: no markup or emoji codes in strings (cells are ``Text`` anyway)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, markup=False, emoji=False)


def print_group(result: GroupResult) -> None:
    """A group's night: each company's summary under its name, then which failed and why."""
    for night in result.companies:
        click.echo(f"== {night.company} ==")
        if night.result is not None:
            print_run(night.result, guard_message=night.error is None)
        if night.error:
            click.echo(f"{night.company}: {night.error} (exit {night.exit_code})", err=True)
    done = len(result.companies) - len(result.failed)
    failed = ", ".join(f"{n.company} (exit {n.exit_code})" for n in result.failed)
    click.echo(f"{len(result.companies)} companies: {done} done"
               + (f"; failed: {failed}" if failed else "") + ".")
    if result.delivery_error:
        click.echo(f"Error: {result.delivery_error}", err=True)


def print_run(result: RunResult, *, guard_message: bool = True) -> None:
    """The run's summary (and a dry run's plan). ``guard_message=False`` when the change guard's
    message is about to be printed as the error that ends the command: once is enough."""
    c = result.counts
    what = ("dry run: nothing written" if result.dry_run else
            ("test mode (the config does not set mode:): nothing written to the ERP"
             if result.mode_default else "test mode: nothing written to the ERP")
            if result.mode == "test" else
            "change guard: nothing written" if result.guard_message else
            f"baseline: {c.written} values written" if result.baseline else
            f"{c.written} values written")
    if c.locations_written:
        what += f" and {c.locations_written:,} location records following their parent"
    click.echo(f"Run {result.run_id or '-'} as of {result.as_of}: {what}.")
    click.echo(f"  customers read {c.read:,}; classified {c.classified:,}; changed {c.changed:,}; "
               f"unchanged {c.unchanged:,}; conflicts {c.conflicts:,}"
               + (f"; already held {c.already:,}" if c.already else ""))
    click.echo(f"  cannot be written: {c.no_configuration:,} without configuration, "
               f"{c.no_attribute:,} without the attribute; skipped {c.inactive:,} inactive, "
               f"{c.prospects:,} prospects")
    if c.locations_changed or c.locations_unchanged or c.locations_no_configuration \
            or c.locations_no_attribute:
        click.echo(f"  locations following their parent: changed {c.locations_changed:,}; "
                   f"written {c.locations_written:,}; unchanged {c.locations_unchanged:,}; "
                   f"cannot be written {c.locations_no_configuration:,} without configuration, "
                   f"{c.locations_no_attribute:,} without the attribute")
    click.echo("  services: " + ", ".join(f"{s.code} {s.customers:,} ({s.share:.0%})"
                                          for s in result.services))
    click.echo(f"  {result.statements} statements read the ERP; "
               + ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items()))
    if result.dry_run and result.changes:
        table = _table(f"Plan: {result.total('changes'):,} change(s)",
                       ("customer", "name", "before", "after", "added", "removed"),
                       whole={"customer"})
        for ch in result.changes[:PLAN_ROWS]:
            table.add_row(cell(ch.number), cell(ch.name), cell(ch.before), cell(ch.after),
                          cell(" ".join(ch.added)), cell(" ".join(ch.removed)))
        _out().print(table)
        _print_causes((ch.number, ch.causes) for ch in result.changes[:PLAN_ROWS])
        if result.total("changes") > PLAN_ROWS:
            click.echo(f"  +{result.total('changes') - PLAN_ROWS:,} more (use --json for all"
                       + (", with --company for a group's company)" if result.cut else ")"))
        moves = result.per_service()
        click.echo("  per service: " + ", ".join(
            f"{s.code} +{moves.get(s.code, [0, 0])[0]:,} -{moves.get(s.code, [0, 0])[1]:,}"
            for s in result.services))
    if result.dry_run and result.location_changes:
        click.echo(f"  +{result.total('location_changes'):,} location record(s) would follow their "
                   "parent's value (use --json for all)")
    if result.guard_off:
        click.echo("  change guard: off (write.max_changes_percent: off in the config)")
    if result.risks:
        click.echo(f"  at risk (not offered as opportunities tonight): {len(result.risks):,}: "
                   + ", ".join(f"{terminal_text(r.number)} ({r.kind})"
                               for r in result.risks[:10])
                   + (" ..." if len(result.risks) > 10 else ""))
    if result.guard_message and guard_message:
        click.echo(terminal_text(result.guard_message, keep_newlines=True), err=True)
    if result.digest_eml:
        click.echo(f"  digest: {result.digest_html}")
        note = {"sent": "sent", "queued": "queued: SMTP failed, the next run retries",
                "outbox": "not emailed: no smtp: in the config"}.get(result.delivery, "")
        click.echo(f"          {result.digest_eml} ({note})")


def print_demo(result: DemoResult) -> None:
    s = result.database_summary
    if result.replaced:
        click.echo(f"Replaced the previous demo in {result.directory}.")
    click.echo(f"Demo dealer in {result.directory}")
    click.echo(f"  ERP database  {result.database}  ({s.customers:,} customers, "
               f"{s.equipment:,} machines, {s.contracts:,} contracts, {s.gl_lines:,} GL lines)")
    click.echo(f"  config        {result.config}")
    click.echo(f"  rules         {result.rules}")
    for i, night in enumerate(result.nights, start=1):
        c = night.counts
        kind = "baseline" if night.baseline else "changes"
        click.echo(f"Night {i} ({night.as_of}, {kind}): {c.classified:,} classified, "
                   f"{c.changed:,} changed, {c.written:,} written, "
                   f"{c.no_configuration + c.no_attribute:,} cannot be written; "
                   f"{night.statements} ERP statements")
        if night.digest_html:
            click.echo(f"  digest  {night.digest_html}")
            click.echo(f"          {night.digest_eml}")
    click.echo("")
    click.echo("Open the .html digest in a browser, or the .eml in your mail program.")
    for i, command in enumerate(result.next_steps):
        click.echo(f"{'Next:' if i == 0 else '':<6}{terminal_text(command)}")


def print_check(report: CheckReport) -> None:
    click.echo(f"ERP {report.erp}: schema OK, {report.customers:,} customers; "
               f"attribute id {report.attribute_id}.")
    click.echo(f"Rules: {len(report.services)} services from "
               f"{', '.join(p.name for p in report.rules_files)}: {', '.join(report.services)}")
    click.echo("Passwords: " + "; ".join(
        f"{which} from {source}" if source == "keyring" or source.startswith("env ")
        else f"{which} {source}" for which, source in report.passwords.items()))
    for w in report.warnings:
        click.echo(f"Warning: {terminal_text(w, keep_newlines=True)}")
    if not report.warnings:
        click.echo("Every model category maps to a model class.")


def print_explanation(e: Explanation) -> None:
    c = {k: terminal_text(v) if isinstance(v, str) else v for k, v in e.customer.items()}
    t = terminal_text
    click.echo(f"{c['number']}  {c['name']}  (industry {c['industry'] or '-'}, branch "
               f"{c['branch'] or '-'}, rep {c['sales_rep'] or '-'}) as of {e.as_of}")
    if c["configuration"] is None:
        click.echo("  cannot be written: no custom-property configuration")
    elif not c["has_value_row"]:
        click.echo("  cannot be written: its configuration lacks the attribute")
    click.echo(f"  value now: {t(e.value_now) or '(empty)'}   by the rules: "
               f"{t(e.value_by_rules) or '(empty)'}   (level: {e.level})")
    if e.since:
        click.echo("  changed since the facts of the last live run before this date:")
        for line in e.since:
            click.echo(f"    {t(line)}")
    for risk in e.risks:
        click.echo(f"  AT RISK (not offered as an opportunity): {t(risk)}")
    if e.location is not None:
        loc = e.location
        click.echo(f"  location {t(loc['number'])} ({t(loc['name'])}) {t(loc['why'])}; its "
                   f"value now: {t(loc['value_now']) or '(empty)'}")
    for rec in e.records:
        status = "" if rec["counted"] else (
            "  [inactive: not counted]" if not rec["active"] else
            "  [prospect: not counted]" if rec["prospect"] else "  [not counted]")
        kind = "location" if rec["location"] else "customer"
        click.echo(f"\n  {kind} {t(rec['number'])}  {t(rec['name'])}{status}")
        for v in rec["verdicts"]:
            mark = "YES" if v["has"] else "no "
            click.echo(f"    {mark} {v['code']:<6} {t(v['name'])}")
            for sec in v["sections"]:
                click.echo(f"          {'+' if sec['matched'] else '-'} {sec['section']}: "
                           f"{t(sec['reason'])}")
    for o in e.opportunities:
        click.echo(f"  Opportunity: {t(o['service'])} [{o['priority']}, score {o['score']:g}] "
                   f"- {t(o['reason'])}")
        if o.get("estimated_annual_value"):
            click.echo(f"      worth about {o['estimated_annual_value']:,.0f} a year "
                       f"({t(o['value_basis'])})")
        if o.get("p_win") is not None:
            click.echo(f"      {t(o['play'])}: {o['p_win']:.1%} chance to win in 90 days "
                       f"({t(o['evidence'])}); expected value {o['expected_value']:,.0f}, "
                       f"#{o['rank']:,} on tonight's list")
        for why in o["why"]:
            click.echo(f"      {t(why)}")
    for a in e.alerts:
        click.echo(f"  Status alert: {t(a['monitor'])}: {t(a['text'])}")


def print_history(data: dict[str, Any], *, company: bool = False, of: str = "") -> None:
    """The runs or the changes as a table; ``company`` (a group's): a table per company, titled
    with its name (a column would squeeze an 80-column console)."""
    if company:
        key = "runs" if "runs" in data else "changes"
        names = list(dict.fromkeys(row.get("company") or "" for row in data[key]))
        for name in names or [""]:
            print_history({key: [r for r in data[key] if (r.get("company") or "") == name]},
                          of=f"{name}: " if name else "")
        return
    if "runs" in data:
        table = _table(f"{of}Runs (newest first)", ("run", "started", "as of", "mode", "status",
                                               "exit", "written", "message"),
                       whole={"run", "started", "as of", "exit", "written"})
        for r in data["runs"]:
            table.add_row(str(r["id"]), f"{r['started_at']:%Y-%m-%d %H:%M}", str(r["as_of"]),
                          r["mode"] + (" baseline" if r["baseline"] else ""), cell(r["status"]),
                          "" if r["exit_code"] is None else str(r["exit_code"]),
                          str(r["counts"].get("written", "")), cell((r["message"] or "")[:80]))
        _out().print(table)
        return
    table = _table(f"{of}{len(data['changes'])} change(s)",
                   ("run", "customer", "name", "before", "after", "status", "at"),
                   whole={"run", "customer", "at"})
    for c in data["changes"]:
        name = c["customer_name"] + (f" (follows {c['follows']})" if c.get("follows") else "")
        table.add_row(str(c["run_id"]), cell(c["customer_number"]), cell(name),
                      cell(c["before"]), cell(c["after"]), cell(c["status"]),
                      f"{c['at']:%Y-%m-%d %H:%M}")
    _out().print(table)
    _print_causes((f"{c['customer_number']} (run {c['run_id']})", c.get("causes") or ())
                  for c in data["changes"])


def _table(title: str, names: Sequence[str], *, whole: set[str]) -> Any:
    """A table for an 80-column or redirected console (rich lays those out at 80). Dates, ids
    and numbers (``whole``) never wrap, since "2026-12-0" over "6 18:34" misreads as two
    values; the text columns fold to make room for them. No outer border: its two columns go
    to the names."""
    from rich.table import Table

    table = Table(title=title, show_edge=False)
    for name in names:
        if name in whole:
            table.add_column(name, no_wrap=True, overflow="ellipsis")
        else:
            table.add_column(name, overflow="fold")
    return table


def _print_causes(rows: Iterable[tuple[str, Sequence[str]]]) -> None:
    """Why each listed change happened, one line each under the table (a column would squeeze
    the names out of an 80-column console)."""
    lines = [f"  {terminal_text(who)}: {terminal_text('; '.join(causes))}"
             for who, causes in rows if causes]
    if lines:
        click.echo("Why:")
        for line in lines:
            click.echo(line)


def __getattr__(name: str) -> Any:
    """``RichReporter`` and ``RateColumn`` moved to :mod:`.bars` (which imports rich); still
    reachable here, loaded on first use."""
    if name in ("RichReporter", "RateColumn"):
        from . import bars

        return getattr(bars, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
