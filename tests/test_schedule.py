"""keyservices schedule: a Windows task as a named service account, written as a Task Scheduler
file (schtasks refuses a /TR over 261 characters), and the lines to paste into cmd.exe quoted so
that cmd.exe, schtasks, runas and the window's own cmd.exe all read the same paths."""

from __future__ import annotations

import codecs
import datetime as dt
import json
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from keyservices.cli import cli
from keyservices.commands.setup import TASK_XML, cmd_line, runas_line, schtasks_argv, task_xml
from keyservices.config import load_config

EXE = r"C:\Program Files\Key Services\Scripts\keyservices.exe"
CONFIG = r"C:\Key Services (prod)\config.yaml"
NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}


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


def cmd_s_k(program: str) -> list[str]:
    """What ``cmd /s /k "..."`` (the window runas opens) runs: /s strips exactly the first and
    the last quote, then cmd.exe must find no operator of its own outside the inner quotes."""
    prefix = 'cmd /s /k "'
    assert program.startswith(prefix) and program.endswith('"'), program
    body = program[len(prefix):-1]
    quoted = False
    for ch in body:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "&|<>()^%":
            raise AssertionError(f"the window's cmd.exe would act on {ch!r}: {body}")
    return windows_argv(body)


def parse_task(data: bytes) -> ET.Element:
    """The task file as schtasks /XML reads it: UTF-16 LE with its byte order mark, declared so."""
    assert data.startswith(codecs.BOM_UTF16_LE), data[:4]
    text = data[len(codecs.BOM_UTF16_LE):].decode("utf-16-le")
    assert text.startswith('<?xml version="1.0" encoding="UTF-16"?>'), text[:60]
    return ET.fromstring(data)  # expat reads the BOM and the declaration itself


def field(task: ET.Element, path: str) -> str:
    found = task.find("/".join(f"t:{step}" for step in path.split("/")), NS)
    assert found is not None, path
    return found.text or ""


def test_the_task_file_is_well_formed_and_carries_account_folder_command_and_arguments() -> None:
    data = task_xml([EXE], CONFIG, account=r"CONTOSO\svc-keyservices", at="02:30",
                    working_dir=r"C:\Key Services (prod)", start=dt.date(2026, 11, 24))
    task = parse_task(data)
    assert task.tag == f"{{{NS['t']}}}Task" and task.get("version") == "1.2"
    assert field(task, "Principals/Principal/UserId") == r"CONTOSO\svc-keyservices"
    assert field(task, "Principals/Principal/LogonType") == "Password"
    assert field(task, "Principals/Principal/RunLevel") == "LeastPrivilege"
    assert windows_argv(field(task, "Actions/Exec/Command")) == [EXE]
    assert windows_argv(field(task, "Actions/Exec/Arguments")) == ["-q", "run", "-c", CONFIG]
    assert field(task, "Actions/Exec/WorkingDirectory") == r"C:\Key Services (prod)"  # unquoted
    assert field(task, "Triggers/CalendarTrigger/StartBoundary") == "2026-11-24T02:30:00"
    assert field(task, "Triggers/CalendarTrigger/ScheduleByDay/DaysInterval") == "1"
    assert field(task, "Settings/MultipleInstancesPolicy") == "IgnoreNew"
    assert field(task, "Settings/ExecutionTimeLimit") == "PT4H"
    assert field(task, "Settings/StartWhenAvailable") == "true"  # like systemd's Persistent=true


def test_ampersands_quotes_and_angle_brackets_survive_the_xml_and_the_command_line() -> None:
    exe = r'C:\R&D <tools>\Scripts\keyservices.exe'
    config = r'C:\R&D <tools>\say "hi"\config.yaml'
    data = task_xml([exe], config, account="R&D\\svc <ks>", at="01:05", working_dir=r"C:\R&D",
                    start=dt.date(2026, 1, 2))
    raw = data.decode("utf-16")
    assert "R&amp;D" in raw and "&lt;tools&gt;" in raw and "R&D" not in raw
    task = parse_task(data)
    assert windows_argv(field(task, "Actions/Exec/Command")) == [exe]
    assert windows_argv(field(task, "Actions/Exec/Arguments")) == ["-q", "run", "-c", config]
    assert field(task, "Actions/Exec/WorkingDirectory") == r"C:\R&D"
    assert field(task, "Principals/Principal/UserId") == "R&D\\svc <ks>"
    assert field(task, "Triggers/CalendarTrigger/StartBoundary") == "2026-01-02T01:05:00"


