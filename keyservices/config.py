"""``config.yaml``: where the ERP is, where the rules are, how to write and whom to tell.

Secrets never live in the file: the ERP and SMTP passwords come from environment variables named in it.
Relative paths are resolved against the config file's folder, so a scheduled run behaves the same
whatever its working directory.
"""

from __future__ import annotations

import json
import os
import re
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .erp.profile import DEFAULT_PROFILE
from .errors import ConfigError
from .yamlfile import Problem, YamlProblems, load_yaml, position, problems_from_validation

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
    sales_reps: dict[str, list[str]] = {}  # sales rep name -> recipients of that rep's own copy
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
    sources: dict[str, str] = Field({}, exclude=True)  # dotted key -> where its value came from

    # -- derived --------------------------------------------------------------------------------
    @property
    def state_url(self) -> str:
        return self.state.url or f"sqlite:///{(self.state.dir / 'state.sqlite').as_posix()}"

    def erp_password(self) -> str | None:
        return os.environ.get(self.erp.password_env) or None

    def smtp_password(self) -> str | None:
        return os.environ.get(self.smtp.password_env) or None if self.smtp else None


def env_name(key: tuple[str, ...]) -> str:
    """The environment variable that overrides a setting: KEYSERVICES_ERP_URL for erp.url."""
    return ENV_PREFIX + "_".join(key).upper()


def setting_keys(model: type[BaseModel] = None, prefix: tuple[str, ...] = ()  # type: ignore[assignment]
                 ) -> list[tuple[tuple[str, ...], Any]]:
    """Every leaf setting (dotted key, annotation), in file order; maps are leaves."""
    model = model or Config
    out: list[tuple[tuple[str, ...], Any]] = []
    for name, info in model.model_fields.items():
        if name in ("config_path", "sources"):
            continue
        key = prefix + (info.alias or name,)
        inner = _model_in(info.annotation)
        if inner is not None:
            out += setting_keys(inner, key)
        else:
            out.append((key, info.annotation))
    return out


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model behind a field (``X`` or ``X | None``); maps and lists are leaves."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (dict, list):
        return None
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _plain(value: Any) -> Any:
    """ruamel's commented containers as plain dicts and lists (so keys can be overridden)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _parse_env(text: str, annotation: Any) -> Any:
    """Strings stay strings; numbers, booleans and lists are read as YAML ('[a@x, b@y]')."""
    if annotation in (str, Path) or str(annotation) in ("str | None", "pathlib.Path | None"):
        return text
    from ruamel.yaml import YAML

    try:
        return YAML(typ="safe").load(text)
    except Exception:  # noqa: BLE001 - pydantic then reports the value as invalid
        return text


def load_config(path: Path | str, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate ``config.yaml``; every problem is reported at once, exit code 2.

    Precedence: ``overrides`` (command-line flags, dotted keys), then environment variables
    (``KEYSERVICES_<SECTION>_<KEY>``), then the file, then the defaults.
    """
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
    raw = _plain(data)
    sources: dict[str, str] = {}
    for key, annotation in setting_keys():
        dotted = ".".join(key)
        node: Any = data
        for part in key:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            line, _ = position(data, key)
            sources[dotted] = f"{path.name}:{line}"
        name = env_name(key)
        if os.environ.get(name):
            _set(raw, key, _parse_env(os.environ[name], annotation))
            sources[dotted] = f"env {name}"
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(raw, tuple(dotted.split(".")), value)
            sources[dotted] = "command line"
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems = problems_from_validation(exc, data, path, Config)
        for i, p in enumerate(problems):  # a value from the environment or a flag says so
            origin = sources.get(p.key, "")
            if origin.startswith(("env ", "command line")):
                problems[i] = Problem(Path(origin), None, None, p.key, p.message)
        raise ConfigError(_summary(problems)) from None
    config.sources = sources
    return _resolve(config, path)


def _set(raw: dict[str, Any], key: tuple[str, ...], value: Any) -> None:
    node = raw
    for part in key[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[key[-1]] = value


def show(config: Config) -> list[tuple[str, str, str]]:
    """The effective settings (key, value, source), secrets masked: for ``config show``."""
    from .erp import display_url

    rows = []
    dumped = config.model_dump(by_alias=True, mode="json")
    for key, _ in setting_keys():
        node: Any = dumped
        for part in key:
            node = node.get(part) if isinstance(node, dict) else None
        dotted = ".".join(key)
        if key[0] == "smtp" and dumped.get("smtp") is None:
            continue
        value = display_url(node) if dotted in ("erp.url", "state.url") and node else node
        rows.append((dotted, json.dumps(value, ensure_ascii=False),
                     config.sources.get(dotted, "default")))
    rows.append(("(erp password)", "set" if config.erp_password() else "not set",
                 f"env {config.erp.password_env}"))
    if config.smtp is not None:
        rows.append(("(smtp password)", "set" if config.smtp_password() else "not set",
                     f"env {config.smtp.password_env}"))
    return rows


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
