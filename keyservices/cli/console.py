"""Terminal output for the CLI: progress bars on a terminal, readable summaries, plan tables.

Kept apart from the library so that library code never prints.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from ..progress import NullReporter

if TYPE_CHECKING:
    from ..commands.check import CheckReport
    from ..commands.demo import DemoResult
    from ..commands.explain import Explanation
    from ..commands.result import RunResult

PLAN_ROWS = 30


class RateColumn(ProgressColumn):
    """Rows (customers, facts, values) per second: a long step that slows down shows it."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time or task.elapsed
        speed = task.completed / elapsed if elapsed else None
        if not speed:
            return Text("", style="progress.data.speed")
        return Text(f"{speed:,.0f}/s", style="progress.data.speed")


class RichReporter:
    """Progress bars on stderr, one per step, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description:<32}"),
                                 BarColumn(), MofNCompleteColumn(), RateColumn(),
                                 TimeElapsedColumn(), console=Console(stderr=True),
                                 transient=False)
        self.task: Any = None
        self.started = False

    def begin(self, step: str, total: int | None) -> None:
        if not self.started:
            self.progress.start()
            self.started = True
        self.task = self.progress.add_task(step, total=total)

    def advance(self, n: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def end(self, step: str, count: int, seconds: float) -> None:
        if self.task is not None:
            self.progress.update(self.task, total=max(count, 1), completed=max(count, 1))
            self.task = None

    def close(self) -> None:
        if self.started:
            self.progress.stop()
            self.started = False


@contextlib.contextmanager
def reporter(enabled: bool = True) -> Iterator[Any]:
    """Progress bars when stderr is a terminal (and not --json); silent under a scheduler."""
    if not (enabled and sys.stderr.isatty()):
        yield NullReporter()
        return
    rich_reporter = RichReporter()
    try:
        yield rich_reporter
    finally:
        rich_reporter.close()


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def print_run(result: RunResult) -> None:
    c = result.counts
    what = ("dry run: nothing written" if result.dry_run else
            "test mode: nothing written to the ERP" if result.mode == "test" else
            "change guard: nothing written" if result.guard_message else
            f"baseline: {c.written} values written" if result.baseline else
            f"{c.written} values written")
    click.echo(f"Run {result.run_id or '-'} as of {result.as_of}: {what}.")
    click.echo(f"  customers read {c.read:,}; classified {c.classified:,}; changed {c.changed:,}; "
               f"unchanged {c.unchanged:,}; conflicts {c.conflicts:,}")
    click.echo(f"  cannot be written: {c.no_configuration:,} without configuration, "
               f"{c.no_attribute:,} without the attribute; skipped {c.inactive:,} inactive, "
               f"{c.prospects:,} prospects")
    click.echo("  services: " + ", ".join(f"{s.code} {s.customers:,} ({s.share:.0%})"
                                          for s in result.services))
    click.echo(f"  {result.statements} statements read the ERP; "
               + ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items()))
    if result.dry_run and result.changes:
        table = Table(title=f"Plan: {len(result.changes):,} change(s)", show_lines=False)
        for col in ("customer", "name", "before", "after", "added", "removed"):
            table.add_column(col, overflow="fold")
        for ch in result.changes[:PLAN_ROWS]:
            table.add_row(ch.number, ch.name, ch.before or "", ch.after or "",
                          " ".join(ch.added), " ".join(ch.removed))
        _out().print(table)
        if len(result.changes) > PLAN_ROWS:
            click.echo(f"  +{len(result.changes) - PLAN_ROWS:,} more (use --json for all)")
        added: dict[str, int] = {}
        removed: dict[str, int] = {}
        for ch in result.changes:
            for code in ch.added:
                added[code] = added.get(code, 0) + 1
            for code in ch.removed:
                removed[code] = removed.get(code, 0) + 1
        click.echo("  per service: " + ", ".join(
            f"{s.code} +{added.get(s.code, 0):,} -{removed.get(s.code, 0):,}"
            for s in result.services))
    if result.guard_message:
        click.echo(result.guard_message, err=True)
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
    click.echo(f"Next: keyservices run -c {result.config} --dry-run")


def print_check(report: CheckReport) -> None:
    click.echo(f"ERP {report.erp}: schema OK, {report.customers:,} customers; "
               f"attribute id {report.attribute_id}.")
    click.echo(f"Rules: {len(report.services)} services from "
               f"{', '.join(p.name for p in report.rules_files)}: {', '.join(report.services)}")
    for w in report.warnings:
        click.echo(f"Warning: {w}")
    if not report.warnings:
        click.echo("Every model category maps to a model class.")


def print_explanation(e: Explanation) -> None:
    c = e.customer
    click.echo(f"{c['number']}  {c['name']}  (industry {c['industry'] or '-'}, branch "
               f"{c['branch'] or '-'}, rep {c['sales_rep'] or '-'}) as of {e.as_of}")
    if c["configuration"] is None:
        click.echo("  cannot be written: no custom-property configuration")
    elif not c["has_value_row"]:
        click.echo("  cannot be written: its configuration lacks the attribute")
    click.echo(f"  value now: {e.value_now or '(empty)'}   by the rules: "
               f"{e.value_by_rules or '(empty)'}   (level: {e.level})")
    for rec in e.records:
        status = "" if rec["counted"] else (
            "  [inactive: not counted]" if not rec["active"] else
            "  [prospect: not counted]" if rec["prospect"] else "  [not counted]")
        kind = "location" if rec["location"] else "customer"
        click.echo(f"\n  {kind} {rec['number']}  {rec['name']}{status}")
        for v in rec["verdicts"]:
            mark = "YES" if v["has"] else "no "
            click.echo(f"    {mark} {v['code']:<6} {v['name']}")
            for sec in v["sections"]:
                click.echo(f"          {'+' if sec['matched'] else '-'} {sec['section']}: "
                           f"{sec['reason']}")
    for o in e.opportunities:
        click.echo(f"  Opportunity: {o['service']} [{o['priority']}, score {o['score']:g}] "
                   f"- {o['reason']}")
        for why in o["why"]:
            click.echo(f"      {why}")
    for a in e.alerts:
        click.echo(f"  Status alert: {a['monitor']}: {a['text']}")


def print_history(data: dict[str, Any]) -> None:
    if "runs" in data:
        table = Table(title="Runs (newest first)")
        for col in ("run", "started", "as of", "mode", "status", "exit", "written", "message"):
            table.add_column(col, overflow="fold")
        for r in data["runs"]:
            table.add_row(str(r["id"]), f"{r['started_at']:%Y-%m-%d %H:%M}", str(r["as_of"]),
                          r["mode"] + (" baseline" if r["baseline"] else ""), r["status"],
                          "" if r["exit_code"] is None else str(r["exit_code"]),
                          str(r["counts"].get("written", "")), (r["message"] or "")[:80])
        _out().print(table)
        return
    table = Table(title=f"{len(data['changes'])} change(s)")
    for col in ("run", "customer", "name", "before", "after", "status", "at"):
        table.add_column(col, overflow="fold")
    for c in data["changes"]:
        table.add_row(str(c["run_id"]), c["customer_number"], c["customer_name"],
                      c["before"] or "", c["after"] or "", c["status"], f"{c['at']:%Y-%m-%d %H:%M}")
    _out().print(table)
