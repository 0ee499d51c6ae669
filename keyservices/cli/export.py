"""``keyservices export opportunities / alerts``: the night's calls as CSV (or, with --json, as
JSON rows).

CSV on stdout is what ``--out`` writes, byte for byte (UTF-8 with its BOM), when stdout is a
file or a pipe, whatever the console's code page: under Task Scheduler Windows would write it in
cp1252 and turn "Łódź" into "?ód?". On a terminal it is text in the console's encoding, with
the control characters inside cells escaped.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

import click

from .base import (
    as_of_option,
    cli,
    company_option,
    config_option,
    emit_json,
    json_option,
    load_config_at,
)


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
              help="Write to this file (UTF-8 with BOM for Excel) instead of stdout; a file or "
                   "a pipe on stdout gets the same bytes.")
@click.option("--nps-property", default=None, metavar="NAME",
              help="Only promoters: the contact custom property holding each contact's NPS "
                   "score (0-10).")
@click.option("--nps-csv", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Only promoters: a survey CSV with a score column and an email or "
                   "contact_id column; its scores win over --nps-property's.")
@click.option("--min-nps", type=click.IntRange(0, 10), default=9, show_default=True,
              help="The lowest score that makes a promoter (with --nps-property / --nps-csv).")
@click.option("--include-hidden", is_flag=True, default=False,
              help="Keep the opportunities a snooze or dismiss hides (marked hidden).")
@as_of_option
@company_option
@json_option
def export_opportunities_cmd(config_path: Path, fmt: Literal["csv", "hubspot"],
                             service: str | None, owner: str | None, out: Path | None,
                             nps_property: str | None, nps_csv: Path | None, min_nps: int,
                             include_hidden: bool, as_of: dt.datetime | None,
                             companies: tuple[str, ...], as_json: bool) -> None:
    """Who to call, in rank order: every play ranked by expected value, with a contact.

    Each row carries its play (industry_gap, cross_sell:<rule>, uncovered_machines), p_win (the
    chance the service is won within 90 days, learned from the ERP's history: keyservices
    backtest), expected_value (p_win x the annual value) and the evidence for the rate. With
    --as-of, nothing dated after that day is read, the rates included.

    The decision contact comes first, else the first active contact with an email. With
    --nps-property or --nps-csv only promoters (an NPS score of --min-nps or more) may be the
    contact, and customers with no promoter are left out (their count goes to stderr, with any
    unusable CSV rows by line number). With --json the rows are printed as JSON objects with
    the count (and the promoter counts); with --out as well, the file gets the CSV and stdout
    the counts.

    For a group (companies: in the config) every company's rows come in one file, company by
    company, with a first column naming the company (company; Dealer Company for HubSpot);
    --company picks some. A company whose database cannot be read is left out with a warning,
    and the exit code is its error's.

    \b
    Examples:
      keyservices export opportunities --service MIT --format hubspot --out mit.csv
      keyservices export opportunities --nps-csv survey.csv --format hubspot --out promoters.csv
      keyservices export opportunities --company North --out north.csv -c group.yaml
    """
    from ..commands.export import NpsFilter, write
    from ..commands.group_exports import group_opportunities

    nps = (NpsFilter(property=nps_property, csv=nps_csv, min_score=min_nps)
           if nps_property or nps_csv else None)
    result = group_opportunities(load_config_at(config_path), companies, fmt=fmt,
                                 service=service, owner=owner,
                                 as_of=as_of.date() if as_of else None, nps=nps,
                                 include_hidden=include_hidden)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if as_json:
        promoters = {} if nps is None else {
            "promoters": result.promoters, "left_out_customers": result.left_out_customers,
            "left_out_rows": result.left_out_rows, "csv_unmatched": result.csv_unmatched,
            "bad_property_values": result.bad_property_values,
            "csv_problems": [{"line": line, "problem": problem}
                             for line, problem in result.csv_problems]}
        _emit_rows(result.text, result.count, out, {**promoters, **_failed(result)})
    elif write(result.text, out) is None:
        _echo_csv(result.text)
    else:
        click.echo(f"Wrote {result.count} opportunities to {out}", err=True)
    if nps is not None:
        _echo_nps(result, nps)
    _exit(result)


@export_group.command("alerts")
@config_option
@click.option("--monitor", default=None, help="Only this status monitor's code (e.g. "
                                              "DM-LAPSING).")
@click.option("--owner", default=None, help="Only this sales rep's customers (full name).")
@click.option("--new", "new", is_flag=True, default=False,
              help="Only the alerts first seen tonight (not on an earlier night's live run).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write to this file (UTF-8 with BOM for Excel) instead of stdout; a file or "
                   "a pipe on stdout gets the same bytes.")
@as_of_option
@company_option
@json_option
def export_alerts_cmd(config_path: Path, monitor: str | None, owner: str | None, new: bool,
                      out: Path | None, as_of: dt.datetime | None, companies: tuple[str, ...],
                      as_json: bool) -> None:
    """Every status-monitor hit of the night, with its text, as CSV.

    The digest lists the new ones (capped) and counts the continuing ones per monitor; the
    export has them all, each with the night it was first seen (first_seen) and its priority.
    With --json the rows are printed as JSON objects with the count. For a group every
    company's alerts come in one file with a first column naming the company, as for
    opportunities.

    \b
    Examples:
      keyservices export alerts --out alerts.csv -c config.yaml
      keyservices export alerts --monitor DM-LAPSING --owner "Dana Whitfield"
      keyservices export alerts --new --out new-alerts.csv -c config.yaml
    """
    from ..commands.export import write
    from ..commands.group_exports import group_alerts

    result = group_alerts(load_config_at(config_path), companies, monitor=monitor, owner=owner,
                          as_of=as_of.date() if as_of else None, new=new)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    text, count = result
    if as_json:
        _emit_rows(text, count, out, _failed(result))
    elif write(text, out) is None:
        _echo_csv(text)
    else:
        click.echo(f"Wrote {count} status alerts to {out}", err=True)
    _exit(result)


def _failed(result: Any) -> dict[str, Any]:
    """A group's export under --json: the companies left out, and why."""
    failed = getattr(result, "failed", None)
    return {} if failed is None else {"failed": [f.to_dict() for f in failed]}


