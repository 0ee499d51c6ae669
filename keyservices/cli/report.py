"""``keyservices report``: penetration by industry, branch and sales rep, and won / lost.

Thin, like every command: parse, call :func:`keyservices.commands.report.report`, print where the files
went. Registered at the end of :mod:`keyservices.cli` (``cli.add_command(report)``).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click

from ..words import plural
from .base import (
    as_of_option,
    company_option,
    config_option,
    emit_json,
    json_option,
    load_config_at,
    progress_reporter,
)


def show_outcomes(outcomes: dict[str, list[dict[str, Any]]] | None) -> None:
    """One line per window: the calls' outcomes over all plays."""
    for label, rows in (outcomes or {}).items():
        t = rows[-1]  # all plays
        share = "no call decided" if t["win_share"] is None else (
            f"win share {t['win_share']:.0%} of {t['won'] + t['expired']:,} decided")
        apart = f", {t['not_verified']:,} won not verified" if t["not_verified"] else ""
        click.echo(f"Calls, {label}: {t['opened']:,} opened, {t['won']:,} won "
                   f"({t['value_won']:,.0f} a year), {t['withdrawn']:,} withdrawn, "
                   f"{t['expired']:,} expired ({share}){apart}.")


@click.command("report")
@config_option
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for the files; default report/ in the state folder.")
@as_of_option
@company_option
@json_option
def report(config_path: Path, out: Path | None, as_of: dt.datetime | None,
           companies: tuple[str, ...], as_json: bool) -> None:
    """Penetration by industry, branch and sales rep, and won/lost (CSV and HTML).

    Classifies every customer as a run would (nothing is written to the ERP) and writes three
    files: report.html, one standalone page to open in a browser or attach to an email (no
    internet needed); penetration.csv, one row per group and service, for a spreadsheet; and
    won-lost.csv, services gained and lost per branch and sales rep in the last 30 and 90 days
    with their annual contract value, from the audit of live runs (left out before the first run).

    Opportunities: outcomes (report.html, opportunity-outcomes.csv, --json "outcomes"): per play
    and in total, the calls opened, won (through a sale the causes engine names), withdrawn
    (their reason went; left out of the win share) and expired (open 90 days without a win) in
    the last 30 and 90 days, the win share won / (won + expired) and the annual value won. Wins
    an earlier version recorded without a named sale are shown as not verified, never as won.

    report.html also charts the last saved backtest (keyservices backtest --save, or a live run
    that learned its win rates): the share of the top 25 and 100 calls won in the learned order,
    the static order and at random, and predicted against observed chance by tenth. Without one
    it names the command that saves one.

    For a group (companies: in the config) the files cover every company (or those named with
    --company) and the group: the CSVs gain a first company column, with the group's own rows
    under (group), and report.html opens with the group. One --company is that company's report.

    \b
    Example:
      keyservices report -c config.yaml --out /srv/share/keyservices-report
    """
    from ..commands.group_report import GroupReportResult, report_for

    with progress_reporter(as_json) as progress:
        result = report_for(load_config_at(config_path), companies, out=out,
                            as_of=as_of.date() if as_of else None, reporter=progress)
    if isinstance(result, GroupReportResult):
        from .report_group import show_group_report

        emit_json(result.to_dict()) if as_json else show_group_report(result)
        sys.exit(result.exit_code) if result.exit_code else None
        return
    if as_json:
        emit_json(result.to_dict())
        return
    from .terminal import terminal_text as shown

    g = result.groups
    groups = (f"{plural(g.get('industry', 0), 'industry', 'industries')}, "
              f"{plural(g.get('branch', 0), 'branch', 'branches')}, "
              f"{plural(g.get('sales_rep', 0), 'sales rep', 'sales reps')}")
    click.echo(f"Penetration on {result.as_of}: {result.customers:,} customers ({groups}).")
    for s in result.services:
        click.echo(f"  {shown(s['code']):<6} {shown(s['name'])[:28]:<28} {s['users']:>8,}  "
                   f"{s['share'] * 100:5.1f}%")
    for label, t in (result.won_lost or {}).items():
        click.echo(f"Won/lost, {label}: {t['won']:,} won ({t['won_value']:,.0f} a year), "
                   f"{t['lost']:,} lost ({t['lost_value']:,.0f} a year).")
    show_outcomes(result.outcomes)
    if result.outcomes_note:
        click.echo(shown(result.outcomes_note) + ".")
    if result.backtest:
        b = result.backtest["overall"]
        click.echo(f"Backtest as of {result.backtest['as_of']} (saved): the top 100 calls won "
                   f"{b.get('precision_at_100', 0):.1%}, the static order's "
                   f"{b.get('static_at_100', 0):.1%}, a random call {b['random']:.1%}.")
    for note in result.notes:
        click.echo(f"Note: {shown(note)}")
    click.echo(f"Wrote to {result.out}:")
    click.echo(f"  {result.files.html.name:<16} open in a browser (one standalone page)")
    click.echo(f"  {result.files.csv.name:<16} one row per group and service, for a spreadsheet")
    if result.files.won_lost_csv is not None:
        click.echo(f"  {result.files.won_lost_csv.name:<16} won and lost per branch and sales "
                   "rep, with annual value")
    if result.files.outcomes_csv is not None:
        click.echo(f"  {result.files.outcomes_csv.name:<16} what became of each play's calls "
                   "(opened, won, withdrawn, expired)")
    click.echo(f"Next: open {result.files.html}")