def test_python_dash_m_when_there_is_no_entry_point() -> None:
    python = r"C:\Program Files\Python311\python.exe"
    task = parse_task(task_xml([python, "-m", "keyservices"], CONFIG, account="A\\b",
                               at="02:30", working_dir="C:\\", start=dt.date(2026, 1, 1)))
    assert windows_argv(field(task, "Actions/Exec/Command")) == [python]
    assert windows_argv(field(task, "Actions/Exec/Arguments")) == [
        "-m", "keyservices", "-q", "run", "-c", CONFIG]


def test_a_long_install_path_needs_no_tr_at_all(tmp_path: Path) -> None:
    """schtasks refuses a /TR over 261 characters: the old cmd /s /c line for this install was
    281. The task file has no such limit, and the registration line carries no command."""
    base = r"D:\Applications\Office Equipment Dealer\Key Services Nightly"
    exe, config = base + r"\venv\Scripts\keyservices.exe", base + r"\config.yaml"
    xml_path = base + "\\" + TASK_XML
    argv = schtasks_argv(xml_path, account=r"CONTOSO\svc-keyservices")
    assert "/TR" not in argv and argv == [
        "schtasks", "/Create", "/XML", xml_path, "/TN", "keyservices nightly",
        "/RU", r"CONTOSO\svc-keyservices", "/RP", "*", "/F"]
    line = cmd_line(argv)
    assert line == ('schtasks /Create /XML "D:\\Applications\\Office Equipment Dealer\\Key '
                    'Services Nightly\\keyservices-task.xml" /TN "keyservices nightly" /RU '
                    'CONTOSO\\svc-keyservices /RP * /F')
    assert windows_argv(interactive_cmd(line)) == argv
    task = parse_task(task_xml([exe], config, account=r"CONTOSO\svc-keyservices", at="02:30",
                               working_dir=base, start=dt.date(2026, 11, 24)))
    assert windows_argv(field(task, "Actions/Exec/Command")) == [exe]
    assert windows_argv(field(task, "Actions/Exec/Arguments"))[-1] == config


def test_registration_line_quotes_an_ampersand_path_for_cmd() -> None:
    argv = schtasks_argv(r"C:\R&D\keyservices-task.xml", account="A\\b")
    assert windows_argv(interactive_cmd(cmd_line(argv))) == argv


def test_runas_line_keeps_its_window_open_and_survives_three_parsers() -> None:
    """runas reads \\" as a quote inside its program argument; cmd /k with more than two quotes
    strips the first and the last, so /s and an outer pair keep the inner quotes intact."""
    line = runas_line([EXE], ["secret", "set", "erp", "-c", CONFIG],
                      account=r"CONTOSO\svc-keyservices")
    assert line == ('runas /user:CONTOSO\\svc-keyservices "cmd /s /k \\"\\"C:\\Program Files\\'
                    'Key Services\\Scripts\\keyservices.exe\\" secret set erp -c \\"C:\\Key '
                    'Services (prod)\\config.yaml\\"\\""')
    runas = windows_argv(interactive_cmd(line))
    assert runas[:2] == ["runas", r"/user:CONTOSO\svc-keyservices"] and len(runas) == 3
    assert cmd_s_k(runas[2]) == [EXE, "secret", "set", "erp", "-c", CONFIG]


def test_runas_line_with_ampersands_and_plain_paths() -> None:
    amp = runas_line([r"C:\R&D\keyservices.exe"], ["check", "-c", r"C:\R&D\config.yaml"],
                     account="A\\b")
    runas = windows_argv(interactive_cmd(amp))
    assert cmd_s_k(runas[2]) == [r"C:\R&D\keyservices.exe", "check", "-c", r"C:\R&D\config.yaml"]
    plain = runas_line([r"C:\ks\keyservices.exe"], ["secret", "set", "erp", "-c",
                                                    r"C:\ks\config.yaml"], account="A\\b")
    assert plain == (r'runas /user:A\b "cmd /s /k \"C:\ks\keyservices.exe secret set erp -c '
                     r'C:\ks\config.yaml\""')


