"""Inputs at the tool's seams (issue #23): secrets in a database URL, digest templates that would
run code, ERP names reaching a terminal through the exports, a PostgreSQL row lock, and YAML files
too deep or too large to parse.

Each test of a defect failed before the change it covers; the few that passed before guard what
must not change (URLs without a secret, the PWD= forms refused already, CSV into a pipe or file).
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from keyservices.cli import cli
from keyservices.config import load_config
from keyservices.credentials import mask_url, url_password_problem
from keyservices.errors import ConfigError, RulesError
from keyservices.resources import templates_dir

from .conftest import ATTR_ID, ErpBuilder, write_config

SECRET = "Zq7Kx9-hunter"


# -- 1. every libpq / ODBC secret keyword is a password ------------------------------------------
def odbc(text: str) -> str:
    return "mssql+pyodbc:///?odbc_connect=" + quote_plus(text)


SECRET_URLS = [
    f"postgresql://ks@db/co?sslpassword={SECRET}",  # libpq: the client key's passphrase
    f"postgresql+psycopg://ks@db/co?sslmode=verify-full&sslkey=/etc/ks/k.pem&SSLPassword={SECRET}",
    f"postgresql://ks@db/co?passfile=/home/ks/{SECRET}.pgpass",  # libpq: a password file
    # msodbcsql: ClientKey=file:<path>,<passphrase>
    (f"mssql+pyodbc://ks@erp/co?driver=ODBC+Driver+18+for+SQL+Server"
     f"&ClientCertificate=file:/c.pem&ClientKey=file:/k.pem,{SECRET}"),
    odbc(f"DRIVER={{ODBC Driver 18 for SQL Server}};SERVER=erp;ClientCertificate=file:/c.pem;"
         f"ClientKey=file:/k.pem,{SECRET}"),
    odbc(f"DRIVER={{ODBC Driver 18 for SQL Server}};SERVER=erp;ClientKey={{file:/k.pem,{SECRET}}}"),
    # Entra ID: a service principal's secret is the PWD
    odbc(f"DRIVER={{ODBC Driver 18 for SQL Server}};SERVER=erp;"
         f"Authentication=ActiveDirectoryServicePrincipal;UID=app-id;PWD={SECRET}"),
    (f"mssql+pyodbc://app-id@erp/co?driver=x&Authentication=ActiveDirectoryServicePrincipal"
     f"&PWD={SECRET}"),
    # Always Encrypted with a Key Vault client secret
    odbc(f"DRIVER={{ODBC Driver 18 for SQL Server}};SERVER=erp;KeyStoreAuthentication="
         f"KeyVaultClientSecret;KeyStorePrincipalId=app-id;KeyStoreSecret={SECRET}"),
    (f"mssql+pyodbc://ks@erp/co?driver=x&KeyStoreAuthentication=KeyVaultClientSecret"
     f"&KeyStoreSecret={SECRET}"),
    (f"mssql+pyodbc://ks@erp/co?driver=x&Authentication=ActiveDirectoryServicePrincipal"
     f"&client_secret={SECRET}"),
]
SAFE_URLS = [
    ("postgresql://ks@db/co?sslmode=verify-full&sslcert=/etc/ks/c.pem&sslkey=/etc/ks/k.pem"
     "&sslrootcert=/etc/ks/ca.pem"),
    ("mssql+pyodbc://ks@erp/co?driver=ODBC+Driver+18+for+SQL+Server"
     "&ClientCertificate=file:/c.pem&ClientKey=file:/k.pem"),
    "mssql+pyodbc://erp/co?driver=ODBC+Driver+18+for+SQL+Server&Authentication=ActiveDirectoryMsi",
    ("mssql+pyodbc://app-id@erp/co?driver=ODBC+Driver+18+for+SQL+Server"
     "&Authentication=ActiveDirectoryServicePrincipal"),  # the secret from password_env
    odbc("DRIVER={ODBC Driver 18 for SQL Server};SERVER=erp;Trusted_Connection=yes"),
]


def no_secret(text: str) -> None:
    for part in (SECRET, "Zq7Kx9", "hunter"):
        assert part not in text, text


@pytest.mark.parametrize("url", SECRET_URLS)
def test_a_secret_keyword_in_a_url_is_masked(url: str) -> None:
    from keyservices.erp import display_url

    for shown in (mask_url(url), display_url(url)):
        no_secret(shown)
        assert "%2A%2A%2A" in shown, shown  # *** (the query is URL-encoded)


@pytest.mark.parametrize("url", SECRET_URLS)
@pytest.mark.parametrize("key", ["erp", "state"])
def test_a_secret_keyword_in_a_url_is_refused_when_the_config_loads(
        tmp_path: Path, key: str, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (f"erp: {{url: '{url}'}}\n" if key == "erp" else
            f"erp: {{url: 'sqlite:///erp.sqlite'}}\nstate:\n  url: '{url}'\n")
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{key}.url: the URL contains a password") as err:
        load_config(path)
    no_secret(str(err.value))
    assert f"{path}:{1 if key == 'erp' else 3}:" in str(err.value)
    # the same URL from the environment
    path.write_text("erp: {url: 'sqlite:///erp.sqlite'}\n", encoding="utf-8")
    monkeypatch.setenv(f"KEYSERVICES_{key.upper()}_URL", url)
    with pytest.raises(ConfigError, match=f"env KEYSERVICES_{key.upper()}_URL: {key}.url: "
                                          "the URL contains a password") as err:
        load_config(path)
    no_secret(str(err.value))


@pytest.mark.parametrize("url", SECRET_URLS)
def test_config_show_never_prints_a_secret_keyword(tmp_path: Path, url: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"erp: {{url: '{url}'}}\n", encoding="utf-8")
    for args in (["config", "show"], ["config", "show", "--json"], ["check"]):
        result = CliRunner().invoke(cli, [*args, "-c", str(path)])
        assert result.exit_code == 2, result.output
        assert "the URL contains a password" in result.output
        no_secret(result.output)


@pytest.mark.parametrize("url", SAFE_URLS)
def test_urls_naming_key_files_or_passwordless_authentication_are_accepted(url: str) -> None:
    assert url_password_problem(url) is None
    assert mask_url(url) == sa.engine.make_url(url).render_as_string(hide_password=False)


# -- 2. digest templates render in a sandbox -----------------------------------------------------
PAYLOAD = "{{{{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}}}"


def hostile_templates(tmp_path: Path, marker: Path, *, hidden: bool = False) -> Path:
    """The built-in templates, the HTML one with a payload that runs ``touch marker``; hidden:
    only in a branch the preflight's sample digest does not take (a real run has a run id)."""
    folder = tmp_path / "templates"
    shutil.copytree(templates_dir(), folder)
    html = folder / "digest.html.j2"
    payload = PAYLOAD.format(marker=marker)
    if hidden:
        payload = "{% if d.run_id %}" + payload + "{% endif %}"
    html.write_text(html.read_text(encoding="utf-8").replace("</body>", payload + "</body>", 1),
                    encoding="utf-8")
    return folder