def _exit(result: Any) -> None:
    """A group's export with a company left out exits with that company's code."""
    import sys

    code = getattr(result, "exit_code", 0)
    if code:
        sys.exit(code)


def _emit_rows(text: str, count: int, out: Path | None,
               more: dict[str, Any] | None = None) -> None:
    """--json: the CSV's rows as objects keyed by its header (the cells as the CSV has them,
    a formula-looking name still quoted), or, when --out took the CSV, where it went."""
    import csv
    import io

    from ..commands.export import write

    data: dict[str, Any] = {"count": count, **(more or {})}
    if write(text, out) is None:
        data["rows"] = [{k: _number(k, v) for k, v in row.items()}
                        for row in csv.DictReader(io.StringIO(text, newline=""))]
    else:
        data["out"] = str(out)
    emit_json(data)


# computed numbers, which a script wants as numbers (blank: null); every other cell is text
_NUMBERS = {"estimated_annual_value": float, "Estimated Annual Value": float, "p_win": float,
            "Chance To Win In 90 Days": float, "expected_value": float, "Expected Value": float,
            "rank": int, "Rank": int}


def _number(key: str, cell: str) -> Any:
    kind = _NUMBERS.get(key)
    if kind is None:
        return cell
    return kind(cell) if cell else None


def _echo_csv(text: str) -> None:
    """The CSV on stdout. Into a file or a pipe: the bytes ``--out`` writes (UTF-8 with its
    BOM), whatever the console's code page. On a terminal: text in the console's encoding, its
    cells' control characters escaped (an ERP name's lone CR or line break would overwrite or
    forge a line there)."""
    import codecs
    import sys

    from .console import echo_data
    from .terminal import terminal_csv

    isatty = getattr(sys.stdout, "isatty", None)
    if isatty is not None and isatty():
        echo_data(terminal_csv(text))
        return
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a text-only stream put in place by a caller: text it is
        echo_data(text)
        return
    sys.stdout.flush()  # anything printed before, first
    # the BOM as ``write`` (--out) puts it in the file: tests check the bytes are the same
    binary.write(codecs.BOM_UTF8 + text.encode("utf-8"))
    binary.flush()


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
