"""``keyservices backtest``: would the call list have been right? Scored on the ERP's history."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from .base import (
    as_of_option,
    cli,
    config_option,
    emit_json,
    json_option,
    load_config_at,
    one_company_option,
)


@cli.command("backtest")
@config_option
@one_company_option
@click.option("--months", type=click.IntRange(4, 60), default=None,
              help="As-of dates to rebuild, 30 days apart, each with the 90 days after it "
                   "[default: ranking.months, 12].")
@click.option("--save", is_flag=True,
              help="Keep the learned win rates in the state store (the night and the exports "
                   "rank with them until they are a week old), and the scores, which report "
                   "charts.")
@as_of_option
@json_option
def backtest_cmd(config_path: Path, months: int | None, save: bool, as_of: dt.datetime | None,
                 as_json: bool) -> None:
    """Rebuild the call list on past dates and score it against what was won after.

    For as-of dates 30 days apart, the list is rebuilt from the ERP's dated history (contracts
    by start and expiry, their lines, GL and invoices by date, machines by install date) and
    each call is judged by the 90 days after it: won when the service appeared. The rates a
    date is ranked with are learned only from calls whose 90 days had passed by then.

    Printed per play and for all: the precision of the top 25 and 100 (the share won), the
    same for a random order and for the static priority order, the annual value the top 25
    won, and the calibration (predicted against observed rate). Nothing is written to the ERP.
    Above ranking.learn_customers customers, every k-th customer group (a parent with its
    locations) is learned from, and the output says so.

    \b
    Examples:
      keyservices backtest -c config.yaml
      keyservices backtest --months 24 --save -c config.yaml
      keyservices backtest --json -c config.yaml > backtest.json
    """
    from ..commands.backtest import backtest
    from .base import progress_reporter

    with progress_reporter(as_json) as progress:
        report = backtest(load_config_at(config_path, one="backtest"),
                          as_of=as_of.date() if as_of else None, months=months, save=save,
                          reporter=progress)
    data = as_dict(report)
    if as_json:
        emit_json(data)
        return
    click.echo("\n".join(lines(data)))


def as_dict(report: Any) -> dict[str, Any]:
    """The backtest as plain data (``--json``): the summary ``report`` charts, and more."""
    b = report.result
    return {**b.summary(report.as_of, report.months),
            "rates": {"offers": b.rates.offered, "won": b.rates.won,
                      "cells": len(b.rates.counts), "saved": report.saved},
            "limits": b.limits, "statements": report.statements,
            "seconds": report.seconds}


def lines(data: dict[str, Any]) -> list[str]:
    """The backtest as text: one row per play, then calibration and what cannot be rebuilt."""
    dates = data["dates"]
    out = [f"Backtest as of {data['as_of']}: {len(dates)} as-of date(s) scored"
           + (f", {dates[0]} to {dates[-1]}" if dates else "")
           + "; each call judged by the 90 days after its date.", ""]
    if not dates:
        out.append("Not enough history: the ERP needs dated contracts, sales or revenue over "
                   "at least 7 months before the as-of date. Try --months 24, or an earlier "
                   "--as-of.")
        return out
    head = (f"{'play':<44} {'calls':>7} {'won':>5} {'top25':>6} {'top100':>6} {'random':>6} "
            f"{'static25':>8} {'static100':>9} {'value won top 25':>17}")
    out += [head, "-" * len(head)]
    for s in [data["overall"], *data["plays"]]:
        out.append(f"{s['play'][:44]:<44} {s['offers']:>7,} {s['won']:>5,} "
                   f"{s.get('precision_at_25', 0):>6.1%} {s.get('precision_at_100', 0):>6.1%} "
                   f"{s['random']:>6.1%} {s.get('static_at_25', 0):>8.1%} "
                   f"{s.get('static_at_100', 0):>9.1%} {s['annual_value_won_top_25']:>17,.0f}")
    o = data["overall"]
    lift = o.get("lift_random_at_100")
    vs = o.get("lift_static_at_100")
    out += ["", ("top25/top100: share of the ranked list's first 25/100 calls won within 90 "
                 "days (averaged over the dates); random: the share of all calls won; static: "
                 "the priority order without learned rates.")]
    if lift is not None:
        out.append(f"The top 100 won {lift:.1f}x as often as a random call"
                   + (f" and {vs:.1f}x as often as the static order's." if vs else "."))
    out += ["", "Calibration (predicted rate against what happened, by tenth of the calls):"]
    out += [f"  predicted {c['predicted']:>6.1%}  observed {c['observed']:>6.1%}  "
            f"({c['offers']:,} calls)" for c in data["calibration"]]
    rates = data["rates"]
    out += ["", f"Win rates learned from {rates['offers']:,} calls ({rates['won']:,} won) in "
                f"{rates['cells']:,} groups"
            + ("; saved in the state store." if rates["saved"]
               else "; not saved (add --save to rank the nights and exports with them).")]
    if data["limits"]:  # a large dealer's sample (ranking.learn_customers) comes first
        sampled = data["limits"][0].startswith("learned from ")
        out += ["", "The sample, and what the ERP cannot rebuild:" if sampled
                else "What the ERP cannot rebuild:"] + [f"  - {x}" for x in data["limits"]]
    return out
