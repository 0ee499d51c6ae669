"""The command line: parse, call one library function, print the result, map errors to exit codes.

No business logic lives here. Every option is defined once below and stacked on the commands that
use it; a single handler turns ``KeyservicesError`` into ``Error: ...`` and its exit code.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import EXIT_CODES, EXIT_FAILURE, KeyservicesError

log = logging.getLogger("keyservices")

EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(f"  {code}  {text}"
                                                  for code, text in EXIT_CODES.items())


# -- shared options (defined once, stacked) ------------------------------------------------------
def config_option(f: Callable) -> Callable:
    return click.option("-c", "--config", "config_path", type=click.Path(path_type=Path),
                        default=Path("config.yaml"), show_default=True,
                        help="The configuration file.")(f)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the result as JSON (for scripts) instead of text.")(f)


def as_of_option(f: Callable) -> Callable:
    return click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
                        help="Run as if today were this date (YYYY-MM-DD); default today.")(f)


# -- the group and its error handler -------------------------------------------------------------
class KeyservicesGroup(click.Group):
    """Maps library errors to one readable line and the documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyservicesError as exc:
            log.error("%s", exc, extra={"echoed": True})  # to the log file; stderr gets the echo
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, BrokenPipeError):
            raise
        except Exception as exc:  # unexpected: one line, the traceback to the log
            if ctx.obj and ctx.obj.get("debug"):
                raise
            log.exception("unexpected error", extra={"echoed": True})
            click.echo(f"Error: unexpected {type(exc).__name__}: {exc} "
                       "(rerun with --debug for the traceback)", err=True)
            ctx.exit(EXIT_FAILURE)


@click.group(cls=KeyservicesGroup, epilog=EXIT_CODES_HELP,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keyservices")
@click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, debug: bool) -> None:
    """Which customers use which key services, and who is missing one.

    keyservices reads an ECi e-automate database each night, classifies every customer against
    the rules in rules/*.yaml, writes the result into one customer custom property (such as
    ZCJKeyServices) where it changed, and emails managers a digest.

    \b
    New here? See it work on a generated demo dealer:
      keyservices demo
    Then point a config at your ERP and check it:
      keyservices check -c config.yaml
      keyservices run -c config.yaml --dry-run
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    _setup_stderr_logging(level)


def _setup_stderr_logging(level: int) -> None:
    root = logging.getLogger("keyservices")
    root.setLevel(logging.DEBUG)
    for h in list(root.handlers):
        if getattr(h, "_keyservices_stderr", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler._keyservices_stderr = True  # type: ignore[attr-defined]
    handler.addFilter(lambda record: not getattr(record, "echoed", False))
    root.addHandler(handler)


def _setup_file_logging(state_dir: Path) -> None:
    """A rotating, human-readable log in the state folder: what an admin reads the morning after."""
    root = logging.getLogger("keyservices")
    target = (state_dir / "keyservices.log").resolve()
    for h in root.handlers:
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename) == target:
            return
    state_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(target, maxBytes=2_000_000, backupCount=5,
                                                   encoding="utf-8", delay=True)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


def _load(config_path: Path, overrides: dict[str, Any] | None = None) -> Any:
    from .config import load_config

    config = load_config(config_path, overrides)
    _setup_file_logging(config.state.dir)
    return config


def _reporter(as_json: bool) -> Any:
    from .console import reporter

    return reporter(enabled=not as_json)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


# -- commands ------------------------------------------------------------------------------------
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
    Running it again in the same DIR starts the demo afresh.

    \b
    Example:
      keyservices demo --dir /tmp/ks-demo
    """
    from .console import print_demo
    from .demorun import demo as run_demo

    with _reporter(as_json) as progress:
        result = run_demo(directory, customers=customers, seed=seed,
                          as_of=as_of.date() if as_of else None, reporter=progress)
    if as_json:
        _emit_json({"directory": str(result.directory), "database": str(result.database),
                    "config": str(result.config), "outbox": str(result.outbox),
                    "nights": [n.to_dict() for n in result.nights]})
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
@json_option
def demo_db(customers: int, out: Path, seed: int, as_of: dt.datetime | None, force: bool,
            as_json: bool) -> None:
    """Create a synthetic e-automate-shaped dealer database (SQLite).

    The same --customers, --seed and --as-of always give the same data. Useful for benchmarks
    and for trying rules without a real ERP.

    \b
    Example:
      keyservices demo-db --customers 100000 --out dealer.sqlite
    """
    import dataclasses

    from .demodb import build_demo_db

    summary = build_demo_db(out, customers=customers, seed=seed,
                            as_of=as_of.date() if as_of else dt.date.today(), overwrite=force)
    if as_json:
        _emit_json(dataclasses.asdict(summary))
    else:
        click.echo(f"Created {out} with {customers:,} customers.")
        click.echo(f"Point erp.url at it: sqlite:///{out.resolve().as_posix()}")


