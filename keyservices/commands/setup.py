"""Getting a dealer from nothing to a scheduled job: ``init``, ``schedule`` and ``status``.

Nothing here touches the ERP: ``init`` writes a commented config and starter rules, ``schedule``
writes the Windows task file and prints the scheduler entries for this machine, ``status`` reads
the state folder.
"""

from __future__ import annotations

import codecs
import datetime as dt
import getpass
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..outputs.mail import expired_count, given_up, kept_for_refused, queued
from ..resources import example_rules_dir
from ..state import StateStore
from ..state.lock import lock_holder

CONFIG_TEMPLATE = """\
# keyservices configuration. Every setting is shown with its default.
# Paths are relative to this file. Passwords never go here: they come from the environment
# variables named below, or else from the OS keyring under those names ('keyservices secret set
# erp'). 'keyservices check -c config.yaml' validates this file and the ERP.
dealer: "Your dealership"              # shown in the digest

erp:
  # SQLAlchemy URL of the e-automate company database (no password in it). SQL Server:
  #   mssql+pyodbc://keyservices@ERPSERVER/coYourCompany?driver=ODBC+Driver+18+for+SQL+Server
  # (the mssql extra, docs/installation.md, and an ODBC driver). KEYSERVICES_ERP_URL overrides it.
  url: "sqlite:///erp.sqlite"
  password_env: KEYSERVICES_ERP_PASSWORD   # the variable holding the database password
  # schema: dbo                        # schema of the ERP tables, when not the default
  connect_timeout: 15                  # seconds
  # SQL Server only (docs/eautomate-setup.md): how the night's reads meet e-automate's posting
  read_isolation: read_committed       # read_committed | snapshot | read_uncommitted (NOLOCK)
  lock_timeout_seconds: 60             # a lock wait longer than this fails the run (exit 1;
                                       # SQL Server and PostgreSQL)
  # profile:                           # rename tables/columns where your database differs
  #   model_categories: {table: ICModelCategories, columns: {code: ModelCategory}}

rules: rules                           # folder of rule files; rules/tests holds rule tests

mode: test                             # test: compute and email, write nothing; then: live
                                       # (not set: test, and the summary and digest say so)

write:
  chunk_size: 5000                     # customers per write transaction (max 20000)
  # max_changes: 500                   # change guard: refuse a run that changes more than this
  max_changes_percent: 10              # ... or more than this share of the customers; the
                                       # word off switches the guard off (the summary says so)
  locations: false                     # level: parent: true also writes each parent's value
                                       # to its active locations (ship-to screens, lists)

state:
  dir: .keyservices                    # runs, audit, run lock, log
  # url: sqlite:///.keyservices/state.sqlite   # or another database for the state store
  # password_env: KEYSERVICES_STATE_PASSWORD  # its password, when url names a server

ranking:                               # who to call first: docs/ranking.md
  learn_every_days: 7                  # a live run learns the win rates again this often
  months: 12                           # as-of dates (30 days apart) they are learned from
  learn_customers: 250000              # above this many customers, from every k-th customer
                                       # group (a parent with its locations); 0: from all

digest:
  outbox: outbox                       # every digest is written here first (.eml and .html)
  sender: "keyservices@localhost"       # the From: address (use one your mail server accepts)
  to: []                               # the consolidated digest
  # branches:                          # a branch manager's copy with only their branch
  #   North: ["north-manager@example.com"]
  # sales_reps:                        # a rep's copy with only the customers they own
  #   "Dana Whitfield": ["dana@example.com"]
  # admins: ["it@example.com"]         # failure alerts (default: the 'to' list)
  send_empty: true                     # a short digest even when nothing changed
  max_rows: 50                         # rows per list before "+N more" (it says where the rest is)
  max_unwritable_rows: 20              # per list of customers that cannot be written
  max_age_days: 3                      # queued mail older than this is never sent (expired/)
  renewals_ics: false                  # true: each sales_reps copy carries an .ics of the
                                       # rep's contract renewals (next 60 days)
  # templates: templates               # your own copy of the digest templates

# smtp:                                # without it, digests stay in the outbox
#   host: smtp.example.com
#   port: 587
#   security: starttls                 # starttls | ssl | none
#   username: keyservices@example.com
#   password_env: KEYSERVICES_SMTP_PASSWORD
#   timeout: 30
#   ca_file: internal-ca.pem           # trust a private certificate authority

# A dealer group: one e-automate database per company, one night, one lock. Each company takes
# the erp: settings (its own url; its password in KEYSERVICES_ERP_PASSWORD_<NAME>, or
# 'keyservices secret set erp --company NAME'), may have its own rules:, write: and digest:
# recipients, and keeps its own state store (state.dir/companies/<name>); the rest is inherited.
# companies:
#   - name: North
#     erp: {url: "mssql+pyodbc://keyservices@ERPSERVER/coNorth?driver=ODBC+Driver+18+for+SQL+Server"}
#   - name: South
#     erp: {url: "mssql+pyodbc://keyservices@ERPSERVER/coSouth?driver=ODBC+Driver+18+for+SQL+Server"}
#     rules: rules-south               # its own rules folder
#     digest: {to: ["south-service@example.com"]}
parallel: 2                            # companies read and written at once (a bounded pool)
"""


