"""``keyservices explain, test-rules and rules-schema``: looking inside the rules."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

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


@cli.command()
@click.argument("customer")
@config_option
@as_of_option
@one_company_option
@json_option
def explain(customer: str, config_path: Path, as_of: dt.datetime | None, as_json: bool) -> None:
    """Why a customer has or lacks each service: its facts and every rule's verdict.

    CUSTOMER is a customer number, or part of a name. With level: parent, the parent and each
    of its locations are shown, since a location's services count for its parent; asked about
    a location, it also says whether the location follows its parent's value (write.locations).

    \b
    Example:
      keyservices explain COP001 -c config.yaml
      keyservices explain "Café Müller" -c config.yaml --json
    """
    from ..commands.explain import explain as run_explain
    from .console import print_explanation

    result = run_explain(load_config_at(config_path, one="explain"), customer, as_of=as_of.date() if as_of else None)
    if as_json:
        emit_json(result.to_dict())
    else:
        print_explanation(result)


@cli.command("test-rules")
@config_option
@click.option("--cases", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of case files; default rules/tests beside the rules.")
@one_company_option
@json_option
def test_rules_cmd(config_path: Path, cases: Path | None, as_json: bool) -> None:
    """Run your own rule tests: facts in, expected services out.

    Each case in rules/tests/*.yaml describes a customer (and its locations) and the services
    it must get. A failing case shows what was expected, what came out and why; exit 1.

    \b
    Example:
      keyservices test-rules -c config.yaml
    """
    from ..commands.explain import test_rules
    from ..errors import RuleTestsFailed

    results = test_rules(load_config_at(config_path, one="test-rules"), cases)
    failed = [r for r in results if not r.passed]
    rows = [{"file": str(r.file), "line": r.line, "name": r.name, "passed": r.passed,
             "expected": r.expected, "got": r.got} for r in results]
    if as_json and not failed:
        emit_json(rows)
    elif not as_json:
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
    if failed:  # under --json the handler prints the rows as "result" beside the error
        raise RuleTestsFailed(f"{len(failed)} rule test(s) failed", rows)


@cli.command("rules-schema")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the schema to this file instead of printing it.")
@json_option
def rules_schema_cmd(out: Path | None, as_json: bool) -> None:
    """Print the JSON Schema of a rule file, for editor autocompletion and checking.

    With the YAML language server (VS Code's YAML extension), put this first in a rule file:
    # yaml-language-server: $schema=keyservices-rules.schema.json

    The schema is JSON already; with --json and --out, stdout says where it went ({"out": ...}).

    \b
    Example:
      keyservices rules-schema --out rules/keyservices-rules.schema.json
    """
    from ..commands.explain import rules_schema

    text = json.dumps(rules_schema(), indent=2)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
        if as_json:
            emit_json({"out": str(out)})
        else:
            click.echo(str(out))
    else:
        click.echo(text)
