"""ERP strings on the terminal: Rich markup shown literally, control characters shown escaped.

A customer named "[link=https://evil.example]click[/link]" must not become a clickable link, one
named "[/red] ..." must not crash ``history``, and one holding ESC, BEL, CR or a C1 control must
not clear the screen, ring, overwrite the line or start an escape sequence: every command that
prints ERP data shows them as visible text ("\\x1b[2J").
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from keyservices.cli import cli
from keyservices.cli.base import KeyservicesGroup, setup_stderr_logging
from keyservices.cli.console import echo_data, terminal_text
from keyservices.errors import ConfigError

from .names_dealer import HOSTILE, LINK, NIGHT2, NIGHT3, POLISH, build, number_named

# any C0 control but the newline, DEL, any C1 control, and the bidi overrides/isolates
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
WIDE = {"COLUMNS": "400"}  # rich folds table cells at 80 columns; these tests read whole names


@pytest.fixture(scope="module")
def dealer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("names-dealer"))


def invoke(dealer: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(cli, [*args, "-c", str(dealer)], env={**WIDE, **(env or {})},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def printing_commands(dealer: Path) -> dict[str, list[str]]:
    return {
        "run --dry-run": ["run", "--dry-run", "--as-of", str(NIGHT3)],
        "explain": ["explain", number_named(dealer, "\x1b[2J"), "--as-of", str(NIGHT2)],
        "history": ["history"],
        "history --run": ["history", "--run", "1"],
        "history --customer": ["history", "--customer", number_named(dealer, "[/red]")],
        "status": ["status"],
        "opportunity list": ["opportunity", "list"],
        "check": ["check"],
        "digest --text": ["digest", "--text"],
    }


def test_every_command_printing_erp_data_shows_control_characters_escaped(dealer: Path) -> None:
    for name, args in printing_commands(dealer).items():
        out = invoke(dealer, *args)
        found = RAW_CONTROL.search(out)
        assert found is None, f"{name}: raw {found.group()!r} in {out[max(found.start() - 80, 0):found.end() + 40]!r}"


def test_explain_shows_an_escape_sequence_as_text(dealer: Path) -> None:
    out = invoke(dealer, "explain", number_named(dealer, "\x1b[2J"), "--as-of", str(NIGHT2))
    assert "\\x1b[2J\\x1b[HCleared" in out


def test_history_shows_markup_in_names_literally_instead_of_crashing(dealer: Path) -> None:
    out = invoke(dealer, "history", "--run", "1")
    assert "[/red] closing tag" in out
    assert LINK in out


@pytest.mark.parametrize("args", [["history", "--run", "1"],
                                  ["run", "--dry-run", "--as-of", str(NIGHT3)],
                                  ["opportunity", "list"]])
def test_a_link_in_a_name_never_becomes_a_terminal_hyperlink(dealer: Path,
                                                             args: list[str]) -> None:
    out = invoke(dealer, *args, env={"FORCE_COLOR": "1", "TERM": "xterm-256color"})
    assert "\x1b]8;" not in out  # OSC 8: the escape of a clickable link
    assert "\x1b[2J" not in out and "\x07" not in out


def test_the_plan_table_shows_names_literally(dealer: Path) -> None:
    out = invoke(dealer, "run", "--dry-run", "--as-of", str(NIGHT3))
    assert POLISH in out and LINK in out and "[/red] closing tag" in out
    assert "Bell\\x07 and\\rCR" in out


def test_terminal_text_escapes_controls_and_keeps_letters() -> None:
    assert terminal_text(POLISH) == POLISH
    assert terminal_text("\x1b[2J\x07a\rb\nc\td\x9b\x7f\u202e") == \
        "\\x1b[2J\\x07a\\rb\\nc\\td\\x9b\\x7f\\u202e"
    assert terminal_text("one\ntwo", keep_newlines=True) == "one\ntwo"
    assert terminal_text(None) == ""
    assert terminal_text(12) == "12"
    for name in HOSTILE:
        assert RAW_CONTROL.search(terminal_text(name)) is None


def test_csv_on_stdout_is_escaped_on_a_terminal_and_left_alone_in_a_pipe(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    text = "number,name\r\nC1,\x1b[2JCleared\r\n"
    echo_data(text)
    assert capsys.readouterr().out == text  # redirected: the data, byte for byte
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    echo_data(text)
    assert capsys.readouterr().out == "number,name\r\nC1,\\x1b[2JCleared\r\n"


def test_log_lines_on_stderr_show_controls_escaped() -> None:
    stream = io.StringIO()
    setup_stderr_logging(logging.WARNING, stream=stream)
    try:
        logging.getLogger("keyservices.test").warning("customer %s", "\x1b[2JCleared")
    finally:
        setup_stderr_logging(logging.WARNING)
    assert stream.getvalue() == "WARNING customer \\x1b[2JCleared\n"


def test_an_error_message_with_erp_data_is_escaped() -> None:
    @click.group(cls=KeyservicesGroup)
    def group() -> None:
        pass

    @group.command()
    def boom() -> None:
        raise ConfigError("customer \x1b[2JCleared: bad\n  second line")

    result = CliRunner().invoke(group, ["boom"])
    assert result.exit_code == 2
    assert "Error: customer \\x1b[2JCleared: bad\n  second line" in result.output