def test_schedule_writes_the_task_file_beside_the_config(tmp_path: Path,
                                                         runner: CliRunner) -> None:
    folder = tmp_path / "Key Services & Co"
    folder.mkdir()
    path = folder / "config.yaml"
    path.write_text("erp: {url: 'sqlite:///erp.sqlite'}\n", encoding="utf-8")
    result = runner.invoke(cli, ["schedule", "-c", str(path), "--at", "03:15", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    xml_path = folder / "keyservices-task.xml"
    assert plan["task_xml"] == str(xml_path)
    task = parse_task(xml_path.read_bytes())
    assert field(task, "Principals/Principal/UserId") == "DOMAIN\\svc-keyservices"
    assert field(task, "Triggers/CalendarTrigger/StartBoundary").endswith("T03:15:00")
    assert field(task, "Actions/Exec/WorkingDirectory") == str(folder)
    assert windows_argv(field(task, "Actions/Exec/Arguments"))[-4:] == [
        "-q", "run", "-c", str(path)]
    argv = windows_argv(interactive_cmd(plan["schtasks"]))
    assert argv == plan["schtasks_argv"] and "/TR" not in argv
    assert argv[argv.index("/XML") + 1] == str(xml_path)
    assert argv[argv.index("/RU") + 1] == "DOMAIN\\svc-keyservices"
    assert argv[argv.index("/RP") + 1] == "*" and "SYSTEM" not in argv
    runas = windows_argv(interactive_cmd(plan["runas"]))
    assert runas[:2] == ["runas", "/user:DOMAIN\\svc-keyservices"]
    assert cmd_s_k(runas[2])[-5:] == ["secret", "set", "erp", "-c", str(path)]
    assert cmd_s_k(windows_argv(interactive_cmd(plan["runas_check"]))[2])[-3:] == [
        "check", "-c", str(path)]
    state = load_config(path).state.dir
    assert plan["task_log"] == str(state / "task.log") and state.is_dir()
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
    assert f"Wrote {tmp_path / 'keyservices-task.xml'}" in out
    assert f'schtasks /Create /XML {tmp_path / "keyservices-task.xml"} /TN "keyservices ' \
           'nightly" /RU CONTOSO\\svc-ks /RP * /F' in out
    assert "runas /user:CONTOSO\\svc-ks \"cmd /s /k" in out and "/TR" not in out
    assert "task.log" in out and "crontab -e" in out and "keyservices.timer" in out
    task = parse_task((tmp_path / "keyservices-task.xml").read_bytes())
    assert field(task, "Principals/Principal/UserId") == "CONTOSO\\svc-ks"
    bad = runner.invoke(cli, ["schedule", "-c", str(path), "--account", 'a"b'])
    assert bad.exit_code == 2 and "--account" in bad.output


def test_a_group_is_one_task_for_every_company(tmp_path: Path, runner: CliRunner) -> None:
    """#25: a dealer group's night is one run of the whole config (one lock, one digest), so
    schedule prints one task, one cron line and one timer, none of them naming a company."""
    path = tmp_path / "config.yaml"
    companies = "".join(f"  - name: {name}\n    erp: {{url: 'sqlite:///{name.lower()}.sqlite'}}\n"
                        for name in ("North", "South", "East"))
    path.write_text(f"dealer: Acme Group\nerp: {{url: 'sqlite:///north.sqlite'}}\n"
                    f"companies:\n{companies}", encoding="utf-8")
    result = runner.invoke(cli, ["schedule", "-c", str(path), "--at", "01:45", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert sorted(p.name for p in tmp_path.glob("*.xml")) == ["keyservices-task.xml"]
    task = parse_task((tmp_path / "keyservices-task.xml").read_bytes())
    assert len(task.findall("t:Actions/t:Exec", NS)) == 1
    assert len(task.findall("t:Triggers/t:CalendarTrigger", NS)) == 1
    arguments = windows_argv(field(task, "Actions/Exec/Arguments"))
    assert arguments[-4:] == ["-q", "run", "-c", str(path)] and "--company" not in arguments
    assert plan["cron"].count(" run ") == 1 and "--company" not in plan["cron"]
    assert plan["systemd_service"].count("ExecStart=") == 1
    assert "--company" not in plan["systemd_service"]
    # the log of the group's night is in the group's state folder, not a company's
    assert plan["task_log"] == str(load_config(path).state.dir / "task.log")
    shown = runner.invoke(cli, ["schedule", "-c", str(path), "--at", "01:45"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.count("schtasks /Create") == 1 and shown.output.count("Wrote ") == 1
    lines = shown.output.splitlines()
    assert len([line for line in lines if "45 1 * * * " in line]) == 1  # one crontab line
    assert len([line for line in lines if "ExecStart=" in line]) == 1  # one systemd service
    # each company's ERP password is its own: one runas line each, naming the company (the
    # group refuses 'secret set erp' without --company)
    runas = [line for line in lines if "secret set erp" in line]
    assert [r.split("--company ")[1].split()[0] for r in runas] == ["North", "South", "East"]
    assert plan["runas"].count("secret set erp --company") == 3
