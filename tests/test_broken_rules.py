"""A corpus of broken rule files: each one is exit 2, names its file and line, no traceback,
and nothing is read from the ERP (the database URL does not even exist)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyservices.cli import cli

CORPUS = sorted((Path(__file__).parent / "broken_rules").glob("*.yaml"))


def test_the_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 15


@pytest.mark.parametrize("case", CORPUS, ids=[p.stem for p in CORPUS])
def test_broken_rule_file_is_exit_2_with_file_and_line(case: Path, tmp_path: Path) -> None:
    expected = re.match(r"# expect: (.*)", case.read_text(encoding="utf-8")).group(1)
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(case, rules / case.name)
    config = tmp_path / "config.yaml"
    config.write_text("erp: {url: 'sqlite:///no-such-erp.sqlite'}\n", encoding="utf-8")
    for command in (["check"], ["run", "--dry-run"]):
        result = CliRunner().invoke(cli, [*command, "-c", str(config)])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert re.search(re.escape(case.name) + r":\d+", result.output), result.output
        assert expected in result.output, result.output
