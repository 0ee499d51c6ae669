"""``config.yaml``: where the ERP is, where the rules are, how to write and whom to tell.

Secrets never live in the file: the ERP and SMTP passwords come from environment variables named in it.
Relative paths are resolved against the config file's folder, so a scheduled run behaves the same
whatever its working directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError
from .profile import DEFAULT_PROFILE
from .yamlfile import Problem, YamlProblems, load_yaml, problems_from_validation

ENV_PREFIX = "KEYSERVICES_"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableOverride(_Strict):
    table: str | None = None
    columns: dict[str, str] = {}


class ErpSettings(_Strict):
    url: str = Field(description="SQLAlchemy URL of the e-automate company database")
    password_env: str = Field("KEYSERVICES_ERP_PASSWORD",
                              description="environment variable holding the database password")
    db_schema: str | None = Field(None, alias="schema",
                                  description="schema of the ERP tables (dbo on SQL Server)")
    connect_timeout: int = Field(15, ge=1, le=600)
    profile: dict[str, TableOverride] = Field({}, description="table/column name overrides")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, url: str) -> str:
        if re.match(r"^[\w+]+://[^/@:]*:[^/@]+@", url):
            raise ValueError("the URL contains a password; remove it and put the password in the "
                             "environment variable named by erp.password_env")
        return url

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


class WriteSettings(_Strict):
    chunk_size: int = Field(500, ge=1, le=2000)  # SQL Server: <= 2100 parameters
    max_changes: int | None = Field(None, ge=0, description="refuse to write more changes than this")
    max_changes_percent: float | None = Field(None, ge=0, le=100)


class StateSettings(_Strict):
    dir: Path = Path(".keyservices")
    url: str | None = None


class DigestSettings(_Strict):
    outbox: Path = Path("outbox")
    templates: Path | None = None
    sender: str = "keyservices@localhost"
    to: list[str] = []  # the consolidated digest (every branch)
    branches: dict[str, list[str]] = {}  # branch name -> recipients of that branch's own copy
    admins: list[str] = []  # failure alerts; default: the 'to' list
    send_empty: bool = True
    max_rows: int = Field(50, ge=1, le=10_000)  # changes listed before "+N more"
    max_unwritable_rows: int = Field(20, ge=1, le=10_000)  # per list of unwritable customers


class SmtpSettings(_Strict):
    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str = "KEYSERVICES_SMTP_PASSWORD"
    timeout: float = Field(30, gt=0, le=600)
    ca_file: Path | None = None  # PEM bundle to trust, for a server with a private CA


class Config(_Strict):
    """The whole configuration; paths are absolute after ``load_config``."""

    dealer: str = "Your dealership"
    erp: ErpSettings
    rules: Path = Path("rules")
    mode: Literal["live", "test"] = "live"
    write: WriteSettings = WriteSettings()
    state: StateSettings = StateSettings()
    digest: DigestSettings = DigestSettings()
    smtp: SmtpSettings | None = None
    config_path: Path | None = Field(None, exclude=True)

    # -- derived --------------------------------------------------------------------------------
    @property
    def state_url(self) -> str:
        return self.state.url or f"sqlite:///{(self.state.dir / 'state.sqlite').as_posix()}"

    def erp_password(self) -> str | None:
        return os.environ.get(self.erp.password_env) or None

    def smtp_password(self) -> str | None:
        return os.environ.get(self.smtp.password_env) or None if self.smtp else None


def load_config(path: Path | str, **overrides: Any) -> Config:
    """Read and validate ``config.yaml``; every problem is reported at once, exit code 2."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (create one with 'keyservices init', "
                          "or try 'keyservices demo' to see a working setup)")
    try:
        data = load_yaml(path)
    except YamlProblems as exc:
        raise ConfigError(f"invalid config:\n  {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1:1: the config must be a mapping, got {type(data).__name__}")
    raw = dict(data)
    env_url = os.environ.get(f"{ENV_PREFIX}ERP_URL")
    if env_url:
        raw["erp"] = {**dict(raw.get("erp") or {}), "url": env_url}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems = problems_from_validation(exc, data, path, Config)
        raise ConfigError(_summary(problems)) from None
    return _resolve(config, path)


def config_from_dict(raw: dict[str, Any], base_dir: Path) -> Config:
    """Build a Config from a mapping (for embedding and tests); paths relative to ``base_dir``."""
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems = [Problem(base_dir, None, None, ".".join(map(str, e["loc"])), e["msg"])
                    for e in exc.errors(include_url=False)]
        raise ConfigError(_summary(problems)) from None
    return _resolve(config, base_dir / "config.yaml")


def _resolve(config: Config, path: Path) -> Config:
    base = path.resolve().parent

    def absolute(p: Path) -> Path:
        return p if p.is_absolute() else (base / p)

    config.config_path = path.resolve()
    config.rules = absolute(config.rules)
    config.state.dir = absolute(config.state.dir)
    config.digest.outbox = absolute(config.digest.outbox)
    if config.smtp is not None and config.smtp.ca_file is not None:
        config.smtp.ca_file = absolute(config.smtp.ca_file)
    if config.digest.templates is not None:
        config.digest.templates = absolute(config.digest.templates)
    config.erp.url = _resolve_sqlite_url(config.erp.url, base)
    if config.state.url:
        config.state.url = _resolve_sqlite_url(config.state.url, base)
    return config


def _resolve_sqlite_url(url: str, base: Path) -> str:
    """``sqlite:///erp.sqlite`` is relative to the config file, not to the working directory."""
    m = re.match(r"^sqlite(\+\w+)?:///(?!/)(.+)$", url)
    if not m or m.group(2).startswith(":memory:") or re.match(r"^[A-Za-z]:[\\/]", m.group(2)):
        return url
    return f"sqlite{m.group(1) or ''}:///{(base / m.group(2)).as_posix()}"


def _summary(problems: list[Problem]) -> str:
    n = len(problems)
    return "\n".join([f"{n} problem{'s' if n != 1 else ''} in the config:",
                      *(f"  {p}" for p in problems)])
