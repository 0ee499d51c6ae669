"""Getting a dealer from nothing to a scheduled job: ``init``, ``schedule`` and ``status``.

Nothing here touches the ERP: ``init`` writes a commented config and starter rules, ``schedule``
prints the scheduler entries for this machine, ``status`` reads the state folder.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ..config import Config
from ..errors import ConfigError
from ..outputs.mail import queued
from ..resources import example_rules_dir
from ..state import StateStore

CONFIG_TEMPLATE = """\
# keyservices configuration. Every setting is shown with its default.
# Paths are relative to this file. Passwords never go here: they come from the environment
# variables named below. 'keyservices check -c config.yaml' validates this file and the ERP.
dealer: "Your dealership"              # shown in the digest

erp:
  # SQLAlchemy URL of the e-automate company database (no password in it). SQL Server:
  #   mssql+pyodbc://keyservices@ERPSERVER/coYourCompany?driver=ODBC+Driver+18+for+SQL+Server
  # (pip install 'keyservices[mssql]' and an ODBC driver). KEYSERVICES_ERP_URL overrides it.
  url: "sqlite:///erp.sqlite"
  password_env: KEYSERVICES_ERP_PASSWORD   # the variable holding the database password
  # schema: dbo                        # schema of the ERP tables, when not the default
  connect_timeout: 15                  # seconds
  # profile:                           # rename tables/columns where your database differs
  #   model_categories: {table: ICModelCategories, columns: {code: ModelCategory}}

rules: rules                           # folder of rule files; rules/tests holds rule tests

mode: test                             # test: compute and email, write nothing; then: live

write:
  chunk_size: 500                      # customers per write transaction (max 2000)
  # max_changes: 500                   # change guard: refuse a run that changes more than this
  max_changes_percent: 10              # ... or more than this share of the customers

state:
  dir: .keyservices                    # runs, audit, run lock, log
  # url: sqlite:///.keyservices/state.sqlite   # or another database for the state store

digest:
  outbox: outbox                       # every digest is written here first (.eml and .html)
  sender: "keyservices@example.com"
  to: []                               # the consolidated digest
  # branches:                          # a branch manager's copy with only their branch
  #   North: ["north-manager@example.com"]
  # sales_reps:                        # a rep's copy with only the customers they own
  #   "Dana Whitfield": ["dana@example.com"]
  # admins: ["it@example.com"]         # failure alerts (default: the 'to' list)
  send_empty: true                     # a short digest even when nothing changed
  max_rows: 50                         # changes listed before "+N more" (all are in the CSV)
  max_unwritable_rows: 20              # per list of customers that cannot be written
  # templates: templates               # your own copy of the digest templates

# smtp:                                # without it, digests stay in the outbox
#   host: smtp.example.com
#   port: 587
#   security: starttls                 # starttls | ssl | none
#   username: keyservices@example.com
#   password_env: KEYSERVICES_SMTP_PASSWORD
#   timeout: 30
#   ca_file: internal-ca.pem           # trust a private certificate authority
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


@dataclass
class Schedule:
    cron: str
    schtasks: str
    check: str


def schedule(config: Config, *, at: str = "02:30") -> Schedule:
    """The crontab line and the Windows ``schtasks`` command that run this config nightly."""
    hour, minute = (int(x) for x in at.split(":"))
    assert config.config_path is not None
    cfg = config.config_path
    exe = _entry_point()
    log = cfg.parent / "keyservices-cron.log"  # beside the config: exists before any run
    # cron: POSIX shell quoting; the config's paths are relative to it, so cwd does not matter
    command = [str(exe)] if exe else [sys.executable, "-m", "keyservices"]
    cron = (f"{minute} {hour} * * * {' '.join(shlex.quote(c) for c in command)} -q run -c "
            f"{shlex.quote(str(cfg))} >> {shlex.quote(str(log))} 2>&1")
    # schtasks: the /TR value is one quoted string, with the inner quotes escaped as \"
    quoted = " ".join(f'\\"{c}\\"' if i == 0 else c for i, c in enumerate(command))
    schtasks = (f'schtasks /Create /TN "keyservices nightly" /TR "{quoted} -q run -c '
                f'\\"{cfg}\\"" /SC DAILY /ST {hour:02d}:{minute:02d} /RU SYSTEM /F')
    return Schedule(cron=cron, schtasks=schtasks,
                    check=f"keyservices status -c \"{cfg}\"")


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
    lock_holder: dict[str, Any] | None = None


def status(config: Config, *, limit: int = 10) -> Status:
    """What an admin checks in the morning: the last runs, queued digests, the lock holder."""
    out = Status(queued=[str(p) for p in queued(config.digest.outbox)])
    state_file = config.state.dir / "state.sqlite"
    if config.state.url or state_file.exists():
        store = StateStore(config.state_url)
        try:
            out.runs = [{"id": r.id, "started_at": r.started_at, "finished_at": r.finished_at,
                         "as_of": r.as_of, "mode": r.mode, "baseline": r.baseline,
                         "status": r.status, "exit_code": r.exit_code, "message": r.message,
                         "counts": r.counts} for r in store.runs(limit)]
        finally:
            store.close()
    lock_file = config.state.dir / "run.lock"
    if lock_file.exists():
        lock = FileLock(str(lock_file), timeout=0)
        try:
            lock.acquire()
            lock.release()
        except Timeout:
            info = config.state.dir / "run.lock.json"
            try:
                out.lock_holder = json.loads(info.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                out.lock_holder = {"pid": None}
    return out