@pytest.mark.parametrize("hidden", [False, True], ids=["rendered", "in-an-untaken-branch"])
def test_a_template_that_reaches_python_internals_stops_the_run_before_any_write(
        tmp_path: Path, erp: ErpBuilder, hidden: bool) -> None:
    marker = tmp_path / "pwned"
    folder = hostile_templates(tmp_path, marker, hidden=hidden)
    cid = erp.customer("COP001", "Copier Customer")
    erp.equipment(cid, "MFP-A3-CO-03")
    path = write_config(tmp_path, erp.url, f"  templates: {folder}\nmode: live\n")
    before = erp.dump()
    result = CliRunner().invoke(cli, ["run", "-c", str(path)])
    assert not marker.exists(), "the template ran a shell command"
    assert result.exit_code == 2, result.output
    assert f"{folder / 'digest.html.j2'}:" in result.output
    assert "not allowed in a digest template" in result.output
    assert "__init__" in result.output
    assert erp.dump() == before  # refused before the ERP was written


def test_an_unsafe_template_met_only_when_rendering_is_a_config_error_naming_the_file(
        tmp_path: Path) -> None:
    """What the static check cannot see (an attribute name built at render time) the sandbox
    refuses when it renders: a ConfigError (exit 2) naming the template, no command run."""
    from keyservices.outputs.digest import render

    from .test_digest_render import data

    marker = tmp_path / "pwned"
    folder = tmp_path / "templates"
    shutil.copytree(templates_dir(), folder)
    text = folder / "digest.txt.j2"
    text.write_text(text.read_text(encoding="utf-8")
                    + "{% set i = '_' ~ '_init__' %}{% set g = '_' ~ '_globals__' %}"
                    f"{{{{ (cycler | attr(i) | attr(g)).os.popen('touch {marker}').read() }}}}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"digest\.txt\.j2(:\d+)?: not allowed in a digest "
                                          r"template") as err:
        render(data(), folder)
    assert err.value.exit_code == 2
    assert not marker.exists()


