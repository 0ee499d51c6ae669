"""The sections of ``config.yaml`` (erp, write, state, digest, smtp, companies): what each
setting may be, checked as the file is read, so a wrong value stops the night before any database
is touched. ``config.Config`` puts them together; a group's company entries are made of them too.
"""

from __future__ import annotations

import email.utils
import re
from email.errors import HeaderParseError
from email.headerregistry import Address
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from sqlalchemy.exc import ArgumentError

from ..credentials import url_password_problem
from ..erp.profile import DEFAULT_PROFILE


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _no_password(url: str) -> str:
    """A URL is shown, logged and stored (the state store keys runs by it): never a password in
    it, in any form SQLAlchemy or an ODBC driver would read one."""
    try:
        where = url_password_problem(url)
    except ArgumentError:
        raise ValueError("not a valid SQLAlchemy URL "
                         "(dialect+driver://user@host/database)") from None
    if where and ":" in where:  # the problem says where the secret goes instead
        raise ValueError(f"{where}; remove it from the URL")
    if where:
        raise ValueError(f"{where}; remove it and put the password in the environment variable "
                         "named by password_env, or in the keyring ('keyservices secret set')")
    return url


def _one_address(text: str) -> str:
    """One e-mail address per entry ('dana@example.com' or 'Dana Whitfield <dana@example.com>'):
    a line break would let a value add headers, and a list in one entry would hide a typo."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"{text!r} contains a line break or control character; give one "
                         "address per entry")
    found = email.utils.getaddresses([text])
    if len(found) != 1 or not found[0][1] or found[0][1] not in text:
        raise ValueError(f"{text!r} is not one e-mail address (one address per entry, "
                         "like dana@example.com)")
    name, spec = found[0]
    try:
        address = Address(display_name=name, addr_spec=spec)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise ValueError(f"{text!r} is not a valid e-mail address ({exc})") from None
    if not address.username or not address.domain:
        raise ValueError(f"{text!r} is not a valid e-mail address (like dana@example.com)")
    return text


Recipient = Annotated[str, AfterValidator(_one_address)]


class TableOverride(Strict):
    table: str | None = None
    columns: dict[str, str] = {}


class ErpSettings(Strict):
    url: str = Field(description="SQLAlchemy URL of the e-automate company database")
    password_env: str = Field("KEYSERVICES_ERP_PASSWORD",
                              description="environment variable holding the database password")
    db_schema: str | None = Field(None, alias="schema",
                                  description="schema of the ERP tables (dbo on SQL Server)")
    connect_timeout: int = Field(15, ge=1, le=600)
    read_isolation: Literal["read_committed", "snapshot", "read_uncommitted"] = Field(
        "read_committed", description="SQL Server: isolation of the night's reads (snapshot "
                                      "needs ALLOW_SNAPSHOT_ISOLATION; read_uncommitted reads "
                                      "dirty rows, like NOLOCK)")
    lock_timeout_seconds: int = Field(60, ge=1, le=3600,
                                      description="SQL Server (SET LOCK_TIMEOUT) and PostgreSQL "
                                                  "(lock_timeout): a statement waiting longer for "
                                                  "a lock fails the run (exit 1) instead of "
                                                  "hanging")
    profile: dict[str, TableOverride] = Field({}, description="table/column name overrides")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, url: str) -> str:
        return _no_password(url)

    @field_validator("profile")
    @classmethod
    def _known_tables(cls, profile: dict[str, TableOverride]) -> dict[str, TableOverride]:
        problems = []
        for logical, override in profile.items():
            if logical not in DEFAULT_PROFILE:
                problems.append(f"unknown table {logical!r} (known: {', '.join(DEFAULT_PROFILE)})")
                continue
            known = DEFAULT_PROFILE[logical]["columns"]
            for col in override.columns:
                if col not in known:
                    problems.append(f"{logical}: unknown column {col!r} (known: {', '.join(known)})")
        if problems:
            raise ValueError("; ".join(problems))
        return profile


def _limit_or_off(value: Any) -> Any:
    """A change-guard limit is a number or the word ``off``: an empty value, ``null`` or a
    boolean is a mistake that would silently switch the guard off (or make ``true`` 1 %)."""
    if isinstance(value, str) and value.strip().lower() == "off":
        return "off"
    if value is None or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a limit: give a number, or write 'off' in the file "
                         "to switch this part of the change guard off")
    return value


GuardLimit = Annotated[float | Literal["off"], BeforeValidator(_limit_or_off)]
GuardCount = Annotated[int | Literal["off"], BeforeValidator(_limit_or_off)]
DEFAULT_MAX_CHANGES_PERCENT = 10.0
PasswordName = Literal["erp", "smtp", "state"]


class WriteSettings(Strict):
    # rows per ERP write transaction; read-backs go 1,000 ids a statement (SQL Server: <= 2100)
    chunk_size: int = Field(5000, ge=1, le=20_000)
    max_changes: GuardCount | None = Field(None, description="refuse to write more changes than "
                                           "this (not set: no count limit; off: the same)")
    max_changes_percent: GuardLimit = Field(DEFAULT_MAX_CHANGES_PERCENT,
                                            description="refuse a run that changes more than this "
                                            "share of the customers; off switches it off")
    locations: bool = Field(False, description="with level: parent, also write the parent's "
                            "value to its active locations (e-automate lists, ship-to screens)")

    @field_validator("max_changes", "max_changes_percent")
    @classmethod
    def _in_range(cls, value: float | str | None, info: ValidationInfo) -> float | str | None:
        top = 100 if info.field_name == "max_changes_percent" else None
        if isinstance(value, int | float) and (value < 0 or (top is not None and value > top)):
            raise ValueError(f"{value:g} is out of range (0 to {top or 'any count'}; "
                             "or off)")
        return value


class StateSettings(Strict):
    dir: Path = Path(".keyservices")
    url: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the state "
                                     "database password (when state.url needs one)")

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, url: str | None) -> str | None:
        return None if url is None else _no_password(url)


class RankingSettings(Strict):
    """How the win rates that rank the calls are learned (docs/ranking.md)."""

    learn_every_days: int = Field(7, ge=0, le=365, description="a live run learns the win rates "
                                  "again once the stored ones are this old (0: runs never "
                                  "learn them; keyservices backtest --save does)")
    months: int = Field(12, ge=4, le=60, description="as-of dates (30 days apart) the rates "
                        "are learned from")
    learn_customers: int = Field(250_000, ge=0, description="above this many customers the "
                                 "rates are learned from every k-th customer group (a parent "
                                 "with its locations), enough for them and bounded in time and "
                                 "memory (0: from all)")


class DigestSettings(Strict):
    outbox: Path = Path("outbox")
    templates: Path | None = None
    sender: Recipient = "keyservices@localhost"
    to: list[Recipient] = []  # the consolidated digest (every branch)
    branches: dict[str, list[Recipient]] = {}  # branch name -> recipients of that branch's copy
    sales_reps: dict[str, list[Recipient]] = {}  # sales rep name -> recipients of that rep's copy
    admins: list[Recipient] = []  # failure alerts; default: the 'to' list
    send_empty: bool = True
    max_rows: int = Field(50, ge=1, le=10_000)  # changes listed before "+N more"
    max_unwritable_rows: int = Field(20, ge=1, le=10_000)  # per list of unwritable customers
    max_age_days: int = Field(3, ge=1, le=3650)  # older queued mail moves to outbox/expired unsent
    # each sales rep's copy carries an .ics of the rep's contract renewals in the next 60 days
    renewals_ics: bool = False


class SmtpSettings(Strict):
    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str = "KEYSERVICES_SMTP_PASSWORD"
    timeout: float = Field(30, gt=0, le=600)
    ca_file: Path | None = None  # PEM bundle to trust, for a server with a private CA


class CompanyDigest(Strict):
    """A company's own digest recipients; a list not given is the top-level one."""

    to: list[Recipient] | None = None
    branches: dict[str, list[Recipient]] | None = None
    sales_reps: dict[str, list[Recipient]] | None = None
    admins: list[Recipient] | None = None


class CompanySettings(Strict):
    """One company of a dealer group: its own e-automate database, optionally its own rules,
    write settings, digest recipients and state store; the rest comes from the top level."""

    name: str = Field(description="the company's name (unique): --company NAME, the digest")
    erp: ErpSettings
    rules: Path | None = None
    write: WriteSettings | None = None
    digest: CompanyDigest | None = None
    state: StateSettings | None = None

    @field_validator("name")
    @classmethod
    def _named(cls, name: str) -> str:
        if not name.strip() or not slug(name):
            raise ValueError(f"{name!r} is not a company name: give letters or digits")
        return name.strip()




def slug(name: str) -> str:
    """A company's name as part of a folder or file name: 'North & Co.' -> 'north-co'."""
    return re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-")


def company_password_env(name: str) -> str:
    """The variable (and keyring user) of a company's ERP password when its config names none:
    one per company, so that ``secret set erp --company North`` keeps North's apart."""
    part = slug(name).upper().replace("-", "_")
    return f"KEYSERVICES_ERP_PASSWORD_{part}" if part else "KEYSERVICES_ERP_PASSWORD"
