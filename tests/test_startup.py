"""The fixed costs of a command outside its work: what it imports, and how it ends.

Light commands (``--help``, ``--version``, ``config show``) must not import numpy, jinja2 or
rich; a command run as the program ends with ``os._exit`` once its output and logs are written
(freeing a million customers' objects at exit only takes time), but only as the program, and
never at the cost of an output line, a log line or the exit code.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from keyservices.commands.logs import current_log_file
from keyservices.resources import example_rules_dir

AS_OF = dt.date(2026, 11, 25)
HEAVY = {"numpy", "jinja2", "rich"}


def keyservices(*args: str, cwd: Path | None = None,
                python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``python -m keyservices ARGS`` in a subprocess: the real entry point, its exit path."""
    return subprocess.run([sys.executable, *python_flags, "-m", "keyservices", *args],
                          capture_output=True, text=True, encoding="utf-8", cwd=cwd,
                          timeout=120, check=False)


def imported_packages(importtime_stderr: str) -> set[str]:
    """The top-level packages in ``-X importtime`` output ("import time: self | total | name")."""
    return {line.rsplit("|", 1)[1].strip().split(".")[0]
            for line in importtime_stderr.splitlines() if line.startswith("import time:")
            and "|" in line}


@pytest.fixture(scope="module")
def offline_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid config whose ERP does not exist: enough for ``config show``, and a run fails."""
    site = tmp_path_factory.mktemp("offline")
    config = site / "config.yaml"
    config.write_text(f"erp: {{url: 'sqlite:///missing.sqlite'}}\n"
                      f"rules: '{example_rules_dir().as_posix()}'\n"
                      "state: {dir: state}\ndigest: {outbox: outbox}\n", encoding="utf-8")
    return config


@pytest.fixture(scope="module")
def dealer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo dealer after two nights; its config."""
    from keyservices import demo

    return Path(demo(tmp_path_factory.mktemp("dealer"), customers=200, as_of=AS_OF).config)


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["run", "--help"],
                                  ["secret", "--help"], ["opportunity", "--help"],
                                  ["export", "opportunities", "--help"]],
                         ids=lambda a: " ".join(a))
def test_help_and_version_import_no_numpy_jinja2_or_rich(args: list[str]) -> None:
    done = keyservices(*args, python_flags=("-X", "importtime"))
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = imported_packages(done.stderr)
    assert "click" in loaded  # the import log was read
    assert not loaded & (HEAVY | {"sqlalchemy", "pydantic"}), sorted(loaded & HEAVY)


def test_config_show_imports_no_numpy_jinja2_or_rich(offline_config: Path) -> None:
    done = keyservices("config", "show", "-c", str(offline_config),
                       python_flags=("-X", "importtime"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert not imported_packages(done.stderr) & HEAVY


def test_the_console_module_imports_rich_only_to_draw() -> None:
    code = ("import sys, keyservices.cli, keyservices.cli.console as c\n"
            "with c.reporter(enabled=True) as r:\n"  # stderr is a pipe: no bars
            "    pass\n"
            "print(sorted(m for m in ('rich', 'numpy', 'jinja2') if m in sys.modules))\n"
            "c.RichReporter\n"  # still reachable where it was
            "print('rich' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "True"]


def test_the_cli_lists_the_life_cycle_statuses() -> None:
    """The CLI spells the statuses out (importing them loads numpy); they must not drift."""
    from keyservices.calls.lifecycle import STATUSES
    from keyservices.cli.opportunity import STATUSES as CLI_STATUSES

    assert CLI_STATUSES == STATUSES


# -- ending the process --------------------------------------------------------------------------
def test_a_run_as_the_program_keeps_its_last_line_log_lines_and_exit_code(dealer: Path) -> None:
    done = keyservices("run", "-c", str(dealer), "--dry-run", "--as-of", str(AS_OF))
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip("\n").splitlines()[-1].startswith("Next: review the plan")
    log = current_log_file(dealer.parent / ".keyservices").read_text(encoding="utf-8")
    assert log.endswith("\n") and "causes and risks: " in log.splitlines()[-1]


def test_a_long_output_through_a_pipe_arrives_whole(dealer: Path) -> None:
    done = keyservices("run", "-c", str(dealer), "--dry-run", "--as-of", str(AS_OF), "--json")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) > 10_000
    assert json.loads(done.stdout)["dry_run"] is True


def test_a_failure_as_the_program_keeps_its_message_log_line_and_exit_code(
        offline_config: Path) -> None:
    done = keyservices("run", "-c", str(offline_config), "--dry-run")
    assert done.returncode == 1
    assert done.stderr.rstrip("\n").splitlines()[-1].startswith(
        "Error: the ERP database file does not exist")
    log = current_log_file(offline_config.parent / "state").read_text(encoding="utf-8")
    assert "ERROR" in log and "does not exist" in log.splitlines()[-1]


def test_a_usage_error_as_the_program_exits_2() -> None:
    done = keyservices("no-such-command")
    assert done.returncode == 2
    assert "No such command" in done.stderr


def test_the_program_skips_freeing_its_objects_and_runs_exit_handlers() -> None:
    """As ``__main__`` (like the console script), a global's ``__del__`` never runs (no
    teardown), while exit handlers still do; the exit code is click's."""
    code = ("import atexit, sys\n"
            "class Canary:\n"
            "    def __del__(self):\n"
            "        sys.__stderr__.write('freed at teardown\\n')\n"
            "canary = Canary()\n"
            "atexit.register(lambda: sys.__stderr__.write('exit handler ran\\n'))\n"
            "sys.argv = ['keyservices', '--version']\n"
            "from keyservices.cli import main\n"
            "main()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "keyservices, version 0.1.0"
    assert "exit handler ran" in done.stderr
    assert "freed at teardown" not in done.stderr
    normal = subprocess.run([sys.executable, "-X", "dev", "-c", code], capture_output=True,
                            text=True, timeout=60, check=False)  # -X dev: the normal shutdown
    assert normal.returncode == 0 and "freed at teardown" in normal.stderr


def test_main_called_in_process_exits_the_normal_way(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Called from other code (here pytest), ``main`` raises SystemExit as before: the process
    is not ended and nothing is held for a fast exit."""
    from keyservices.cli import exiting, main

    monkeypatch.setattr(sys, "argv", ["keyservices", "--version"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 0 and "version" in capsys.readouterr().out
    assert not exiting.armed()


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (3, 3), ("bye", 1)])
def test_exit_status_is_pythons(code: object, status: int) -> None:
    from keyservices.cli.exiting import exit_status

    assert exit_status(code) == status
