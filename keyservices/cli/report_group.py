"""What ``keyservices report`` prints for a dealer group: each company's line, the group's
shares, won and lost, and where the files went (kept out of ``cli.report``, which prints one
company's report as before)."""

from __future__ import annotations

import click

from ..commands.group_report import GroupReportResult
from .report import show_outcomes
from .terminal import terminal_text as shown


def show_group_report(result: GroupReportResult) -> None:
    """The group's report on the terminal; a company that failed is named with its error."""
    click.echo(f"Penetration on {result.as_of}: {len(result.companies)} companies, "
               f"{result.customers:,} customers.")
    for c in result.companies:
        if c["error"]:
            click.echo(f"  {shown(c['company'])}: exit {c['exit_code']}: {shown(c['error'])}")
            continue
        shares = ", ".join(f"{shown(s['code'])} {s['share'] * 100:.0f}%" for s in c["services"])
        click.echo(f"  {shown(c['company'])}: {c['customers']:,} customers ({shares})")
    for s in result.services:
        click.echo(f"  group  {shown(s['code']):<6} {shown(s['name'])[:28]:<28} "
                   f"{s['users']:>8,}  {s['share'] * 100:5.1f}%")
    for label, t in (result.won_lost or {}).items():
        click.echo(f"Won/lost, {label}: {t['won']:,} won ({t['won_value']:,.0f} a year), "
                   f"{t['lost']:,} lost ({t['lost_value']:,.0f} a year).")
    show_outcomes(result.outcomes)
    for note in result.notes:
        click.echo(f"Note: {shown(note)}")
    click.echo(f"Wrote to {result.out} (a company column in each CSV; the group's rows under "
               "(group)):")
    click.echo(f"  {result.files.html.name:<16} open in a browser (the group, then each company)")
    click.echo(f"  {result.files.csv.name:<16} one row per company, group and service")
    if result.files.won_lost_csv is not None:
        click.echo(f"  {result.files.won_lost_csv.name:<16} won and lost per company, branch and "
                   "sales rep, with annual value")
    if result.files.outcomes_csv is not None:
        click.echo(f"  {result.files.outcomes_csv.name:<16} what became of each company's "
                   "calls, per play")
    click.echo(f"Next: open {result.files.html}")