@cli.command("run")
@config_option
@click.option("--dry-run", is_flag=True,
              help="Compute and print the plan; write nothing (ERP, state, outbox).")
@click.option("--force", is_flag=True,
              help="Write even when the change guard would stop the run (after review).")
@click.option("--no-email", is_flag=True, help="Write the digest to the outbox but do not send it.")
@click.option("--mode", type=click.Choice(["live", "test"]), default=None,
              help="Override the config's mode for this run (test writes nothing to the ERP).")
@as_of_option
@json_option
def run_cmd(config_path: Path, dry_run: bool, force: bool, no_email: bool, mode: str | None,
            as_of: dt.datetime | None, as_json: bool) -> None:
    """The nightly job: classify every customer and write the property where it changed.

    Reads facts with a few aggregate queries, classifies, writes changed values in guarded,
    chunked transactions (never INSERT or DELETE), audits every change with its before-value,
    writes the digest to the outbox and sends it when SMTP is configured.

    \b
    Examples:
      keyservices run -c config.yaml --dry-run
      keyservices run -c config.yaml
    """
    from .api import run
    from .console import print_run
    from .errors import GuardTripped

    config = _load(config_path, {"mode": mode})
    try:
        with _reporter(as_json) as progress:
            result = run(config, dry_run=dry_run, force=force, send=not no_email,
                         as_of=as_of.date() if as_of else None, reporter=progress)
    except GuardTripped as exc:
        if exc.detail is not None:
            if as_json:
                _emit_json(exc.detail.to_dict())
            else:
                print_run(exc.detail)
        raise
    if as_json:
        _emit_json(result.to_dict())
    else:
        print_run(result)
        if result.dry_run:
            click.echo(f"Next: review the plan, then 'keyservices run -c {config_path}' applies it.")
        elif result.mode == "test":
            click.echo(f"Next: read the digest; when it looks right, set 'mode: live' in "
                       f"{config_path} (or run with --mode live) to write the ERP.")
    if result.delivery_error:
        click.echo(f"Error: {result.delivery_error}", err=True)
    sys.exit(result.exit_code) if result.exit_code else None


@cli.command()
@config_option
@click.option("--show-sql", is_flag=True,
              help="Print every statement a run sends to the ERP, for this database, and stop "
                   "(no connection is made).")
@click.option("--suggest-indexes", is_flag=True,
              help="Print the CREATE INDEX statements a DBA could run so the nightly statements "
                   "read index ranges instead of whole tables (keyservices never creates them).")
@json_option
def check(config_path: Path, show_sql: bool, suggest_indexes: bool, as_json: bool) -> None:
    """Validate config and rules, connect, and verify the ERP schema.

    Checks every table and column the rules need, that the custom-property attribute exists,
    and lists dealer model categories that map to no model class (with their equipment counts).

    \b
    Examples:
      keyservices check -c config.yaml
      keyservices check -c config.yaml --show-sql    # the SQL, for your DBA
      keyservices check -c config.yaml --suggest-indexes > indexes.sql
    """
    from .api import check as run_check
    from .console import print_check

    if suggest_indexes:
        from .api import suggest_indexes as advise

        advice = advise(_load(config_path))
        if as_json:
            _emit_json([{"table": a.table, "keys": a.keys, "include": a.include, "why": a.why,
                         "sql": sql} for a, sql in advice])
        elif not advice:
            click.echo("-- every index the nightly statements can use is already there")
        else:
            click.echo("-- Indexes for a DBA to review; keyservices never creates anything in "
                       "the ERP.")
            for a, sql in advice:
                click.echo(f"-- {a.why}\n{sql}\n")
        return

    if show_sql:
        from .explainer import show_sql as compile_sql

        statements = compile_sql(_load(config_path))
        if as_json:
            _emit_json([{"name": n, "sql": q} for n, q in statements])
        else:
            for name, sql in statements:
                click.echo(f"-- {name}\n{sql};\n")
        return
    report = run_check(_load(config_path))
    if as_json:
        _emit_json(report.to_dict())
    else:
        print_check(report)
        click.echo(f"Next: 'keyservices run -c {config_path} --dry-run' shows what a run would "
                   "change.")


