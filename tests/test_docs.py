"""Docs stay true: every command has help, the rule reference matches the models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from click.testing import CliRunner

from keyservices.cli import cli

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))


def test_rule_reference_in_docs_matches_the_models() -> None:
    import generate  # docs/generate.py

    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert generate.render(text) == text, "docs/rules.md is stale: run python docs/generate.py"


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
