"""``keyservices demo``: a dealer in a folder, two nights, both digests, in about a minute.

It builds an e-automate-shaped SQLite database, writes a real ``config.yaml`` and the example rules,
runs night 1 (a baseline), lets a plausible day happen in the ERP, and runs night 2, so a newcomer
sees real added and removed services without touching a production system.

The two nights end on the run date (night 1 yesterday, night 2 today; ``as_of`` moves both), so
the next steps it suggests see the ERP as night 2 left it: a dry run plans nothing and the report
counts night 2's won and lost services. Dated the other way round, a dry run today would undo
night 2 and the report would not see it yet.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from .. import demodb
from ..config import load_config
from ..errors import ConfigError
from ..progress import Reporter, Timings, step
from ..resources import example_rules_dir
from .run import RunResult, run

MARKER = ".keyservices-demo"
DEMO_ARTIFACTS = ("erp.sqlite", "config.yaml", "rules", "outbox", ".keyservices", MARKER)

CONFIG_TEMPLATE = """\
# keyservices demo configuration (written by 'keyservices demo'; edit freely).
# Paths are relative to this file. Secrets never go here: passwords come from the
# environment variables named below.
dealer: "Demo Office Systems"

erp:
  # SQLAlchemy URL of the e-automate company database. For SQL Server, for example:
  #   mssql+pyodbc://keyservices@ERPSERVER/coDemo?driver=ODBC+Driver+18+for+SQL+Server
  url: "sqlite:///erp.sqlite"
  password_env: KEYSERVICES_ERP_PASSWORD
  connect_timeout: 15

rules: rules                    # folder of rule files (*.yaml)
mode: live                      # test: compute and email, write nothing to the ERP

write:
  chunk_size: 5000              # customers per write transaction
  max_changes_percent: 25       # change guard: refuse to rewrite more than this share
  # locations: true             # also write each parent's value to its active locations

state:
  dir: .keyservices             # runs, audit and the run lock

digest:
  outbox: outbox                # every digest is written here (.eml and .html)
  sender: "keyservices@demo-dealer.example"
  to: ["service-managers@demo-dealer.example"]   # the consolidated digest
  # branches:                   # each branch manager also gets a copy with only their branch
  #   Shelbyville: ["shelbyville-manager@demo-dealer.example"]
  # admins: ["it@demo-dealer.example"]   # failure alerts (default: the 'to' list)
  send_empty: true              # send a short digest even when nothing changed
  max_rows: 50                  # rows per list before "+N more" (it says where the rest is)

# smtp:                         # uncomment to email the digest
#   host: smtp.example.com
#   port: 587
#   security: starttls          # starttls | ssl | none
#   username: keyservices@example.com
#   password_env: KEYSERVICES_SMTP_PASSWORD
#   timeout: 30
#   ca_file: internal-ca.pem    # trust a private certificate authority
"""


@dataclass
class DemoResult:
    directory: Path
    database: Path
    config: Path
    rules: Path
    outbox: Path
    replaced: bool
    database_summary: demodb.DemoSummary
    next_day: demodb.NextDaySummary
    nights: list[RunResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # what to try next, as commands to paste; they carry --as-of when the demo is not dated today
    next_steps: list[str] = field(default_factory=list)


def demo(directory: Path, *, customers: int = 2000, seed: int = 42,
         as_of: dt.date | None = None, reporter: Reporter | None = None,
         program: str = "keyservices") -> DemoResult:
    """Build the demo dealer in ``directory`` and run two nights, the second on ``as_of``
    (default today) and the first the day before; returns where everything went. ``program``
    starts the suggested next steps (the executable's path when ``keyservices`` is not on
    PATH, as after the README's one-liner)."""
    directory = Path(directory).resolve()
    night2 = as_of or dt.date.today()
    night1 = night2 - dt.timedelta(days=1)
    replaced = _prepare(directory)
    timings = Timings()
    with step(reporter, timings, "build demo database", total=customers) as advance:
        db = directory / "erp.sqlite"
        summary = demodb.build_demo_db(db, customers=customers, seed=seed, as_of=night1)
        advance(customers)
    shutil.copytree(example_rules_dir(), directory / "rules")
    config_path = directory / "config.yaml"
    config_path.write_text(CONFIG_TEMPLATE, encoding="utf-8")
    (directory / MARKER).write_text("created by 'keyservices demo'; safe to delete\n",
                                    encoding="utf-8")
    config = load_config(config_path)
    first = run(config, as_of=night1, reporter=reporter)
    with step(reporter, timings, "simulate the next day in the ERP") as advance:
        engine = sa.create_engine(f"sqlite:///{db.as_posix()}")
        try:
            next_day = demodb.simulate_next_day(engine, day=night2, seed=seed + 1)
        finally:
            engine.dispose()
        advance(1)
    second = run(config, as_of=night2, reporter=reporter)
    return DemoResult(directory=directory, database=db, config=config_path,
                      rules=directory / "rules", outbox=config.digest.outbox, replaced=replaced,
                      database_summary=summary, next_day=next_day, nights=[first, second],
                      timings=dict(timings),
                      next_steps=next_steps(config_path, night2, program=program))


def next_steps(config: Path, night2: dt.date, *, program: str = "keyservices") -> list[str]:
    """The commands to try after the demo, dated like its night 2 when that is not today, each
    run with ``program`` (so that they run as printed)."""
    where = f'"{config}"' if " " in str(config) else str(config)
    when = "" if night2 == dt.date.today() else f" --as-of {night2.isoformat()}"
    return [f"{program} run -c {where} --dry-run{when}",
            f"{program} report -c {where}{when}"]


def _prepare(directory: Path) -> bool:
    """Start fresh in a previous demo folder; refuse to touch a folder that is not one."""
    if not directory.exists():
        directory.mkdir(parents=True)
        return False
    entries = list(directory.iterdir())
    if not entries:
        return False
    if not (directory / MARKER).exists():
        raise ConfigError(f"{directory} is not empty and was not made by 'keyservices demo'; "
                          "choose another --dir (the demo never overwrites other files)")
    for name in DEMO_ARTIFACTS:
        path = directory / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    return True