@cli.command()
@click.argument("customer")
@config_option
@as_of_option
@json_option
def explain(customer: str, config_path: Path, as_of: dt.datetime | None, as_json: bool) -> None:
    """Why a customer has or lacks each service: its facts and every rule's verdict.

    CUSTOMER is a customer number, or part of a name. With level: parent, the parent and each
    of its locations are shown, since a location's services count for its parent.

    \b
    Example:
      keyservices explain COP001 -c config.yaml
      keyservices explain "Café Müller" -c config.yaml --json
    """
    from .explainer import explain as run_explain
    from .console import print_explanation

    result = run_explain(_load(config_path), customer, as_of=as_of.date() if as_of else None)
    if as_json:
        _emit_json(result.to_dict())
    else:
        print_explanation(result)


@cli.command()
@config_option
@click.option("--preview", "mode", flag_value="preview", default=True,
              help="Write the digest as an HTML file and print its path (the default).")
@click.option("--text", "mode", flag_value="text", help="Print the plain-text digest instead.")
@click.option("--run", "run_id", type=int, default=None,
              help="The run whose digest to render; default the latest.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Where to write the HTML; default preview.html in the state folder.")
def digest(config_path: Path, mode: str, run_id: int | None, out: Path | None) -> None:
    """Render the latest run's digest again, with the current templates.

    Every run keeps the data of its digest in the state folder, so you can edit
    templates/digest.html.j2 and see the result at once, without another run.

    \b
    Example:
      keyservices digest --preview -c config.yaml
    """
    from .api import preview_digest

    path, text = preview_digest(_load(config_path), run_id=run_id, out=out)
    click.echo(text if mode == "text" else str(path))


@cli.command("history")
@config_option
@click.option("--run", "run_id", type=int, default=None, help="Show the changes of this run.")
@click.option("--customer", default=None, help="Show the changes of this customer number.")
@json_option
def history_cmd(config_path: Path, run_id: int | None, customer: str | None,
                as_json: bool) -> None:
    """The audit: recent runs, or every change of one run or one customer.

    Each change is kept with its before- and after-value, so any run can be rolled back.

    \b
    Examples:
      keyservices history -c config.yaml
      keyservices history --run 12 -c config.yaml
      keyservices history --customer ABC001 -c config.yaml
    """
    from .audit import history
    from .console import print_history

    data = history(_load(config_path), run_id=run_id, customer=customer)
    if as_json:
        _emit_json(data)
    else:
        print_history(data)


@cli.command("rollback")
@click.argument("run_id", type=int)
@config_option
@json_option
def rollback_cmd(run_id: int, config_path: Path, as_json: bool) -> None:
    """Restore the values a run replaced, where they are still what that run wrote.

    Customers whose value changed since (edited in e-automate, or by a later run) are left
    alone and listed. The rollback is audited as a run of its own.

    \b
    Example:
      keyservices rollback 12 -c config.yaml
    """
    from .audit import rollback

    with _reporter(as_json) as progress:
        report = rollback(_load(config_path), run_id, reporter=progress)
    if as_json:
        _emit_json(report.to_dict())
        return
    click.echo(f"Rollback of run {report.of_run} (audited as run {report.run_id}): "
               f"{len(report.restored)} value(s) restored, {len(report.skipped)} left alone.")
    for item in report.skipped[:50]:
        click.echo(f"  {item['customer']}: no longer {item['run_wrote'] or '(empty)'!s}; "
                   "left as it is")