def test_the_built_in_templates_render_in_the_sandbox_as_before(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same digest from the sandboxed environment and from a plain one set up alike."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    from keyservices.outputs import digest as digest_mod

    from .test_digest_render import data

    folder = digest_mod.find_templates_dir()
    assert isinstance(digest_mod.template_environment(folder), SandboxedEnvironment)
    sandboxed = digest_mod.render(data(), folder)
    plain = Environment(loader=FileSystemLoader(str(folder)), undefined=StrictUndefined,
                        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
                        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    plain.filters["pct"] = lambda x: f"{x * 100:.0f}%"
    plain.filters["plural"] = digest_mod.plural
    monkeypatch.setattr(digest_mod, "template_environment", lambda _folder: plain)
    unsandboxed = digest_mod.render(data(), folder)
    assert sandboxed.html == unsandboxed.html and sandboxed.text == unsandboxed.text
    assert sandboxed.subject == unsandboxed.subject


# -- 3. exports on a terminal: no raw control character ------------------------------------------
RAW_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(scope="module")
def names_dealer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from .names_dealer import build

    return build(tmp_path_factory.mktemp("names-dealer"))


def export(config: Path, what: str, monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str], *, tty: bool) -> str:
    from .names_dealer import NIGHT3

    with monkeypatch.context() as patch:
        patch.setattr("sys.stdout.isatty", lambda: tty)
        cli.main(["export", what, "--as-of", str(NIGHT3), "-c", str(config)],
                 standalone_mode=False)
        return capsys.readouterr().out


@pytest.mark.parametrize("what", ["opportunities", "alerts"])
def test_an_export_on_a_terminal_shows_control_characters_escaped(
        names_dealer: Path, what: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    shown = export(names_dealer, what, monkeypatch, capsys, tty=True)
    rows = shown.split("\r\n")
    assert len(rows) > 3 and rows[-1] == ""
    for row in rows:
        found = RAW_CONTROL.search(row)
        assert found is None, f"raw {found.group()!r} in {row!r}"
    assert "Bell\\x07 and\\rCR" in shown and "Line\\nbreak" in shown
    assert "\\x1b[2J\\x1b[HCleared" in shown
    assert "'=HYPERLINK(" in shown  # the CSV-injection guard still shows


@pytest.mark.parametrize("what", ["opportunities", "alerts"])
def test_an_export_to_a_pipe_or_file_keeps_the_data(
        names_dealer: Path, what: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    piped = export(names_dealer, what, monkeypatch, capsys, tty=False)
    assert "Bell\x07 and\rCR" in piped and "\x1b[2J\x1b[HCleared" in piped
    assert "'=HYPERLINK(" in piped and '"=HYPERLINK' not in piped
    out = tmp_path / f"{what}.csv"
    from .names_dealer import NIGHT3

    cli.main(["export", what, "--as-of", str(NIGHT3), "--out", str(out), "-c",
              str(names_dealer)], standalone_mode=False)
    assert out.read_bytes().decode("utf-8-sig") == piped.lstrip("\ufeff")


def test_terminal_csv_escapes_inside_cells_and_keeps_row_ends() -> None:
    from keyservices.cli.terminal import terminal_csv

    text = 'number,name\r\nC1,"a\rb"\r\nC2,"two\r\nlines"\r\nC3,\x1b[2Jx\r\n'
    assert terminal_csv(text) == "number,name\r\nC1,a\\rb\r\nC2,two\\r\\nlines\r\nC3,\\x1b[2Jx\r\n"
    assert terminal_csv("") == ""


# -- 4. PostgreSQL: a locked row fails the write within erp.lock_timeout_seconds -------------------
@pytest.mark.postgres
def test_a_locked_value_row_fails_the_postgresql_write_instead_of_hanging(
        pg_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import postgres_erp

    builder = postgres_erp(pg_server)
    erp = next(builder)
    blocker = sa.create_engine(erp.url)
    try:
        cid = erp.customer("COP001", "Copier Customer")
        erp.equipment(cid, "MFP-A3-CO-03")
        path = write_config(tmp_path, erp.url, "mode: live\n", schema=erp.schema)
        monkeypatch.setenv("KEYSERVICES_ERP_LOCK_TIMEOUT_SECONDS", "1")
        cp = erp.t["ARCustomerCustomProperties"]
        outcome: dict[str, Any] = {}

        def night() -> None:
            started = time.monotonic()
            outcome["result"] = CliRunner().invoke(cli, ["run", "-c", str(path)])
            outcome["seconds"] = time.monotonic() - started

        with blocker.connect() as held:  # e-automate, posting: the value row locked
            held.execute(sa.select(cp.c.TextVal).where(
                cp.c.CustomerID == cid, cp.c.ShAttributeID == ATTR_ID).with_for_update())
            thread = threading.Thread(target=night, daemon=True)
            thread.start()
            thread.join(30)
            hung = thread.is_alive()
            held.rollback()  # lets a hung run finish, so the test ends either way
        thread.join(60)
        assert not hung, "the run waited on the row lock for 30 s"
        result = outcome["result"]
        assert result.exit_code == 1, result.output
        assert "erp.lock_timeout_seconds" in result.output
        assert "lock timeout" in result.output
        assert outcome["seconds"] < 25
        assert erp.value(cid) is None  # nothing written
        # the run lock was released: the next night runs and writes
        again = CliRunner().invoke(cli, ["run", "-c", str(path)])
        assert again.exit_code == 0, again.output
        assert erp.value(cid)
    finally:
        blocker.dispose()
        for _ in builder:
            pass


@pytest.mark.postgres
def test_every_postgresql_connection_gets_the_lock_timeout(pg_server: str) -> None:
    from keyservices.erp.connection import connect

    engine = connect(pg_server, lock_timeout_seconds=7)
    try:
        with engine.connect() as first, engine.connect() as second:
            for conn in (first, second):
                assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "7s"
                assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
        with engine.begin() as conn:  # the setting survives a rollback
            conn.exec_driver_sql("SELECT 1")
        with engine.connect() as conn:
            conn.rollback()
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "7s"
    finally:
        engine.dispose()


# -- 5. YAML too deep, too large, or an alias bomb, named accurately -------------------------------
def deep(levels: int, style: str) -> str:
    if style == "flow":
        return "erp: {url: 'sqlite:///erp.sqlite'}\ndigest: " + "[" * levels + "]" * levels + "\n"
    return "erp: {url: 'sqlite:///erp.sqlite'}\ndigest:\n  " + "- " * levels + "x\n"  # block


@pytest.mark.parametrize("levels", [300, 2000, 5000])
@pytest.mark.parametrize("style", ["flow", "block"])
def test_yaml_nested_too_deep_is_a_config_problem_naming_the_file(
        tmp_path: Path, levels: int, style: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(deep(levels, style), encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}:\d+:\d+: the values are "
                                          r"nested more than 50 levels deep") as err:
        load_config(path)
    assert err.value.exit_code == 2
    result = CliRunner().invoke(cli, ["config", "show", "-c", str(path)])
    assert result.exit_code == 2 and "nested more than 50 levels deep" in result.output
    assert "Traceback" not in result.output and "RecursionError" not in result.output


def test_deeply_nested_rules_are_a_rules_problem(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text("model_classes: " + "[" * 3000 + "]" * 3000 + "\n",
                                        encoding="utf-8")
    from keyservices.rules import load_rules

    with pytest.raises(RulesError, match=r"deep\.yaml:1:\d+: the values are nested more than 50"):
        load_rules(tmp_path)


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    from keyservices.yamlfile import MAX_DEPTH, YamlProblems, load_yaml

    path = tmp_path / "ok.yaml"
    path.write_text("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n")
    assert load_yaml(path)["a"] is not None
    path.write_text("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n")
    with pytest.raises(YamlProblems, match="nested more than 50 levels"):
        load_yaml(path)


def services_file(count: int) -> str:
    return "services:\n" + "".join(f"  - code: S{i}\n    name: Service {i}\n" for i in range(count))


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    """100,000 services (7 MB): 'too large', said in a second, never an alias bomb."""
    path = tmp_path / "services.yaml"
    path.write_text(services_file(100_000), encoding="utf-8")
    from keyservices.rules import load_rules

    started = time.perf_counter()
    with pytest.raises(RulesError) as err:
        load_rules(tmp_path)
    assert time.perf_counter() - started < 2
    message = str(err.value)
    size = f"{path.stat().st_size / 1e6:.1f} MB"
    assert f"services.yaml: the file is {size}, over the 2 MB a config or rules file may be" \
        in message, message
    assert "alias bomb" not in message and "(*name)" not in message


def test_config_show_on_a_50_mb_config_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    with path.open("w", encoding="utf-8") as f:
        f.write("erp: {url: 'sqlite:///erp.sqlite'}\ndigest:\n  branches:\n")
        line = "    Branch{i}: [manager{i}@example.com]\n"
        i = 0
        while f.tell() < 50_000_000:
            f.write("".join(line.format(i=i + k) for k in range(1000)))
            i += 1000
    started = time.perf_counter()
    result = CliRunner().invoke(cli, ["config", "show", "-c", str(path)])
    assert time.perf_counter() - started < 2
    assert result.exit_code == 2, result.output
    assert f"{path}: the file is {path.stat().st_size / 1e6:.1f} MB, over the 2 MB" \
        in result.output


def test_many_values_without_aliases_are_too_many_not_an_alias_bomb(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keyservices import yamlfile
    from keyservices.rules import load_rules

    monkeypatch.setattr(yamlfile, "MAX_VALUES", 1_000)
    (tmp_path / "services.yaml").write_text(services_file(300), encoding="utf-8")
    with pytest.raises(RulesError) as err:
        load_rules(tmp_path)
    message = str(err.value)
    assert "services.yaml: the file holds more than 1,000 values, the most a config or rules " \
           "file may hold" in message, message
    assert "alias bomb" not in message and "(*name)" not in message


def test_an_alias_bomb_names_the_limit(tmp_path: Path) -> None:
    from .test_config import alias_bomb

    path = tmp_path / "config.yaml"
    path.write_text("erp: {url: 'sqlite:///erp.sqlite'}\ndigest:\n"
                    + alias_bomb("  branches").replace("\n  ", "\n    "), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "the aliases (*name) expand to more than 200,000 values (an alias bomb?), the most " \
           "a config or rules file may hold once expanded" in message, message
