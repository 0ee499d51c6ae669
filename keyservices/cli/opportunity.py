"""``keyservices opportunity``: list the remembered opportunities, snooze or dismiss one.

Thin, like every command: parse, call one function of :mod:`keyservices.commands.opportunity`, print. Errors
are the library's and reach the single handler in :mod:`keyservices.cli`, which this module is
registered under (``cli.add_command(opportunity)``, at the end of cli.py, after the shared
options this module imports are defined).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .base import config_option, emit_json, json_option, load_config_at, one_company_option

if TYPE_CHECKING:
    from ..calls.lifecycle import OpportunityRecord

# ``keyservices.calls.lifecycle.STATUSES``, spelled out: importing it runs the ``calls`` package,
# which loads numpy and the rule engine for every ``--help``. tests/test_startup.py keeps the two equal.
STATUSES: tuple[str, ...] = ("new", "open", "won", "closed", "withdrawn", "lost")


def _until_option(f: Callable) -> Callable:
    return click.option("--until", type=click.DateTime(formats=["%Y-%m-%d"]), required=True,
                        help="Hide it up to and including this date (YYYY-MM-DD).")(f)


def _reason_option(f: Callable) -> Callable:
    return click.option("--reason", required=True, help="Why, for whoever reads the list next.")(f)


def _by_option(f: Callable) -> Callable:
    return click.option("--by", default=None, help="Who decided (name or initials).")(f)


@click.group("opportunity")
def opportunity() -> None:
    """The opportunity list across nights: new, open, won, withdrawn; snooze or dismiss one.

    Each run updates one record per customer and service: new the first night, open while it
    holds, won when the service appears, closed when the condition clears or the customer
    leaves the scope; it reopens if it comes back.

    \b
    Example:
      keyservices opportunity list --status open --owner "Dana Rep" -c config.yaml
    """


@opportunity.command("list")
@config_option
@click.option("--status", type=click.Choice(STATUSES), default=None,
              help="Only this status; default every status, active ones first.")
@click.option("--owner", default=None, help="Only this sales rep's customers (full name).")
@click.option("--service", default=None, help="Only this service code (e.g. MIT).")
@click.option("--customer", default=None, help="Only this customer number.")
@one_company_option
@json_option
def list_cmd(config_path: Path, status: str | None, owner: str | None, service: str | None,
             customer: str | None, as_json: bool) -> None:
    """List the remembered opportunities, in rank order, with status, owner, chance and age.

    Active ones come first, by expected value (the chance to win in 90 days x the annual
    value, as the last run ranked them; --json has play, p_win, expected_value and priority).

    Age is the days from first seen to the last night seen (or to when it closed). "Hidden
    until" shows a snooze or dismiss still in force.

    \b
    Examples:
      keyservices opportunity list -c config.yaml
      keyservices opportunity list --status new --service MIT --json -c config.yaml
    """
    from ..commands.opportunity import list_opportunities
    from .exiting import keep

    records = list_opportunities(load_config_at(config_path, one="opportunity"), status=status, owner=owner, service=service,
                                 customer=customer)
    keep(records)  # up to one per customer and service: not freed one by one at exit
    if as_json:
        emit_json([dataclasses.asdict(r) for r in records])
        return
    if not records:
        click.echo("No opportunity matches." if (status or owner or service or customer) else
                   f"No opportunities yet; a run records them: keyservices run -c {config_path}")
        return
    print_table(records, dt.date.today(), width=_terminal_width())


@opportunity.command("snooze")
@click.argument("customer")
@click.argument("service")
@_until_option
@_reason_option
@_by_option
@config_option
@one_company_option
@json_option
def snooze_cmd(customer: str, service: str, until: dt.datetime, reason: str, by: str | None,
               config_path: Path, as_json: bool) -> None:
    """Hide an opportunity until a date: "not now". It comes back after the date.

    CUSTOMER is the customer number, SERVICE the service code (any case).

    \b
    Example:
      keyservices opportunity snooze COP001 MIT --until 2027-01-15 --reason "tender until Jan"
    """
    from ..commands.opportunity import snooze

    record = snooze(load_config_at(config_path, one="opportunity"), customer, service, until=until.date(), reason=reason,
                    by=by)
    _done(record, "Snoozed", as_json)


@opportunity.command("dismiss")
@click.argument("customer")
@click.argument("service")
@_until_option
@_reason_option
@_by_option
@config_option
@one_company_option
@json_option
def dismiss_cmd(customer: str, service: str, until: dt.datetime, reason: str, by: str | None,
                config_path: Path, as_json: bool) -> None:
    """Hide an opportunity until a date: "not interested". It comes back after the date.

    Unlike a snooze ("not now"), a dismiss records that the customer said no; both expire, so
    a no is asked again once the date has passed.

    \b
    Example:
      keyservices opportunity dismiss COP001 MIT --until 2027-06-30 --reason "said no"
    """
    from ..commands.opportunity import dismiss

    record = dismiss(load_config_at(config_path, one="opportunity"), customer, service, until=until.date(), reason=reason,
                     by=by)
    _done(record, "Dismissed", as_json)


@opportunity.command("unsnooze")
@click.argument("customer")
@click.argument("service")
@config_option
@one_company_option
@json_option
def unsnooze_cmd(customer: str, service: str, config_path: Path, as_json: bool) -> None:
    """Lift a snooze or dismiss now; the opportunity shows again from the next run.

    \b
    Example:
      keyservices opportunity unsnooze COP001 MIT -c config.yaml
    """
    from ..commands.opportunity import unsnooze

    record = unsnooze(load_config_at(config_path, one="opportunity"), customer, service)
    if as_json:
        emit_json(dataclasses.asdict(record))
    else:
        from .terminal import terminal_text as t

        click.echo(f"{t(record.customer_number)} {t(record.service_code)}: no longer hidden; it "
                   f"shows from the next run while it is {record.status}.")


def _done(record: OpportunityRecord, verb: str, as_json: bool) -> None:
    if as_json:
        emit_json(dataclasses.asdict(record))
        return
    from .terminal import terminal_text as t

    click.echo(f"{verb} {t(record.customer_number)} {t(record.service_code)} until "
               f"{record.snoozed_until}: {t(record.snooze_reason)}. It comes back after that "
               "date if it still holds.")


def print_table(records: list[OpportunityRecord], today: dt.date, *,
                width: int | None = None) -> None:
    """The list as aligned columns; ``width`` (a terminal's) cuts the customer's name and then
    the owner short so that a row never wraps there: a wrapped row splits its hidden-until
    date over two lines."""
    from .terminal import terminal_text as t

    # the chance to win in 90 days, as the last run ranked them (--json has the priority too)
    header = ("STATUS", "CUSTOMER", "SERVICE", "OWNER", "CHANCE", "AGE", "HIDDEN UNTIL")
    rows = [(r.status, t(f"{r.customer_number} {r.customer_name}")[:40], t(r.service_code),
             t(r.owner or "-")[:24], "-" if r.p_win is None else f"{r.p_win:.1%}",
             f"{r.age_days()}d",
             f"{r.snoozed_until} ({'dismissed' if r.dismissed else 'snoozed'})"
             if r.hidden_on(today) else "-") for r in records]
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    # what gives way on a narrow terminal: the customer's name (never its number), then the
    # owner; the status, dates and numbers stay whole
    numbers = max((len(t(r.customer_number)) for r in records), default=0)
    for column, narrowest in ((1, max(len(header[1]), numbers)), (3, 8)):
        excess = sum(widths) + 2 * (len(widths) - 1) - (width or 10**6)
        if excess > 0:
            widths[column] = max(min(narrowest, widths[column]), widths[column] - excess)
    for row in (header, *rows):
        click.echo("  ".join(f"{str(cell)[:w]:<{w}}" for cell, w in zip(row, widths)).rstrip())
    click.echo(f"{len(records)} opportunit{'y' if len(records) == 1 else 'ies'}")


def _terminal_width() -> int | None:
    """The terminal's width when stdout is one; a file or a pipe takes rows of any length."""
    import shutil
    import sys

    isatty = getattr(sys.stdout, "isatty", None)
    return shutil.get_terminal_size().columns if isatty is not None and isatty() else None
