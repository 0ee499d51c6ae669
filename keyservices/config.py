"""``config.yaml``: where the ERP is, where the rules are, how to write and whom to tell.

Secrets never live in the file: the ERP, SMTP and state-store passwords come from the environment
variables named in it, or else from the OS keyring under those names (``keyservices secret set``).
Relative paths are resolved against the config file's folder, so a scheduled run behaves the same
whatever its working directory.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import typing
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
    ValidationError,
    ValidationInfo,
    field_validator,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .credentials import Secret, find_password, url_password_problem
from .erp.profile import DEFAULT_PROFILE
from .errors import ConfigError
from .overrides import env_problem, parse_env
from .resources import DIGEST_TEMPLATES
from .yamlfile import Problem, YamlProblems, load_yaml, position, problems_from_validation

ENV_PREFIX = "KEYSERVICES_"


class _Strict(BaseModel):
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


class WriteSettings(_Strict):
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


class StateSettings(_Strict):
    dir: Path = Path(".keyservices")
    url: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the state "
                                     "database password (when state.url needs one)")

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, url: str | None) -> str | None:
        return None if url is None else _no_password(url)


class DigestSettings(_Strict):
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
    # never said: test (compute and mail, write nothing), and the summary and digest say why
    mode: Literal["live", "test"] = "test"
    write: WriteSettings = WriteSettings()
    state: StateSettings = StateSettings()
    digest: DigestSettings = DigestSettings()
    smtp: SmtpSettings | None = None
    config_path: Path | None = Field(None, exclude=True)
    sources: dict[str, str] = Field({}, exclude=True)  # dotted key -> where its value came from

    # -- derived --------------------------------------------------------------------------------
    @property
    def state_url(self) -> str | URL:
        """The state store's URL: text, or with a password (state.password_env) a SQLAlchemy
        ``URL`` whose ``str()`` masks it, so a message or log line that shows it stays safe."""
        url = self.state.url or f"sqlite:///{(self.state.dir / 'state.sqlite').as_posix()}"
        password = self.password("state").get()
        return make_url(url).set(password=password) if password else url

    def password(self, which: PasswordName) -> Secret:
        """A password and its source: the environment variable wins over the keyring. SQLite
        needs none (so the keyring is not consulted); a section not configured has none."""
        url = self.erp.url if which == "erp" else self.state.url if which == "state" else None
        if which != "smtp" and (url is None or url.startswith("sqlite")):
            return Secret("not needed (SQLite)" if url else "not needed")
        env = self.password_env(which)
        return find_password(env) if env else Secret("not configured")

    def password_env(self, which: PasswordName) -> str | None:
        """The variable (and keyring user) that holds a password; None where there is none."""
        if which == "erp":
            return self.erp.password_env
        if which == "smtp":
            return self.smtp.password_env if self.smtp is not None else None
        return self.state.password_env

    def erp_password(self) -> str | None:
        return self.password("erp").get()

    def smtp_password(self) -> str | None:
        return self.password("smtp").get()


def env_name(key: tuple[str, ...]) -> str:
    """The environment variable that overrides a setting: KEYSERVICES_ERP_URL for erp.url."""
    return ENV_PREFIX + "_".join(key).upper()


def setting_keys(model: type[BaseModel] | None = None, prefix: tuple[str, ...] = ()
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
    env_problems: list[Problem] = []
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
            value = parse_env(os.environ[name], annotation)
            wrong = env_problem(os.environ[name], value, annotation, dotted)
            if wrong:
                env_problems.append(Problem(Path(f"env {name}"), None, None, dotted, wrong))
                continue
            _set(raw, key, value)
            sources[dotted] = f"env {name}"
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(raw, tuple(dotted.split(".")), value)
            sources[dotted] = "command line"
    try:
        config = Config.model_validate(raw)
        if env_problems:
            raise ConfigError(_summary(env_problems))
    except ValidationError as exc:
        problems = env_problems + problems_from_validation(exc, data, path, Config)
        for i, p in enumerate(problems):  # a value from the environment or a flag says so
            origin = _origin(sources, p.key)
            if origin.startswith(("env ", "command line")):
                problems[i] = Problem(Path(origin), None, None, p.key, p.message)
        raise ConfigError(_summary(problems)) from None
    config.sources = sources
    return _resolve(config, path)


def _origin(sources: dict[str, str], key: str) -> str:
    """Where the setting holding ``key`` came from: digest.to[1] is part of digest.to."""
    while key:
        if key in sources:
            return sources[key]
        key = re.sub(r"(\[[^\]]*\]|\.[^.\[]*)$", "", key) if re.search(r"[.\[]", key) else ""
    return ""


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
    for which in password_names(config):
        secret = config.password(which)
        rows.append((f"({which} password)", "set" if secret.value else "not set", secret.source))
    return rows


def password_sources(config: Config) -> dict[str, str]:
    """Where each configured password comes from ("env NAME", "keyring", "not set"), never the
    value: what ``check`` and ``config show`` print."""
    return {which: config.password(which).source for which in password_names(config)}


def password_names(config: Config) -> list[PasswordName]:
    """The passwords a config uses: the ERP's; SMTP's with an smtp: section; the state
    store's with state.password_env."""
    names: list[PasswordName] = ["erp"]
    if config.smtp is not None:
        names.append("smtp")
    if config.state.password_env:
        names.append("state")
    return names


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
        if not config.smtp.ca_file.is_file():  # else the first send fails, after the writes
            origin = config.sources.get("smtp.ca_file", path.name)
            raise ConfigError(f"1 problem in the config:\n  {origin}: smtp.ca_file: "
                              f"{config.smtp.ca_file} not found (the PEM bundle of the mail "
                              "server's private CA; remove the setting for a public CA)")
    if config.digest.templates is not None:
        config.digest.templates = absolute(config.digest.templates)
        _check_templates(config, path)
    config.erp.url = _resolve_sqlite_url(config.erp.url, base)
    if config.state.url:
        config.state.url = _resolve_sqlite_url(config.state.url, base)
    return config


def _check_templates(config: Config, path: Path) -> None:
    """A wrong digest.templates would fail only at render time, after the night's writes."""
    folder = config.digest.templates
    assert folder is not None
    missing = [name for name in DIGEST_TEMPLATES if not (folder / name).is_file()]
    if not missing:
        return
    origin = config.sources.get("digest.templates", path.name)
    where = origin if origin.startswith(("env ", "command line")) else \
        f"{path.parent / origin}" if ":" in origin else str(path)
    what = (f"the folder {folder} does not exist" if not folder.is_dir() else
            f"{' and '.join(missing)} not found in {folder}")
    raise ConfigError(f"1 problem in the config:\n  {where}: digest.templates: {what} (copy the "
                      "templates folder that ships with keyservices there, or remove the setting "
                      "to use the built-in templates)")


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


def guard_limits(write: WriteSettings) -> tuple[int | None, float | None]:
    """The change guard's limits as numbers (None: that limit is off or not set)."""
    count = None if write.max_changes in (None, "off") else int(write.max_changes)
    share = None if write.max_changes_percent == "off" else float(write.max_changes_percent)
    return count, share


def guard_off(write: WriteSettings) -> bool:
    """Whether the file switched the change guard off entirely (what the summary says)."""
    return guard_limits(write) == (None, None)