@cli.command("test-rules")
@config_option
@click.option("--cases", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of case files; default rules/tests beside the rules.")
@json_option
def test_rules_cmd(config_path: Path, cases: Path | None, as_json: bool) -> None:
    """Run your own rule tests: facts in, expected services out.

    Each case in rules/tests/*.yaml describes a customer (and its locations) and the services
    it must get. A failing case shows what was expected, what came out and why; exit 1.

    \b
    Example:
      keyservices test-rules -c config.yaml
    """
    from .explainer import test_rules
    from .errors import RuleTestsFailed

    results = test_rules(_load(config_path), cases)
    failed = [r for r in results if not r.passed]
    if as_json:
        _emit_json([{"file": str(r.file), "line": r.line, "name": r.name, "passed": r.passed,
                     "expected": r.expected, "got": r.got} for r in results])
    else:
        for r in results:
            click.echo(f"{'ok  ' if r.passed else 'FAIL'} {r.file.name}:{r.line} {r.name}")
            if not r.passed:
                missing = [c for c in r.expected if c not in r.got]
                extra = [c for c in r.got if c not in r.expected]
                click.echo(f"       expected: {', '.join(r.expected) or '(none)'}")
                click.echo(f"       got:      {', '.join(r.got) or '(none)'}")
                click.echo(f"       missing:  {', '.join(missing) or '-'}    unexpected: "
                           f"{', '.join(extra) or '-'}")
                for reason in r.reasons:
                    click.echo(f"         {reason}")
        click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise RuleTestsFailed(f"{len(failed)} rule test(s) failed")


@cli.command("rules-schema")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the schema to this file instead of printing it.")
def rules_schema_cmd(out: Path | None) -> None:
    """Print the JSON Schema of a rule file, for editor autocompletion and checking.

    With the YAML language server (VS Code's YAML extension), put this first in a rule file:
    # yaml-language-server: $schema=keyservices-rules.schema.json

    \b
    Example:
      keyservices rules-schema --out rules/keyservices-rules.schema.json
    """
    from .explainer import rules_schema

    text = json.dumps(rules_schema(), indent=2)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
        click.echo(str(out))
    else:
        click.echo(text)


@cli.command("init")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False), default=Path("."))
@click.option("--force", is_flag=True, help="Replace an existing config.yaml and rules/.")
def init_cmd(directory: Path, force: bool) -> None:
    """Write a commented config.yaml and starter rules/ to edit.

    The config starts in test mode (compute and email, write nothing); switch to mode: live
    when the digests look right.

    \b
    Example:
      keyservices init /opt/keyservices
    """
    from .setup import init

    for path in init(directory, force=force):
        click.echo(f"Wrote {path}")
    cfg = directory / "config.yaml"
    click.echo(f"Next: set erp.url in {cfg}, export KEYSERVICES_ERP_PASSWORD, then run "
               f"'keyservices check -c {cfg}'.")


@cli.command("schedule")
@config_option
@click.option("--at", "at", default="02:30", show_default=True,
              help="Time of day to run (HH:MM, local time).")
@json_option
def schedule_cmd(config_path: Path, at: str, as_json: bool) -> None:
    """Print the crontab line and the Windows schtasks command for this config.

    Nothing is installed: copy the line for your system. Both run quietly (-q), so the
    scheduler sees only errors, and the exit code tells it how the run went.

    \b
    Example:
      keyservices schedule -c config.yaml --at 03:15
    """
    import re

    from .setup import schedule

    if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", at):
        raise click.BadParameter("use HH:MM, e.g. 02:30", param_hint="--at")
    plan = schedule(_load(config_path), at=at)
    if as_json:
        import dataclasses

        _emit_json(dataclasses.asdict(plan))
        return
    click.echo("Linux / macOS (crontab -e):")
    click.echo(f"  {plan.cron}")
    click.echo("Windows (an administrator's command prompt):")
    click.echo(f"  {plan.schtasks}")
    click.echo(f"Check the last runs with: {plan.check}")


