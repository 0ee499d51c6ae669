"""Output that fits the console and the scripts (issue #27).

CSV on a redirected stdout is the bytes ``--out`` writes, whatever the console's code page;
dates and ids in tables stay whole on an 80-column console; the demo's next steps run as
printed after the README's one-liner; and the change guard's message is printed once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyservices.calls.lifecycle import OpportunityRecord
from keyservices.cli import cli
from keyservices.cli.opportunity import print_table
from keyservices.cli.program import invoked_as

from .names_dealer import NIGHT2, NIGHT3, POLISH, build


@pytest.fixture(scope="module")
def dealer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("names-dealer"))


# -- CSV on stdout: UTF-8, as --out writes it ----------------------------------------------------
def keyservices_cp1252(config: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The CLI in a subprocess whose stdout is a pipe in cp1252, as under Task Scheduler."""
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    env.pop("PYTHONUTF8", None)
    return subprocess.run([sys.executable, "-m", "keyservices", *args, "-c", str(config)],
                          capture_output=True, env=env, cwd=config.parent, timeout=120,
                          check=False)


@pytest.mark.console_encoding
@pytest.mark.parametrize("what", ["opportunities", "alerts"])
def test_csv_on_a_redirected_stdout_is_utf8_like_out_whatever_the_code_page(
        dealer: Path, tmp_path: Path, what: str) -> None:
    out = tmp_path / f"{what}.csv"
    to_file = keyservices_cp1252(dealer, "export", what, "--as-of", str(NIGHT2), "--out",
                                 str(out))
    assert to_file.returncode == 0, to_file.stderr
    piped = keyservices_cp1252(dealer, "export", what, "--as-of", str(NIGHT2))
    assert piped.returncode == 0, piped.stderr
    assert POLISH in piped.stdout.decode("utf-8-sig")  # not "?ód? Print ?"
    assert piped.stdout == out.read_bytes()  # BOM, CRLF rows and all


# -- dates and ids stay whole at 80 columns ------------------------------------------------------
def narrow(dealer: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "-c", str(dealer)], env={"COLUMNS": "80"},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def as_json(dealer: Path, *args: str) -> dict:
    return json.loads(CliRunner().invoke(cli, [*args, "-c", str(dealer), "--json"]).stdout)


def minutes(value: str) -> str:
    return f"{dt.datetime.fromisoformat(value):%Y-%m-%d %H:%M}"


def test_history_keeps_dates_and_ids_whole_at_80_columns(dealer: Path) -> None:
    runs = as_json(dealer, "history")["runs"]
    shown = narrow(dealer, "history")
    for run in runs:
        assert minutes(run["started_at"]) in shown, shown
        assert str(run["as_of"]) in shown, shown
    for run_id in ("1", "2"):
        changes = as_json(dealer, "history", "--run", run_id)["changes"]
        shown = narrow(dealer, "history", "--run", run_id)
        assert changes
        for change in changes:
            assert minutes(change["at"]) in shown, shown
            assert change["customer_number"] in shown, shown


def test_status_keeps_dates_whole_at_80_columns(dealer: Path) -> None:
    shown = narrow(dealer, "status")
    for run in as_json(dealer, "status")["runs"]:
        assert minutes(run["started_at"]) in shown, shown


def test_the_plan_keeps_customer_numbers_whole_at_80_columns(dealer: Path) -> None:
    plan = as_json(dealer, "run", "--dry-run", "--as-of", str(NIGHT3))["changes"]
    shown = narrow(dealer, "run", "--dry-run", "--as-of", str(NIGHT3))
    assert plan
    for change in plan[:30]:
        assert change["number"] in shown, shown


def test_the_opportunity_list_fits_an_80_column_terminal(
        capsys: pytest.CaptureFixture[str]) -> None:
    today = dt.date(2026, 11, 25)
    until = today + dt.timedelta(days=30)
    records = [OpportunityRecord(
        customer_id=i, service_code="MIT", customer_number=f"C{i:05d}",
        customer_name="Łódź Print 😀 and a very long customer name indeed", branch="Main",
        owner="Zoë Lambert-Featherstonehaugh of Accounts", status="open", priority="Critical",
        score=80.0, reason="typical", first_seen=today, last_seen=today,
        snoozed_until=until, snooze_reason="tender", dismissed=bool(i % 2))
        for i in range(3)]
    print_table(records, today, width=80)
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80, lines
    for i, line in enumerate(lines[1:4]):
        assert f"C{i:05d}" in line and f"{until} (" in line
    print_table(records, today)  # a file or a pipe: the rows as long as they are
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) > 80


# -- the demo's next steps run as printed ---------------------------------------------------------
def test_the_program_is_named_so_that_it_runs_as_printed(tmp_path: Path) -> None:
    script = tmp_path / "bin" / "keyservices"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    other = tmp_path / "other"
    other.write_text("", encoding="utf-8")
    assert invoked_as(str(script), which=lambda _: str(script)) == "keyservices"
    assert invoked_as(".venv/bin/keyservices", which=lambda _: None) == ".venv/bin/keyservices"
    assert invoked_as(str(script), which=lambda _: str(other)) == str(script)  # another install
    spaced = "/opt/key services/bin/keyservices"
    assert invoked_as(spaced, which=lambda _: None) == f'"{spaced}"'
    python = str(tmp_path / "bin" / "python")
    assert invoked_as("/x/keyservices/__main__.py", which=lambda _: None,
                      executable=python) == f"{python} -m keyservices"
    assert invoked_as("/x/keyservices/__main__.py", which=lambda _: str(script),
                      executable=python) == "keyservices"


def test_the_demo_next_steps_run_as_printed_after_the_readme_one_liner(tmp_path: Path) -> None:
    """``.venv/bin/keyservices demo`` with no keyservices on PATH: each "Next:" command runs."""
    bin_dir = Path(sys.executable).parent
    script = bin_dir / ("keyservices.exe" if os.name == "nt" else "keyservices")
    if not script.exists():
        pytest.skip("the console script is not installed beside this interpreter")
    home = bin_dir.parent.parent  # the folder the README's one-liner runs in
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if p and not (Path(p) / script.name).exists())
    env = {**os.environ, "PATH": path}
    typed = os.path.relpath(script, home)  # as typed: .venv/bin/keyservices
    shown = subprocess.run([typed, "demo", "--dir", str(tmp_path / "demo"), "--customers", "60"],
                           capture_output=True, text=True, env=env, cwd=home, timeout=300,
                           check=False)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("Next:"))
    steps = [line.removeprefix("Next:").strip() for line in lines[first:] if line.strip()]
    assert len(steps) == 2 and all(s.startswith(typed) for s in steps), shown.stdout
    for step in steps:
        done = subprocess.run(step, shell=True, capture_output=True, text=True, env=env,
                              cwd=home, timeout=300, check=False)
        assert done.returncode == 0, f"{step}: {done.returncode} {done.stderr}"


# -- the change guard's message, once -------------------------------------------------------------
def test_a_guarded_run_prints_the_guard_message_once(guarded: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "-c", str(guarded)])
    assert result.exit_code == 3, result.output
    assert len(re.findall("Change guard:", result.output)) == 1, result.output
    assert "Error: Change guard: 3 changes exceed write.max_changes = 1" in result.stderr
    assert "change guard: nothing written" in result.stdout  # the summary still says so