def init(directory: Path, *, force: bool = False) -> list[Path]:
    """Write a commented ``config.yaml`` and starter ``rules/`` (with rule tests) to edit."""
    directory = Path(directory)
    config, rules = directory / "config.yaml", directory / "rules"
    existing = [p for p in (config, rules) if p.exists()]
    if existing and not force:
        raise ConfigError(f"{', '.join(str(p) for p in existing)} already exist(s); keyservices "
                          "init never overwrites your files (use --force to replace them)")
    directory.mkdir(parents=True, exist_ok=True)
    if rules.exists():
        shutil.rmtree(rules)
    shutil.copytree(example_rules_dir(), rules)
    config.write_text(CONFIG_TEMPLATE, encoding="utf-8")
    return [config, rules]


DEFAULT_ACCOUNT = "DOMAIN\\svc-keyservices"  # a placeholder: the admin names the real account
TASK_NAME = "keyservices nightly"
TASK_LOG = "task.log"  # in the state folder: the cron job's own stdout and stderr
TASK_XML = "keyservices-task.xml"  # beside the config: the Windows task, for schtasks /XML
TASK_TIME_LIMIT = "PT4H"  # Task Scheduler stops a run still going after this (ISO 8601)
TASK_NAMESPACE = "http://schemas.microsoft.com/windows/2004/02/mit/task"
_CMD_OPERATORS = "^&|<>()"  # what cmd.exe acts on outside double quotes
_CMD_SPECIAL = _CMD_OPERATORS + "%!,;="  # ... and what it expands or splits on: quote these too


@dataclass
class Schedule:
    """How to run this config nightly on each system; only the Windows task file is written."""

    schtasks: str  # registers the task file: one line for an administrator's command prompt
    schtasks_argv: list[str]  # the same as an argument list, for scripts (subprocess, no shell)
    task_xml: str  # the Task Scheduler file (beside the config) that schtasks /XML reads
    runas: str  # stores the ERP password in the task account's keyring (cmd.exe line; a
    #             group: one line per company, each with --company)
    runas_check: str  # 'keyservices check' as that account, its window left open
    account: str  # the Windows account the task runs as
    task_log: str  # where the cron job's own output goes
    cron: str
    systemd_service: str
    systemd_timer: str
    check: str


def schedule(config: Config, *, at: str = "02:30", account: str = DEFAULT_ACCOUNT,
             program: Sequence[str] | None = None) -> Schedule:
    """The Windows scheduled task (a Task Scheduler file beside the config, run as a named
    service account), the crontab line (its output appended to ``<state>/task.log``) and a
    systemd timer that run this config nightly.

    ``program`` is the command that starts keyservices (default: the installed entry point).
    The state folder is created, so the log's folder exists before the first run."""
    hour, minute = (int(x) for x in at.split(":"))
    if not account.strip() or '"' in account:
        raise ConfigError(f"--account {account!r}: give the Windows account the task runs as, "
                          "e.g. DOMAIN\\svc-keyservices (no quotes)")
    assert config.config_path is not None
    cfg = str(config.config_path)
    exe = _entry_point()
    command = list(program) if program else (
        [str(exe)] if exe else [sys.executable, "-m", "keyservices"])
    config.state.dir.mkdir(parents=True, exist_ok=True)
    log = str(config.state.dir / TASK_LOG)
    # cron: POSIX shell quoting; the config's paths are relative to it, so cwd does not matter
    cron = (f"{minute} {hour} * * * {shlex.join([*command, '-q', 'run', '-c', cfg])} "
            f">> {shlex.quote(log)} 2>&1")
    xml_path = config.config_path.parent / TASK_XML
    try:
        xml_path.write_bytes(task_xml(command, cfg, account=account, at=f"{hour:02d}:"
                                      f"{minute:02d}", working_dir=str(xml_path.parent)))
    except OSError as exc:
        raise ConfigError(f"cannot write the task file {xml_path}: {exc.strerror or exc}; run "
                          "schedule as an account that may write beside the config") from None
    argv = schtasks_argv(str(xml_path), account=account)
    service, timer = systemd_units(command, cfg, hour=hour, minute=minute)
    return Schedule(schtasks=cmd_line(argv), schtasks_argv=argv, task_xml=str(xml_path),
                    runas="\n".join(
                        runas_line(command, ["secret", "set", "erp", *company, "-c", cfg],
                                   account=account)
                        for company in ([["--company", c.name] for c in config.companies]
                                        or [[]])),
                    runas_check=runas_line(command, ["check", "-c", cfg], account=account),
                    account=account, task_log=log, cron=cron, systemd_service=service,
                    systemd_timer=timer,
                    check=f"{subprocess.list2cmdline(['keyservices', 'status', '-c', cfg])}")


