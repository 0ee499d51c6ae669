"""``keyservices export opportunities / alerts``: the night's calls as CSV."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from .base import as_of_option, cli, config_option, load_config_at


@cli.group("export")
def export_group() -> None:
    """Export lists for a CRM or a spreadsheet.

    \b
    Example:
      keyservices export opportunities --format hubspot --out calls.csv -c config.yaml
    """


@export_group.command("opportunities")
@config_option
@click.option("--format", "fmt", type=click.Choice(["csv", "hubspot"]), default="csv",
              show_default=True, help="csv: every column; hubspot: HubSpot's contact import "
                                      "columns (first and last name, email, phone, company).")
@click.option("--service", default=None, help="Only this service code (e.g. MIT).")
@click.option("--owner", default=None, help="Only this sales rep's customers (full name).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write to this file (UTF-8 with BOM for Excel) instead of stdout.")
@click.option("--nps-property", default=None, metavar="NAME",
              help="Only promoters: the contact custom property holding each contact's NPS "
                   "score (0-10).")
@click.option("--nps-csv", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Only promoters: a survey CSV with a score column and an email or "
                   "contact_id column; its scores win over --nps-property's.")
@click.option("--min-nps", type=click.IntRange(0, 10), default=9, show_default=True,
              help="The lowest score that makes a promoter (with --nps-property / --nps-csv).")
@as_of_option
def export_opportunities_cmd(config_path: Path, fmt: str, service: str | None,
                             owner: str | None, out: Path | None, nps_property: str | None,
                             nps_csv: Path | None, min_nps: int,
                             as_of: dt.datetime | None) -> None:
    """Who lacks a service most of their industry peers use, with a contact to call.

    The decision contact comes first, else the first active contact with an email. With
    --nps-property or --nps-csv only promoters (an NPS score of --min-nps or more) may be the
    contact, and customers with no promoter are left out (their count goes to stderr, with any
    unusable CSV rows by line number).

    \b
    Examples:
      keyservices export opportunities --service MIT --format hubspot --out mit.csv
      keyservices export opportunities --nps-csv survey.csv --format hubspot --out promoters.csv
    """
    from ..commands.export import NpsFilter, export_opportunities, write

    nps = (NpsFilter(property=nps_property, csv=nps_csv, min_score=min_nps)
           if nps_property or nps_csv else None)
    result = export_opportunities(load_config_at(config_path), fmt=fmt,  # type: ignore[arg-type]
                                  service=service, owner=owner,
                                  as_of=as_of.date() if as_of else None, nps=nps)
    if write(result.text, out) is None:
        _echo_csv(result.text)
    else:
        click.echo(f"Wrote {result.count} opportunities to {out}", err=True)
    if nps is not None:
        _echo_nps(result, nps)


@export_group.command("alerts")
@config_option
@click.option("--monitor", default=None, help="Only this status monitor's code (e.g. "
                                              "DM-LAPSING).")
@click.option("--owner", default=None, help="Only this sales rep's customers (full name).")
@click.option("--new", "new", is_flag=True, default=False,
              help="Only the alerts first seen tonight (not on an earlier night's live run).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write to this file (UTF-8 with BOM for Excel) instead of stdout.")
@as_of_option
def export_alerts_cmd(config_path: Path, monitor: str | None, owner: str | None, new: bool,
                      out: Path | None, as_of: dt.datetime | None) -> None:
    """Every status-monitor hit of the night, with its text, as CSV.

    The digest lists the new ones (capped) and counts the continuing ones per monitor; the
    export has them all, each with the night it was first seen (first_seen) and its priority.

    \b
    Examples:
      keyservices export alerts --out alerts.csv -c config.yaml
      keyservices export alerts --monitor DM-LAPSING --owner "Dana Whitfield"
      keyservices export alerts --new --out new-alerts.csv -c config.yaml
    """
    from ..commands.export import export_alerts, write

    text, count = export_alerts(load_config_at(config_path), monitor=monitor, owner=owner,
                                as_of=as_of.date() if as_of else None, new=new)
    if write(text, out) is None:
        _echo_csv(text)
    else:
        click.echo(f"Wrote {count} status alerts to {out}", err=True)


def _echo_csv(text: str) -> None:
    """The CSV on stdout: as is into a file or a pipe, its cells escaped on a terminal (an ERP
    name's lone CR or line break would overwrite or forge a line there)."""
    import sys

    from .console import echo_data
    from .terminal import terminal_csv

    isatty = getattr(sys.stdout, "isatty", None)
    echo_data(terminal_csv(text) if isatty is not None and isatty() else text)


def _echo_nps(result: Any, nps: Any) -> None:
    """The promoter filter's outcome, on stderr (stdout may be the CSV)."""
    from .terminal import terminal_text

    for line, problem in result.csv_problems[:20]:
        click.echo(f"{nps.csv}:{line}: {terminal_text(problem)}; row skipped", err=True)
    if len(result.csv_problems) > 20:
        click.echo(f"  +{len(result.csv_problems) - 20} more unusable rows", err=True)
    if result.csv_unmatched:
        click.echo(f"{result.csv_unmatched} survey row(s) name no active contact", err=True)
    if result.bad_property_values:
        click.echo(f"{result.bad_property_values} {nps.property} value(s) are not a score from "
                   "0 to 10 and were ignored", err=True)
    click.echo(f"Promoters (NPS {nps.min_score:g} or more): {result.promoters} contact(s). Left "
               f"out {result.left_out_customers} customer(s) with no promoter contact "
               f"({result.left_out_rows} opportunities).", err=True)
