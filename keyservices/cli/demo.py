"""``keyservices demo and demo-db``: a generated dealer to try the tool on."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from .base import as_of_option, cli, emit_json, json_option, program, progress_reporter


@cli.command()
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False),
              default=Path("keyservices-demo"), show_default=True,
              help="Folder for the demo database, config, rules and outbox.")
@click.option("--customers", type=click.IntRange(10, 1_000_000), default=2000, show_default=True,
              help="How many customers the demo dealer has.")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed of the data.")
@as_of_option
@json_option
def demo(directory: Path, customers: int, seed: int, as_of: dt.datetime | None,
         as_json: bool) -> None:
    """Run two nights on a generated demo dealer and show the digests.

    Builds an e-automate-shaped SQLite database in DIR, writes config.yaml and the example rules
    beside it, runs night 1 (a baseline), simulates a day in the ERP (contracts start and end,
    equipment is removed, new GL lines), runs night 2, and writes both digests to DIR/outbox.
    Night 2 is today (or --as-of) and night 1 the day before, so the suggested next steps see
    the ERP as night 2 left it. Running it again in the same DIR starts the demo afresh.

    \b
    Example:
      keyservices demo --dir /tmp/ks-demo
    """
    from ..commands.demo import demo as run_demo
    from .console import print_demo

    with progress_reporter(as_json) as progress:
        result = run_demo(directory, customers=customers, seed=seed,
                          as_of=as_of.date() if as_of else None, reporter=progress,
                          program=program())
    if as_json:
        emit_json({"directory": str(result.directory), "database": str(result.database),
                    "config": str(result.config), "outbox": str(result.outbox),
                    "nights": [n.to_dict() for n in result.nights],
                    "next_steps": result.next_steps})
    else:
        print_demo(result)


@cli.command("demo-db")
@click.option("--customers", type=click.IntRange(1, 10_000_000), default=2000, show_default=True,
              help="How many customers (parents and locations).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The SQLite file to create.")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed of the data.")
@as_of_option
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--plain-dates", is_flag=True,
              help="Store dates as 'YYYY-MM-DD' text instead of date and time (same data).")
@json_option
def demo_db(customers: int, out: Path, seed: int, as_of: dt.datetime | None, force: bool,
            plain_dates: bool, as_json: bool) -> None:
    """Create a synthetic e-automate-shaped dealer database (SQLite).

    The same --customers, --seed and --as-of always give the same data. Useful for benchmarks
    and for trying rules without a real ERP. --plain-dates stores the dates as many exported
    or hand-made databases do, to check the tool reads them the same.

    \b
    Example:
      keyservices demo-db --customers 100000 --out dealer.sqlite
    """
    import dataclasses

    from ..demodb import build_demo_db

    summary = build_demo_db(out, customers=customers, seed=seed,
                            as_of=as_of.date() if as_of else dt.date.today(), overwrite=force,
                            plain_dates=plain_dates)
    if as_json:
        emit_json(dataclasses.asdict(summary))
    else:
        click.echo(f"Created {out} with {customers:,} customers.")
        click.echo(f"Point erp.url at it: sqlite:///{out.resolve().as_posix()}")