def task_xml(command: Sequence[str], config: str, *, account: str, at: str, working_dir: str,
             start: dt.date | None = None) -> bytes:
    """The Task Scheduler 1.2 file for ``schtasks /Create /XML``: daily at ``at`` (local time)
    as ``account`` whether or not it is logged on, in ``working_dir``, no second copy at once.

    A file, because schtasks refuses a ``/TR`` over 261 characters and a venv under
    ``D:\\Applications\\Office Equipment Dealer\\...`` passes that. No cmd.exe runs the
    task, so only the Microsoft C runtime's quoting applies to the arguments, and
    ``ExecutionTimeLimit`` stops keyservices itself, not a shell around it. UTF-16 LE with a
    byte order mark, declared so: what Task Scheduler writes and schtasks reads everywhere."""
    ET.register_namespace("", TASK_NAMESPACE)

    def add(parent: ET.Element, tag: str, text: str | None = None,
            **attrib: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{TASK_NAMESPACE}}}{tag}", attrib)
        element.text = text
        return element

    task = ET.Element(f"{{{TASK_NAMESPACE}}}Task", version="1.2")
    info = add(task, "RegistrationInfo")
    add(info, "Description", f"keyservices nightly run of {config} (keyservices schedule)")
    add(info, "URI", f"\\{TASK_NAME}")
    trigger = add(add(task, "Triggers"), "CalendarTrigger")
    add(trigger, "StartBoundary", f"{start or dt.date.today():%Y-%m-%d}T{at}:00")
    add(trigger, "Enabled", "true")
    add(add(trigger, "ScheduleByDay"), "DaysInterval", "1")
    principal = add(add(task, "Principals"), "Principal", id="Author")
    add(principal, "UserId", account)
    add(principal, "LogonType", "Password")  # stored by schtasks /RP: runs when logged off
    add(principal, "RunLevel", "LeastPrivilege")
    settings = add(task, "Settings")
    for tag, text in (("MultipleInstancesPolicy", "IgnoreNew"),
                      ("DisallowStartIfOnBatteries", "false"),
                      ("StopIfGoingOnBatteries", "false"), ("AllowHardTerminate", "true"),
                      ("StartWhenAvailable", "true"),  # a missed night runs when back on
                      ("RunOnlyIfNetworkAvailable", "false"), ("AllowStartOnDemand", "true"),
                      ("Enabled", "true"), ("Hidden", "false"), ("RunOnlyIfIdle", "false"),
                      ("WakeToRun", "false"), ("ExecutionTimeLimit", TASK_TIME_LIMIT),
                      ("Priority", "7")):
        add(settings, tag, text)
    exec_ = add(add(task, "Actions", Context="Author"), "Exec")
    add(exec_, "Command", subprocess.list2cmdline(command[:1]))  # quoted when it has a space
    add(exec_, "Arguments", subprocess.list2cmdline([*command[1:], "-q", "run", "-c", config]))
    add(exec_, "WorkingDirectory", working_dir)  # never quoted: Task Scheduler takes it as is
    ET.indent(task)
    text = f'<?xml version="1.0" encoding="UTF-16"?>\n{ET.tostring(task, encoding="unicode")}\n'
    return codecs.BOM_UTF16_LE + text.encode("utf-16-le")


def schtasks_argv(xml_path: str, *, account: str) -> list[str]:
    """``schtasks /Create /XML`` for the task file, as ``account``; ``/RP *`` asks for its
    password (so the task runs whether or not the account is logged on, and can reach SQL
    Server); ``/F`` replaces the task of an earlier ``schedule``."""
    return ["schtasks", "/Create", "/XML", xml_path, "/TN", TASK_NAME, "/RU", account, "/RP",
            "*", "/F"]


