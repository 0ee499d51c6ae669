"""Regenerate the generated parts of docs/: the rule reference (docs/rules.md), the commented
configuration (docs/configuration.md) and the command reference (docs/cli.md).

Usage: python docs/generate.py          (tests/test_docs.py fails when this is needed)
"""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

from keyservices.cli import cli
from keyservices.commands.setup import CONFIG_TEMPLATE
from keyservices.rules import reference_markdown

DOCS = Path(__file__).resolve().parent
END = "<!-- END GENERATED -->"


def _between(text: str, name: str, body: str) -> str:
    begin = f"<!-- BEGIN GENERATED: {name} (python docs/generate.py) -->"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(END)
    return f"{head}{begin}\n\n{body}\n{END}{tail}"


def cli_reference() -> str:
    runner = CliRunner()
    parts = []

    def walk(path: list[str], command) -> None:
        result = runner.invoke(cli, [*path, "--help"], prog_name="keyservices",
                               terminal_width=100)
        parts.append(f"## `{' '.join(['keyservices', *path])}`\n")
        parts.append(f"```text\n{result.output.rstrip()}\n```\n")
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk([*path, name], sub)

    walk([], cli)
    return "\n".join(parts)


def render(name: str, text: str) -> str:
    if name == "rules.md":
        return _between(text, "rule reference", reference_markdown())
    if name == "configuration.md":
        return _between(text, "configuration", f"```yaml\n{CONFIG_TEMPLATE.rstrip()}\n```\n")
    if name == "cli.md":
        return _between(text, "command reference", cli_reference())
    return text


GENERATED = ("rules.md", "configuration.md", "cli.md")

if __name__ == "__main__":
    for name in GENERATED:
        path = DOCS / name
        path.write_text(render(name, path.read_text(encoding="utf-8")), encoding="utf-8")
        print(path)
    sys.exit(0)
