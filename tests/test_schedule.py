"""keyservices schedule: a Windows task as a named service account whose output lands in the state
folder, quoted so that cmd.exe, schtasks and the task's own cmd.exe all read the same paths."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from click.testing import CliRunner

from keyservices.cli import cli
from keyservices.commands.setup import cmd_line, schtasks_argv, windows_task
from keyservices.config import load_config

EXE = r"C:\Program Files\Key Services\Scripts\keyservices.exe"
CONFIG = r"C:\Key Services (prod)\config.yaml"
LOG = r"C:\Key Services (prod)\.keyservices\task.log"


# -- how Windows reads a command line (the three readers the printed line passes through) -------
def interactive_cmd(line: str) -> str:
    """What cmd.exe hands to a program typed at the prompt: outside double quotes a ^ escapes the
    next character and an unescaped redirection or & would be cmd's own; inside, all is text."""
    out, quoted, i = [], False, 0
    while i < len(line):
        ch = line[i]
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "^":
            i += 1
            ch = line[i]
        elif not quoted and ch in "&|<>":
            raise AssertionError(f"cmd.exe would act on {ch!r} at {i}: {line}")
        out.append(ch)
        i += 1
    return "".join(out)


def windows_argv(line: str) -> list[str]:
    """The Microsoft C runtime's rules (CommandLineToArgvW): 2n backslashes before a quote are n
    and the quote toggles; 2n+1 are n and a literal quote; other backslashes are literal."""
    args: list[str] = []
    current: list[str] = []
    quoted = started = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            n = len(line[i:]) - len(line[i:].lstrip("\\"))
            if i + n < len(line) and line[i + n] == '"':
                current.append("\\" * (n // 2))
                if n % 2:
                    current.append('"')
                    i += n + 1
                else:
                    i += n
                started = True
                continue
            current.append("\\" * n)
            i += n
            started = True
            continue
        if ch == '"':
            quoted = not quoted
            started = True
        elif ch in " \t" and not quoted:
            if started:
                args.append("".join(current))
            current, started = [], False
        else:
            current.append(ch)
            started = True
        i += 1
    if started:
        args.append("".join(current))
    return args


def cmd_s_c(task: str) -> tuple[list[str], str]:
    """What the task's own ``cmd /s /c "..."`` runs: the outer quotes stripped, then the program's
    arguments and the file its output is appended to (2>&1 after it)."""
    prefix = 'cmd /s /c "'
    assert task.startswith(prefix) and task.endswith('"'), task
    body = task[len(prefix):-1]
    quoted, cut = False, None
    for i, ch in enumerate(body):
        if ch == '"':
            quoted = not quoted
        elif not quoted and body.startswith(">>", i):
            cut = i
            break
        elif not quoted and ch in "&|<>()%":
            raise AssertionError(f"the task's cmd.exe would act on {ch!r}: {body}")
    assert cut is not None, body
    command, redirect = body[:cut].rstrip(), body[cut + 2:].strip()
    assert redirect.endswith(" 2>&1"), redirect
    (log,) = windows_argv(redirect[: -len(" 2>&1")])
    return windows_argv(command), log


def test_windows_task_quoting_is_exact_with_spaces_and_parentheses() -> None:
    task = windows_task([EXE], CONFIG, LOG)
    assert task == ('cmd /s /c ""C:\\Program Files\\Key Services\\Scripts\\keyservices.exe" -q '
                    'run -c "C:\\Key Services (prod)\\config.yaml" >> '
                    '"C:\\Key Services (prod)\\.keyservices\\task.log" 2>&1"')
    line = cmd_line(schtasks_argv(task, account=r"CONTOSO\svc-keyservices", at="02:30"))
    assert line == (
        'schtasks /Create /TN "keyservices nightly" /TR "cmd /s /c \\"\\"C:\\Program Files\\'
        'Key Services\\Scripts\\keyservices.exe\\" -q run -c \\"C:\\Key Services (prod)\\'
        'config.yaml\\" ^>^> \\"C:\\Key Services (prod)\\.keyservices\\task.log\\" 2^>^&1\\""'
        ' /SC DAILY /ST 02:30 /RU CONTOSO\\svc-keyservices /RP * /F')
    argv = windows_argv(interactive_cmd(line))
    assert argv == ["schtasks", "/Create", "/TN", "keyservices nightly", "/TR", task, "/SC",
                    "DAILY", "/ST", "02:30", "/RU", r"CONTOSO\svc-keyservices", "/RP", "*", "/F"]
    program, log = cmd_s_c(argv[5])
    assert program == [EXE, "-q", "run", "-c", CONFIG] and log == LOG


def test_paths_with_ampersands_and_no_spaces_are_quoted_for_cmd() -> None:
    task = windows_task([r"C:\R&D\keyservices.exe"], r"C:\R&D\config.yaml", r"C:\R&D\task.log")
    program, log = cmd_s_c(task)
    assert program == [r"C:\R&D\keyservices.exe", "-q", "run", "-c", r"C:\R&D\config.yaml"]
    assert log == r"C:\R&D\task.log"
    argv = windows_argv(interactive_cmd(cmd_line(schtasks_argv(task, account="A\\b", at="01:00"))))
    assert argv[5] == task


def test_plain_paths_stay_readable() -> None:
    task = windows_task([r"C:\ks\keyservices.exe"], r"C:\ks\config.yaml", r"C:\ks\task.log")
    assert task == r'cmd /s /c "C:\ks\keyservices.exe -q run -c C:\ks\config.yaml >> ' \
                   r'C:\ks\task.log 2>&1"'
    assert cmd_s_c(task) == ([r"C:\ks\keyservices.exe", "-q", "run", "-c", r"C:\ks\config.yaml"],
                             r"C:\ks\task.log")


def test_schedule_runs_as_a_named_account_and_logs_to_the_state_folder(
        tmp_path: Path, runner: CliRunner) -> None:
    folder = tmp_path / "Key Services"
    folder.mkdir()
    path = folder / "config.yaml"
    path.write_text("erp: {url: 'sqlite:///erp.sqlite'}\n", encoding="utf-8")
    result = runner.invoke(cli, ["schedule", "-c", str(path), "--at", "03:15", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    state = load_config(path).state.dir
    assert plan["task_log"] == str(state / "task.log") and state.is_dir()
    argv = windows_argv(interactive_cmd(plan["schtasks"]))
    assert argv == plan["schtasks_argv"]
    assert argv[argv.index("/RU") + 1] == "DOMAIN\\svc-keyservices"
    assert argv[argv.index("/RP") + 1] == "*" and "SYSTEM" not in argv
    assert argv[argv.index("/ST") + 1] == "03:15"
    program, log = cmd_s_c(argv[argv.index("/TR") + 1])
    assert program[-4:] == ["-q", "run", "-c", str(path)] and log == str(state / "task.log")
    runas = windows_argv(interactive_cmd(plan["runas"]))
    assert runas[:2] == ["runas", "/user:DOMAIN\\svc-keyservices"]
    assert windows_argv(runas[2])[-4:] == ["secret", "set", "erp", "-c", str(path)][-4:]
    cron = plan["cron"]
    assert cron.startswith("15 3 * * * ")
    words = shlex.split(cron[len("15 3 * * * "):])
    assert words[-7:] == ["-q", "run", "-c", str(path), ">>", str(state / "task.log"), "2>&1"]
    assert "OnCalendar=*-*-* 03:15:00" in plan["systemd_timer"]
    assert f'"{path}"' in plan["systemd_service"] and "User=root" not in plan["systemd_service"]


def test_schedule_takes_the_account_and_prints_every_system(tmp_path: Path,
                                                            runner: CliRunner) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("erp: {url: 'sqlite:///erp.sqlite'}\n", encoding="utf-8")
    result = runner.invoke(cli, ["schedule", "-c", str(path), "--account", "CONTOSO\\svc-ks"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "/RU CONTOSO\\svc-ks /RP *" in out and "runas /user:CONTOSO\\svc-ks" in out
    assert "task.log" in out and "crontab -e" in out and "keyservices.timer" in out
    bad = runner.invoke(cli, ["schedule", "-c", str(path), "--account", 'a"b'])
    assert bad.exit_code == 2 and "--account" in bad.output
