"""Every command that prints ERP data, in a subprocess whose stdout is a Windows code page.

Under Task Scheduler (or any redirected output on Windows) Python writes stdout in the ANSI code
page, cp1252, and a console window may be cp437. A customer named "Łódź Print 😀" must come out
with '?' for what the code page lacks, never as "unexpected UnicodeEncodeError" (exit 1). Files
(CSV, .eml, HTML, logs) stay UTF-8 whatever the console. Run these alone with
``pytest -m console_encoding``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keyservices.commands.logs import current_log_file

from .names_dealer import NIGHT2, NIGHT3, POLISH, build, first_number

pytestmark = pytest.mark.console_encoding

SHOWN = "?ód? Print ?"  # "Łódź Print 😀" in cp1252 and cp437, errors="replace" (ó is in both)


@pytest.fixture(scope="module")
def dealer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("names-dealer"))


def keyservices(config: Path, encoding: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    env.pop("PYTHONUTF8", None)
    return subprocess.run([sys.executable, "-m", "keyservices", *args, "-c", str(config)],
                          capture_output=True, env=env, cwd=config.parent, timeout=120,
                          check=False)


def commands(dealer: Path, out: Path) -> dict[str, list[str]]:
    number = first_number(dealer)
    return {
        "run --dry-run": ["run", "--dry-run", "--as-of", str(NIGHT3)],
        "explain": ["explain", number, "--as-of", str(NIGHT2)],
        "history": ["history"],
        "history --run": ["history", "--run", "1"],
        "history --customer": ["history", "--customer", number],
        "status": ["status"],
        "opportunity list": ["opportunity", "list"],
        "report": ["report", "--as-of", str(NIGHT2), "--out", str(out / "report")],
        "check": ["check"],
        "export opportunities": ["export", "opportunities", "--as-of", str(NIGHT2)],
        "export alerts": ["export", "alerts", "--as-of", str(NIGHT2)],
        "digest --text": ["digest", "--text"],
        "config show": ["config", "show"],
    }


@pytest.mark.parametrize("encoding", ["cp1252", "cp437"])
def test_every_command_printing_erp_data_works_under_a_windows_code_page(
        dealer: Path, tmp_path: Path, encoding: str) -> None:
    failures = []
    outputs = {}
    for name, args in commands(dealer, tmp_path).items():
        done = keyservices(dealer, encoding, *args)
        # a redirected export is the bytes --out writes (UTF-8), whatever the code page (#27)
        stdout = done.stdout.decode("utf-8-sig" if name.startswith("export") else encoding)
        stderr = done.stderr.decode(encoding, errors="replace")
        outputs[name] = stdout
        if done.returncode != 0 or "Error" in stderr or "Traceback" in stderr:
            failures.append(f"{name}: exit {done.returncode}: {stderr.strip()[-300:]}")
    assert not failures, "\n".join(failures)
    for name in ("explain", "history --customer"):
        assert SHOWN in outputs[name], name
    assert SHOWN in outputs["run --dry-run"]  # the plan table (rich) as well as click.echo


@pytest.mark.parametrize("encoding", ["cp1252", "cp437"])
def test_files_stay_utf8_whatever_the_console(dealer: Path, tmp_path: Path,
                                              encoding: str) -> None:
    out = tmp_path / "alerts.csv"
    done = keyservices(dealer, encoding, "export", "alerts", "--as-of", str(NIGHT2),
                       "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert POLISH in out.read_text(encoding="utf-8-sig")
    # a live night dated after the dealer's nights (today's date may come before them)
    done = keyservices(dealer, encoding, "run", "--as-of", str(NIGHT3), "--no-email",
                       "--force")
    assert done.returncode == 0, done.stderr
    eml = max((dealer.parent / "outbox").glob("*.eml")).read_bytes()
    assert b"charset=\"utf-8\"" in eml or b"charset=utf-8" in eml
    assert current_log_file(dealer.parent / ".keyservices").read_text(encoding="utf-8")


def test_progress_bars_work_on_a_cp437_terminal() -> None:
    """A real console (stderr a terminal) in cp437: the bars render and nothing raises."""
    code = (
        "import io, sys\n"
        "from rich.console import Console\n"
        "from keyservices.cli import console, terminal\n"
        "raw = io.BytesIO()\n"
        "sys.stderr = io.TextIOWrapper(raw, encoding='cp437', errors='strict')\n"
        "terminal.configure_streams()\n"
        "r = console.RichReporter(Console(file=sys.stderr, force_terminal=True))\n"
        "r.begin('Łódź Print 😀 reading', 3)\n"
        "r.advance(3)\n"
        "r.end('x', 3, 0.1)\n"
        "r.close()\n"
        "sys.stderr.flush()\n"
        "sys.__stdout__.write(repr(raw.getvalue()[-400:]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"3/3" in done.stdout and b"?\\xa2d? Print" in done.stdout  # \xa2 is cp437's o-acute