@cli.command("status")
@config_option
@json_option
def status_cmd(config_path: Path, as_json: bool) -> None:
    """The last runs, digests still queued, and who holds the run lock.

    What to look at in the morning when no digest arrived.

    \b
    Example:
      keyservices status -c config.yaml
    """
    import dataclasses

    from .setup import status

    st = status(_load(config_path))
    if as_json:
        _emit_json(dataclasses.asdict(st))
        return
    if not st.runs:
        click.echo("No run yet.")
    for r in st.runs:
        c = r["counts"]
        click.echo(f"run {r['id']:>4}  {r['started_at']:%Y-%m-%d %H:%M}  {r['mode']:<8} "
                   f"{r['status']:<7} exit {r['exit_code'] if r['exit_code'] is not None else '-'}"
                   f"  written {c.get('written', '-')}  {(r['message'] or '')[:70]}")
    what = ("Queued digests" if _load(config_path).smtp is not None else
            "Digests in the outbox (no smtp: configured, so none are emailed)")
    click.echo(f"{what}: {len(st.queued)}" + "".join(f"\n  {q}" for q in st.queued[-10:]))
    if st.lock_holder:
        click.echo(f"A run is in progress: pid {st.lock_holder.get('pid')} on "
                   f"{st.lock_holder.get('host')} since {st.lock_holder.get('since')}")
    else:
        click.echo("No run in progress.")


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration: the effective settings and where each one came from.

    \b
    Example:
      keyservices config show -c config.yaml
    """


@config_group.command("show")
@config_option
@json_option
def config_show(config_path: Path, as_json: bool) -> None:
    """Print the effective settings and where each came from, secrets masked.

    Precedence: command-line flags, then KEYSERVICES_* environment variables (for example
    KEYSERVICES_ERP_URL, KEYSERVICES_WRITE_MAX_CHANGES), then the file, then the defaults.

    \b
    Example:
      keyservices config show -c config.yaml
    """
    from .config import show

    rows = show(_load(config_path))
    if as_json:
        _emit_json([{"key": k, "value": v, "source": s} for k, v, s in rows])
        return
    width = max(len(k) for k, _, _ in rows)
    for key, value, source in rows:
        click.echo(f"{key:<{width}}  {value:<40}  {source}")


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
    from .exports import NpsFilter, export_opportunities, write

    nps = (NpsFilter(property=nps_property, csv=nps_csv, min_score=min_nps)
           if nps_property or nps_csv else None)
    result = export_opportunities(_load(config_path), fmt=fmt,  # type: ignore[arg-type]
                                  service=service, owner=owner,
                                  as_of=as_of.date() if as_of else None, nps=nps)
    if write(result.text, out) is None:
        click.echo(result.text, nl=False)
    else:
        click.echo(f"Wrote {result.count} opportunities to {out}", err=True)
    if nps is not None:
        _echo_nps(result, nps)


@export_group.command("alerts")
@config_option
@click.option("--monitor", default=None, help="Only this status monitor's code (e.g. "
                                              "DM-LAPSING).")
@click.option("--owner", default=None, help="Only this sales rep's customers (full name).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write to this file (UTF-8 with BOM for Excel) instead of stdout.")
@as_of_option
def export_alerts_cmd(config_path: Path, monitor: str | None, owner: str | None,
                      out: Path | None, as_of: dt.datetime | None) -> None:
    """Every status-monitor hit of the night, with its text, as CSV.

    The digest lists a capped number per monitor and branch; the export has them all.

    \b
    Examples:
      keyservices export alerts --out alerts.csv -c config.yaml
      keyservices export alerts --monitor DM-LAPSING --owner "Dana Whitfield"
    """
    from .exports import export_alerts, write

    text, count = export_alerts(_load(config_path), monitor=monitor, owner=owner,
                                as_of=as_of.date() if as_of else None)
    if write(text, out) is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"Wrote {count} status alerts to {out}", err=True)


def _echo_nps(result: Any, nps: Any) -> None:
    """The promoter filter's outcome, on stderr (stdout may be the CSV)."""
    for line, problem in result.csv_problems[:20]:
        click.echo(f"{nps.csv}:{line}: {problem}; row skipped", err=True)
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


@cli.command("send-outbox")
@config_option
@json_option
def send_outbox_cmd(config_path: Path, as_json: bool) -> None:
    """Send the digests still queued in the outbox (after an SMTP outage).

    Each run already retries the queue; this sends it now. Exits 5 if SMTP still fails.

    \b
    Example:
      keyservices send-outbox -c config.yaml
    """
    from .api import send_outbox
    from .errors import DeliveryFailed

    report = send_outbox(_load(config_path))
    if as_json:
        _emit_json({"sent": [str(p) for p in report.sent],
                    "queued": [str(p) for p in report.queued], "error": report.error})
    else:
        click.echo(f"Sent {len(report.sent)}, still queued {len(report.queued)}.")
    if report.error:
        raise DeliveryFailed(f"{report.error}; {len(report.queued)} message(s) stay queued")


def main() -> None:
    """Console-script entry point."""
    try:
        cli(prog_name="keyservices")
    except BrokenPipeError:  # output piped into 'head' and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


# commands kept in their own modules (they import the shared options above)
from .cli_opportunity import opportunity  # noqa: E402

cli.add_command(opportunity)
from .cli_report import report  # noqa: E402

cli.add_command(report)
