"""Docs stay true: every command has help, the rule reference matches the models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from click.testing import CliRunner

from keyservices.cli import cli

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))


def test_generated_docs_are_current() -> None:
    """The rule reference, the commented config and the CLI reference match the code."""
    import generate  # docs/generate.py

    for name in generate.GENERATED:
        text = (ROOT / "docs" / name).read_text(encoding="utf-8")
        assert generate.render(name, text) == text, \
            f"docs/{name} is stale: run python docs/generate.py"


def test_every_command_is_in_the_cli_reference() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for name, command in cli.commands.items():
        assert f"## `keyservices {name}`" in text, name
        for sub in getattr(command, "commands", {}):
            assert f"## `keyservices {name} {sub}`" in text, f"{name} {sub}"


def test_docs_pages_exist_and_are_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in ("installation", "configuration", "rules", "cli", "eautomate-setup",
                 "troubleshooting"):
        assert (ROOT / "docs" / f"{page}.md").exists(), page
        assert f"docs/{page}.md" in readme, page


def test_every_command_is_mentioned_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in cli.commands if f"keyservices {name}" not in readme]
    assert not missing, f"README does not mention: {missing}"


def test_rules_schema_is_valid_json_with_every_section() -> None:
    result = CliRunner().invoke(cli, ["rules-schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "keyservices rule file"
    assert {"EquipmentSection", "ItemsSoldSection", "ContractsSection", "GlSection", "Exclude",
            "Service"} <= set(schema["$defs"])
    assert schema["$defs"]["Service"]["additionalProperties"] is False


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Run the tests", 1)[1].split("```console\n", 1)[1]
    command = section.split("\n```", 1)[0].strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert command in ci.splitlines()[-1], (command, ci)
