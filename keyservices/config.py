"""``config.yaml``: where the ERP is, where the rules are, how to write and whom to tell.

Secrets never live in the file: the ERP, SMTP and state-store passwords come from the environment
variables named in it, or else from the OS keyring under those names (``keyservices secret set``).
Relative paths are resolved against the config file's folder, so a scheduled run behaves the same
whatever its working directory.
"""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    model_validator,
)
from sqlalchemy.engine import URL, make_url

from .credentials import Secret, find_password
from .errors import ConfigError
from .overrides import env_problem, parse_env
from .resources import DIGEST_TEMPLATES
from .settings.sections import (
    CompanySettings,
    DigestSettings,
    ErpSettings,
    PasswordName,
    RankingSettings,
    SmtpSettings,
    StateSettings,
    Strict,
    WriteSettings,
    company_password_env,
    slug,
)
from .yamlfile import Problem, YamlProblems, load_yaml, position, problems_from_validation

ENV_PREFIX = "KEYSERVICES_"
GROUP_PLACEHOLDER_URL = "sqlite://"  # a group's top-level erp: never connected to


class Config(Strict):
    """The whole configuration; paths are absolute after ``load_config``."""

    dealer: str = "Your dealership"
    erp: ErpSettings
    companies: list[CompanySettings] = Field([], description="a dealer group: one entry "
                                             "per company database")
    parallel: int = Field(2, ge=1, le=32, description="companies processed at once")
    rules: Path = Path("rules")
    # never said: test (compute and mail, write nothing), and the summary and digest say why
    mode: Literal["live", "test"] = "test"
    write: WriteSettings = WriteSettings()
    state: StateSettings = StateSettings()
    ranking: RankingSettings = RankingSettings()
    digest: DigestSettings = DigestSettings()
    smtp: SmtpSettings | None = None
    config_path: Path | None = Field(None, exclude=True)
    sources: dict[str, str] = Field({}, exclude=True)  # dotted key -> where its value came from
    company: str | None = Field(None, exclude=True)  # set on one company's config of a group
    group_state: Path | None = Field(None, exclude=True)  # the group's state folder (its lock)
    # a company whose digest goes to the group's recipients: its digest is a section of the
    # group's one message, not a message of its own (companies[].digest.to gives it one)
    in_group_digest: bool = Field(False, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _company_erps(cls, raw: Any) -> Any:
        """Each company's ``erp:`` inherits the top-level erp settings but the URL; its
        password is its own (``KEYSERVICES_ERP_PASSWORD_<NAME>``) unless a password_env says
        otherwise. A group may leave out the top-level ``erp:`` (it is never connected to)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("companies"), list) \
                or not raw["companies"]:
            return raw
        raw = dict(raw)
        top = raw.get("erp") if isinstance(raw.get("erp"), dict) else {}
        companies = []
        for entry in raw["companies"]:
            if isinstance(entry, dict) and isinstance(entry.get("erp"), dict):
                own = entry["erp"]
                erp = {k: v for k, v in top.items() if k not in ("url", "password_env")}
                erp["password_env"] = top.get("password_env") or company_password_env(
                    str(entry.get("name") or ""))
                entry = {**entry, "erp": {**erp, **own}}
            companies.append(entry)
        raw["companies"] = companies
        if "url" not in top and (raw.get("erp") is None or isinstance(raw.get("erp"), dict)):
            raw["erp"] = {**top, "url": GROUP_PLACEHOLDER_URL}
        return raw

    # -- derived --------------------------------------------------------------------------------
    @property
    def company_name(self) -> str:
        """The company this config is for: its entry's name, or the dealer (one company)."""
        return self.company or self.dealer

    @property
    def lock_dir(self) -> Path:
        """Where the run lock lives: a group's night holds one lock for all its companies."""
        return self.group_state or self.state.dir

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
        if info.exclude:  # the loader's own (config_path, a group's company): not settings
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
    group_problems = company_problems(config, data, path)
    if group_problems:
        raise ConfigError(_summary(group_problems))
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


def config_from_dict(raw: dict[str, Any], base_dir: Path) -> Config:
    """Build a Config from a mapping (for embedding and tests); paths relative to ``base_dir``."""
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems = [Problem(base_dir, None, None, ".".join(map(str, e["loc"])), e["msg"])
                    for e in exc.errors(include_url=False)]
        raise ConfigError(_summary(problems)) from None
    group_problems = company_problems(config, raw, base_dir / "config.yaml")
    if group_problems:
        raise ConfigError(_summary(group_problems))
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
    for company in config.companies:
        company.erp.url = _resolve_sqlite_url(company.erp.url, base)
        company.rules = absolute(company.rules) if company.rules is not None else None
        if company.state is not None:
            company.state.dir = absolute(company.state.dir)
            if company.state.url:
                company.state.url = _resolve_sqlite_url(company.state.url, base)
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


# -- a dealer group ---------------------------------------------------------------------------------
def company_problems(config: Config, data: Any, path: Path) -> list[Problem]:
    """What makes a group unworkable though every entry is valid on its own: two companies of
    one name (--company, folders) or one database (it would be written twice a night), and a
    shared state database (each company keeps a store of its own)."""
    problems: list[Problem] = []
    names: dict[str, int] = {}
    urls: dict[str, int] = {}
    for i, company in enumerate(config.companies):
        line, col = position(data, ("companies", i, "name"))
        for key, seen, what in ((slug(company.name), names, "name"),
                                (company.erp.url, urls, "database (erp.url)")):
            if key in seen:
                problems.append(Problem(path, line, col, f"companies[{i}]",
                                        f"{company.name!r} has the same {what} as "
                                        f"companies[{seen[key]}]: each company needs its own"))
            seen.setdefault(key, i)
        if config.state.url and (company.state is None or not company.state.url):
            problems.append(Problem(path, line, col, f"companies[{i}].state.url",
                                    "state.url is set, and a group keeps one state store per "
                                    "company: give this company its own state: {url: ...}"))
    return problems


def company_configs(config: Config, only: typing.Sequence[str] = ()) -> list[Config]:
    """One config per company, in file order; ``only`` (names, any case) picks some. A config
    without ``companies:`` is its own one company, named after ``dealer:``."""
    wanted = {name.casefold() for name in only}
    known = [c.name for c in config.companies] or [config.company_name]
    unknown = sorted(wanted - {name.casefold() for name in known})
    if unknown:
        where = config.config_path.name if config.config_path else "the config"
        raise ConfigError(f"no company named {', '.join(unknown)} in {where} (its companies: "
                          f"{', '.join(known)})")
    if not config.companies:
        return [config]
    return [for_company(config, c) for c in config.companies
            if not wanted or c.name.casefold() in wanted]


def for_company(config: Config, company: CompanySettings) -> Config:
    """The config of one company: its own sections where it has them, the top level's
    otherwise, and a state store of its own (``<state.dir>/companies/<name>``)."""
    digest = config.digest.model_copy(
        update=company.digest.model_dump(exclude_none=True) if company.digest else {})
    state = company.state or StateSettings(dir=config.state.dir / "companies" / slug(company.name),
                                           password_env=config.state.password_env)
    return config.model_copy(update={
        "erp": company.erp, "rules": company.rules or config.rules,
        "write": company.write or config.write, "digest": digest, "state": state,
        "companies": [], "company": company.name, "dealer": company.name,
        "group_state": config.state.dir,
        "in_group_digest": company.digest is None or company.digest.to is None})