def runas_line(command: Sequence[str], args: Sequence[str], *, account: str) -> str:
    """``runas`` running keyservices ``args`` as ``account`` in a window that stays open (to
    read what it said), as one line to paste into cmd.exe.

    The window's ``cmd /s /k "..."`` strips exactly the outer quotes (plain ``/k`` strips the
    first and the last quote of the line when it holds more than two, breaking a quoted program
    and a quoted config); each argument is quoted for the C runtime and where cmd.exe would
    read ``&``, ``(`` or ``%``; runas reads ``\\"`` inside its argument as a quote."""
    inner = " ".join(_quote_arg(a) for a in [*command, *args])
    return cmd_line(["runas", f"/user:{account}", f'cmd /s /k "{inner}"'])


def cmd_line(argv: Sequence[str]) -> str:
    """``argv`` as one line to paste into cmd.exe: quoted by ``subprocess.list2cmdline`` for the
    program, then ``^`` before each character cmd.exe itself would act on (``>``, ``&``, ...)
    where cmd.exe sees it outside double quotes (it does not know the ``\"`` escape)."""
    out: list[str] = []
    quoted = False
    for ch in subprocess.list2cmdline(list(argv)):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in _CMD_OPERATORS:
            out.append("^")
        out.append(ch)
    return "".join(out)


def _quote_arg(arg: str) -> str:
    """``list2cmdline`` quoting, forced where cmd.exe would act on a character of the argument."""
    text = subprocess.list2cmdline([arg])
    if text.startswith('"') or not any(c in _CMD_SPECIAL for c in arg):
        return text
    return '"' + re.sub(r"(\\+)$", r"\1\1", arg) + '"'  # no quote inside: only a trailing \ run


def systemd_units(command: Sequence[str], config: str, *, hour: int,
                  minute: int) -> tuple[str, str]:
    """A oneshot service (output to the journal) and its daily timer, for Linux."""
    exec_start = " ".join(_systemd_quote(a) for a in [*command, "-q", "run", "-c", config])
    service = (
        "[Unit]\nDescription=keyservices nightly run\n"
        "Wants=network-online.target\nAfter=network-online.target\n\n"
        "[Service]\nType=oneshot\n"
        f"User={_service_user()}\n"
        "# the password: KEYSERVICES_ERP_PASSWORD=... in this file (chmod 600), or the keyring\n"
        "EnvironmentFile=-/etc/keyservices/env\n"
        f"ExecStart={exec_start}\n")
    timer = (f"[Unit]\nDescription=keyservices nightly at {hour:02d}:{minute:02d}\n\n"
             f"[Timer]\nOnCalendar=*-*-* {hour:02d}:{minute:02d}:00\nPersistent=true\n\n"
             "[Install]\nWantedBy=timers.target\n")
    return service, timer


def _service_user() -> str:
    """The account that set this up (it owns the venv and config), never root."""
    user = getpass.getuser()
    return "keyservices" if user == "root" else user


def _systemd_quote(arg: str) -> str:
    """One ExecStart argument: bare when plain, else double quotes with C escapes; ``%%`` and
    ``$$`` for literal % and $ (systemd expands both)."""
    if re.fullmatch(r"[\w@+=:,./-]+", arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("%", "%%").replace("$", "$$") + '"'


def _entry_point() -> Path | None:
    """The installed ``keyservices`` script beside this Python (a venv's bin/ or Scripts/)."""
    folder = Path(sys.executable).parent
    for name in ("keyservices.exe", "keyservices"):
        if (folder / name).is_file():
            return folder / name
    found = shutil.which("keyservices")
    return Path(found) if found else None


@dataclass
class Status:
    runs: list[dict[str, Any]] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    expired: int = 0  # queued mail older than digest.max_age_days, moved to outbox/expired unsent
    lock_holder: dict[str, Any] | None = None
    # queued mail the server refused for some recipients, retried for those (one line each)
    refused: list[str] = field(default_factory=list)
    # expired mail whose refused recipients never got it (one line each)
    gave_up: list[str] = field(default_factory=list)


def status(config: Config, *, limit: int = 10) -> Status:
    """What an admin checks in the morning: the last runs, queued digests, the lock holder."""
    out = Status(queued=[str(p) for p in queued(config.digest.outbox)],
                 expired=expired_count(config.digest.outbox),
                 refused=[r.describe() for r in kept_for_refused(config.digest.outbox)],
                 gave_up=[r.describe() for r in given_up(config.digest.outbox)])
    store = StateStore.for_reading(config.state_url)  # a read-only folder will do
    if store is not None:
        try:
            out.runs = [{"id": r.id, "company": config.company_name,
                         "started_at": r.started_at, "finished_at": r.finished_at,
                         "as_of": r.as_of, "mode": r.mode, "baseline": r.baseline,
                         "status": r.status, "exit_code": r.exit_code, "message": r.message,
                         "counts": r.counts} for r in store.runs(limit)]
        finally:
            store.close()
    out.lock_holder = lock_holder(config.lock_dir)  # never takes the run lock
    return out
