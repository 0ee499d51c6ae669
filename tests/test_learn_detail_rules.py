"""Rules the database cannot add up (a transaction-type glob with a character class: the night
reads the per-code detail instead) with calls ranked by learned rates: the learning, which needs
the numbers, is skipped with a warning and the night goes on with the rates it has; the
backtest command says why it cannot run (exit 2). Before: the night crashed with NotCompilable
while learning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import keyservices
from keyservices.commands.backtest import backtest
from keyservices.demodb import build_demo_db
from keyservices.errors import ConfigError

from .conftest import AS_OF, write_config


@pytest.fixture
def detail_config(tmp_path: Path) -> Path:
    build_demo_db(tmp_path / "erp.sqlite", customers=200, as_of=AS_OF)
    path = write_config(tmp_path, "sqlite:///erp.sqlite")
    services = tmp_path / "rules" / "services.yaml"
    text = services.read_text(encoding="utf-8")
    old = '      accounts: ["4300*"]\n'
    assert old in text
    services.write_text(text.replace(old, old + '      transaction_types: ["[sS]ervice*"]\n'),
                        encoding="utf-8")
    return path


def test_a_night_with_detail_rules_skips_the_learning_and_goes_on(
        detail_config: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = keyservices.load_config(detail_config)
    with caplog.at_level(logging.WARNING, logger="keyservices"):
        result = keyservices.run(config, as_of=AS_OF, dry_run=True)
    assert result.exit_code == 0 and result.counts.classified > 0
    assert result.opportunities  # ranked with what it has (no learned rates)
    assert any("character class" in r.getMessage() and "win rates" in r.getMessage()
               for r in caplog.records)


def test_the_backtest_says_why_it_cannot_run(detail_config: Path) -> None:
    config = keyservices.load_config(detail_config)
    with pytest.raises(ConfigError, match="character class") as caught:
        backtest(config, as_of=AS_OF)
    assert caught.value.exit_code == 2
