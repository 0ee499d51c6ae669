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


def test_every_rule_problem_comes_out_in_one_run(tmp_path: Path) -> None:
    """Rule errors came out 2, then 3, on successive runs: a file that failed validation hid
    the other files' references (#27). A reference a broken file may answer is still held
    back (the service it names may be defined there)."""
    from keyservices.errors import RulesError
    from keyservices.resources import example_rules_dir
    from keyservices.rules import load_rules

    rules = tmp_path / "rules"
    shutil.copytree(example_rules_dir(), rules)
    services = rules / "services.yaml"  # a typo in one service's keys: the file fails
    services.write_text(services.read_text(encoding="utf-8").replace(
        "  - code: MIT\n", "  - code: MIT\n    colour: blue\n", 1), encoding="utf-8")
    priority = rules / "priority.yaml"  # and two wrong references in another file
    priority.write_text(priority.read_text(encoding="utf-8").replace(
        "monitors: [DM-LAPSING, MIT-LAPSING]", "monitors: [DM-LAPSING, NO-SUCH-MONITOR]"),
        encoding="utf-8")
    with pytest.raises(RulesError) as err:
        load_rules(rules)
    text = str(err.value)
    assert "services.yaml" in text and "colour" in text
    assert "unknown monitor 'NO-SUCH-MONITOR'" in text
    assert "unknown service 'MIT'" not in text  # MIT is defined in the broken file
