"""Passwords: from the environment, else the OS keyring; never in anything the tool writes.

The keyring is an in-memory backend set by each test (this machine has no OS keyring); a broken
backend must give one clear message, and no keyring at all means "not set", as before.
"""

from __future__ import annotations

import email
import email.policy
import gzip
import itertools
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.errors import KeyringLocked, PasswordDeleteError

from keyservices.cli import cli
from keyservices.config import Config, load_config

from .conftest import ErpBuilder


class MemoryKeyring(KeyringBackend):
    """A keyring in a dict: what Windows Credential Manager is for one account. No ``priority``:
    keyring registers every subclass, and one with a priority would become every later test's
    default backend."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError("no such password")


class BrokenKeyring(KeyringBackend):
    """A backend that is there but fails (locked, D-Bus gone, access denied)."""

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("the collection is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringLocked("the collection is locked")

    def delete_password(self, service: str, username: str) -> None:
        raise KeyringLocked("the collection is locked")


class PlaintextKeyring(MemoryKeyring):
    """Named like keyrings.alt's file backend, which keeps every password base64-encoded in a
    file that anyone who can read the file can read."""

    file_path = "/home/svc/.local/share/python_keyring/keyring_pass.cfg"


class ChainOf(MemoryKeyring):
    """Like keyring's ChainerBackend: several backends, the first that holds an entry wins."""

    def __init__(self, *backends: KeyringBackend) -> None:
        super().__init__()
        self.backends = list(backends)

    def get_password(self, service: str, username: str) -> str | None:
        found = (b.get_password(service, username) for b in self.backends)
        return next((value for value in found if value is not None), None)

    def set_password(self, service: str, username: str, password: str) -> None:
        self.backends[0].set_password(service, username, password)


@pytest.fixture
def use_keyring() -> Iterator[Any]:
    """Install a keyring backend for one test and put the previous one back."""
    before = keyring.get_keyring()

    def install(backend: KeyringBackend) -> KeyringBackend:
        keyring.set_keyring(backend)
        return backend

    yield install
    keyring.set_keyring(before)


@pytest.fixture
def memory_keyring(use_keyring: Any) -> MemoryKeyring:
    return use_keyring(MemoryKeyring())


@pytest.fixture(autouse=True)
def no_password_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KEYSERVICES_ERP_PASSWORD", "KEYSERVICES_SMTP_PASSWORD", "KS_STATE_PW"):
        monkeypatch.delenv(name, raising=False)


def server_config(tmp_path: Path, extra: str = "") -> Path:
    """An ERP on a database server (a password is needed), and an SMTP login."""
    import shutil

    from keyservices.resources import example_rules_dir

    shutil.copytree(example_rules_dir(), tmp_path / "rules")
    path = tmp_path / "config.yaml"
    path.write_text("erp: {url: 'postgresql://ks@127.0.0.1:1/co'}\n"
                    "smtp: {host: 127.0.0.1, username: ks}\n" + extra, encoding="utf-8")
    return path


def sources(path: Path) -> dict[str, tuple[str, str]]:
    out = CliRunner().invoke(cli, ["config", "show", "-c", str(path), "--json"])
    assert out.exit_code == 0, out.output
    return {r["key"]: (r["value"], r["source"]) for r in json.loads(out.output)
            if r["key"].endswith("password)")}


# -- where a password comes from -------------------------------------------------------------------
def test_the_environment_wins_over_the_keyring(tmp_path: Path, memory_keyring: MemoryKeyring,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    memory_keyring.set_password("keyservices", "KEYSERVICES_ERP_PASSWORD", "from-keyring")
    monkeypatch.setenv("KEYSERVICES_ERP_PASSWORD", "from-env")
    config = load_config(server_config(tmp_path))
    assert config.erp_password() == "from-env"
    assert sources(config.config_path)["(erp password)"] == (  # type: ignore[index]
        "set", "env KEYSERVICES_ERP_PASSWORD")


def test_the_keyring_is_used_when_the_variable_is_absent(
        tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    memory_keyring.set_password("keyservices", "KEYSERVICES_ERP_PASSWORD", "from-keyring")
    memory_keyring.set_password("keyservices", "MY_SMTP_PW", "smtp-from-keyring")
    path = tmp_path / "config.yaml"
    path.write_text("erp: {url: 'postgresql://ks@127.0.0.1:1/co'}\n"
                    "smtp: {host: 127.0.0.1, username: ks, password_env: MY_SMTP_PW}\n",
                    encoding="utf-8")
    config = load_config(path)
    assert config.erp_password() == "from-keyring"
    assert config.smtp_password() == "smtp-from-keyring"
    shown = sources(path)
    assert shown == {"(erp password)": ("set", "keyring"), "(smtp password)": ("set", "keyring")}
    assert "from-keyring" not in repr(config.password("erp")) + str(config.password("erp"))


def test_neither_is_not_set_as_before(tmp_path: Path, memory_keyring: MemoryKeyring,
                                      use_keyring: Any) -> None:
    config = load_config(server_config(tmp_path))
    assert config.erp_password() is None and config.smtp_password() is None
    assert sources(config.config_path)["(erp password)"] == ("not set", "not set")  # type: ignore
    use_keyring(fail.Keyring())  # no keyring at all (a Linux server without a Secret Service)
    assert config.erp_password() is None and config.password("erp").source == "not set"


def test_sqlite_needs_no_password_and_never_asks_the_keyring(tmp_path: Path,
                                                             use_keyring: Any) -> None:
    use_keyring(BrokenKeyring())
    path = tmp_path / "config.yaml"
    path.write_text("erp: {url: 'sqlite:///erp.sqlite'}\n", encoding="utf-8")
    config = load_config(path)
    assert config.erp_password() is None
    assert config.password("erp").source == "not needed (SQLite)"


def test_a_broken_keyring_gives_one_clear_message(tmp_path: Path, use_keyring: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    use_keyring(BrokenKeyring())
    path = server_config(tmp_path)
    assert sources(path)["(erp password)"] == ("not set", "keyring error")
    runner = CliRunner()
    result = runner.invoke(cli, ["run", "--dry-run", "-c", str(path)])
    assert result.exit_code == 1, result.output
    assert ("Error: the password could not be read from the keyring (service 'keyservices', "
            "user 'KEYSERVICES_ERP_PASSWORD'): KeyringLocked: the collection is locked. Set the "
            "environment variable KEYSERVICES_ERP_PASSWORD instead") in result.output
    assert "Traceback" not in result.output
    monkeypatch.setenv("KEYSERVICES_ERP_PASSWORD", "from-env")  # the variable never asks it
    again = runner.invoke(cli, ["run", "--dry-run", "-c", str(path)])
    assert again.exit_code == 1 and "keyring" not in again.output
    assert "database error" in again.output or "127.0.0.1" in again.output


# -- keyservices secret set / delete ---------------------------------------------------------------
def test_secret_set_stores_under_the_configured_name_and_delete_removes_it(
        tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    path = server_config(tmp_path, "state: {url: 'postgresql://ks@db/state', "
                                   "password_env: KS_STATE_PW}\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["secret", "set", "erp", "--stdin", "-c", str(path)],
                           input="Erp-Secret-1\n")
    assert result.exit_code == 0, result.output
    assert "service 'keyservices', user 'KEYSERVICES_ERP_PASSWORD'" in result.output
    assert "Erp-Secret-1" not in result.output
    typed = runner.invoke(cli, ["secret", "set", "state", "-c", str(path)],
                          input="St4te-Pw\nSt4te-Pw\n")
    assert typed.exit_code == 0, typed.output
    assert "St4te-Pw" not in typed.output
    smtp = runner.invoke(cli, ["secret", "set", "smtp", "--stdin", "-c", str(path), "--json"],
                         input="Smtp-Pw\n")
    assert json.loads(smtp.output)["user"] == "KEYSERVICES_SMTP_PASSWORD"
    assert memory_keyring.entries == {("keyservices", "KEYSERVICES_ERP_PASSWORD"): "Erp-Secret-1",
                                      ("keyservices", "KS_STATE_PW"): "St4te-Pw",
                                      ("keyservices", "KEYSERVICES_SMTP_PASSWORD"): "Smtp-Pw"}
    config = load_config(path)
    state_url = config.state_url
    assert isinstance(state_url, sa.engine.URL) and state_url.password == "St4te-Pw"
    assert "St4te-Pw" not in f"{state_url} {state_url!r}"
    gone = runner.invoke(cli, ["secret", "delete", "erp", "-c", str(path)])
    assert gone.exit_code == 0 and "Deleted the erp password" in gone.output
    again = runner.invoke(cli, ["secret", "delete", "erp", "-c", str(path)])
    assert again.exit_code == 0 and "nothing to delete" in again.output
    assert ("keyservices", "KEYSERVICES_ERP_PASSWORD") not in memory_keyring.entries


def test_secret_set_refuses_what_the_config_does_not_name(tmp_path: Path,
                                                          memory_keyring: MemoryKeyring) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("erp: {url: 'postgresql://ks@db/co'}\n", encoding="utf-8")
    runner = CliRunner()
    smtp = runner.invoke(cli, ["secret", "set", "smtp", "--stdin", "-c", str(path)], input="x\n")
    assert smtp.exit_code == 2 and "no smtp: section" in smtp.output
    state = runner.invoke(cli, ["secret", "set", "state", "--stdin", "-c", str(path)], input="x\n")
    assert state.exit_code == 2 and "state.password_env is not set" in state.output
    empty = runner.invoke(cli, ["secret", "set", "erp", "--stdin", "-c", str(path)], input="\n")
    assert empty.exit_code == 2 and "nothing stored" in empty.output
    assert memory_keyring.entries == {}


def test_secret_set_with_a_broken_keyring_says_what_to_do(tmp_path: Path,
                                                          use_keyring: Any) -> None:
    use_keyring(BrokenKeyring())
    path = server_config(tmp_path)
    result = CliRunner().invoke(cli, ["secret", "set", "erp", "--stdin", "-c", str(path)],
                                input="pw\n")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "could not be stored in the keyring (service 'keyservices', user " \
           "'KEYSERVICES_ERP_PASSWORD'): KeyringLocked" in result.output
    assert "environment variable KEYSERVICES_ERP_PASSWORD" in result.output


# -- a keyring backend that keeps passwords in a plain file ---------------------------------------
def test_storing_in_a_plaintext_keyring_warns_and_says_what_to_do(tmp_path: Path,
                                                                  use_keyring: Any) -> None:
    backend = use_keyring(PlaintextKeyring())
    path = server_config(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["secret", "set", "erp", "--stdin", "-c", str(path)],
                           input="Erp-Pw-1\n")
    assert result.exit_code == 0, result.output
    assert backend.entries == {("keyservices", "KEYSERVICES_ERP_PASSWORD"): "Erp-Pw-1"}
    assert "Stored the erp password" in result.stdout
    warning = result.stderr
    assert warning.startswith("Warning: the password (service 'keyservices', user "
                              "'KEYSERVICES_ERP_PASSWORD') is kept by PlaintextKeyring")
    assert "unencrypted" in warning and PlaintextKeyring.file_path in warning
    assert "Credential Manager" in warning and "environment variable KEYSERVICES_ERP_PASSWORD" \
        in warning
    as_json = runner.invoke(cli, ["secret", "set", "erp", "--stdin", "-c", str(path), "--json"],
                            input="Erp-Pw-2\n")
    assert "unencrypted" in json.loads(as_json.stdout)["warning"]
    assert "Erp-Pw" not in result.output + as_json.output


def test_an_os_store_gets_no_warning(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    path = server_config(tmp_path)
    result = CliRunner().invoke(cli, ["secret", "set", "erp", "--stdin", "-c", str(path),
                                      "--json"], input="pw\n")
    assert result.exit_code == 0 and json.loads(result.stdout)["warning"] is None
    assert result.stderr == ""
    memory_keyring.set_password("keyservices", "KEYSERVICES_SMTP_PASSWORD", "pw")
    shown = CliRunner().invoke(cli, ["config", "show", "-c", str(path)])
    assert shown.exit_code == 0 and "unencrypted" not in shown.output


def test_reading_from_a_plaintext_keyring_warns_in_config_show_and_check(
        tmp_path: Path, use_keyring: Any) -> None:
    backend = use_keyring(PlaintextKeyring())
    backend.set_password("keyservices", "KEYSERVICES_SMTP_PASSWORD", "Smtp-Pw-1")
    erp = ErpBuilder(tmp_path / "erp.sqlite")
    try:
        erp.customer("COP001")
        from .conftest import write_config

        path = write_config(tmp_path, erp.url, extra="smtp: {host: 127.0.0.1, username: ks}\n")
        runner = CliRunner()
        shown = runner.invoke(cli, ["config", "show", "-c", str(path), "--json"])
        assert shown.exit_code == 0, shown.output
        rows = {r["key"]: r["source"] for r in json.loads(shown.stdout)}
        assert rows["(smtp password)"] == "keyring"  # the source stays as it was
        assert "user 'KEYSERVICES_SMTP_PASSWORD') is kept by PlaintextKeyring" in shown.stderr
        # once per process and backend (each command is a process of its own): a new backend
        use_keyring(PlaintextKeyring()).set_password("keyservices", "KEYSERVICES_SMTP_PASSWORD",
                                                     "Smtp-Pw-1")
        checked = runner.invoke(cli, ["check", "-c", str(path), "--json"])
        assert json.loads(checked.stdout)["passwords"]["smtp"] == "keyring"
        assert "is kept by PlaintextKeyring, which stores it unencrypted" in checked.stderr
        assert "Smtp-Pw-1" not in shown.output + checked.output
    finally:
        erp.engine.dispose()


def test_the_nightly_read_warns_once_in_the_log(tmp_path: Path, use_keyring: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    from keyservices.credentials import find_password

    plain = PlaintextKeyring()
    use_keyring(ChainOf(MemoryKeyring(), plain))
    plain.set_password("keyservices", "KS_PW", "x")
    with caplog.at_level("WARNING", logger="keyservices"):
        assert find_password("KS_PW").value == "x" and find_password("KS_PW").value == "x"
    (record,) = caplog.records
    assert "is kept by PlaintextKeyring" in record.getMessage()
    caplog.clear()
    use_keyring(ChainOf(MemoryKeyring(), PlaintextKeyring()))  # held by the OS store: fine
    keyring.get_keyring().backends[0].set_password("keyservices", "KS_PW", "y")
    with caplog.at_level("WARNING", logger="keyservices"):
        assert find_password("KS_PW").value == "y"
    assert caplog.records == []


# -- no password in anything the tool writes -------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.raw: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.raw.append(envelope.content)
        return "250 OK"


def smtp_server(port: int, passwords: set[str]) -> tuple[Any, Inbox]:
    """A real SMTP server that wants a login (AUTH over plain text, as a LAN relay may)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password.decode() in passwords
        return AuthResult(success=ok)

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, auth_require_tls=False,
                            authenticator=authenticator)
    controller.start()
    return controller, inbox


_states = itertools.count()


def everything_written(root: Path, state_url: Any) -> dict[str, bytes]:
    """Every file under ``root`` (gzip opened), and every row of the state store."""
    out: dict[str, bytes] = {}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            out[str(path)] = gzip.decompress(data) if path.suffix == ".gz" else data
    engine = sa.create_engine(state_url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                rows = conn.execute(sa.select(table)).all()
                out[f"state table {table.name}"] = repr(rows).encode()
    finally:
        engine.dispose()
    return out


@pytest.mark.parametrize("where", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_no_password_in_any_output_log_state_row_or_mail(
        where: str, tmp_path: Path, request: pytest.FixtureRequest,
        memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import postgres_erp, write_config

    state_db = None
    if where == "sqlite":
        erp_iter: Iterator[ErpBuilder] = iter([ErpBuilder(tmp_path / "erp.sqlite")])
        state_extra = ""
    else:
        server = request.getfixturevalue("pg_server")
        erp_iter = postgres_erp(server)
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        state_db = f"ks_state_{os.getpid()}_{next(_states)}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{state_db}"'))
        state_url = sa.engine.make_url(server).set(database=state_db)
        state_extra = (f"state:\n  url: '{state_url.render_as_string(hide_password=False)}'\n"
                       "  password_env: KS_STATE_PW\n")
    erp = next(erp_iter)
    try:
        cid = erp.customer("COP001", "Copier Customer")
        erp.equipment(cid, "MFP-A3-CO-03")
        erp.customer("NOCFG1", "No Config", config=None)
        port = free_port()
        passwords = {"env": {"KEYSERVICES_ERP_PASSWORD": "Erp-Env-Pw-6Q1x",
                             "KEYSERVICES_SMTP_PASSWORD": "Smtp-Env-Pw-8R2y",
                             "KS_STATE_PW": "State-Env-Pw-4T3z"},
                     "keyring": {"KEYSERVICES_ERP_PASSWORD": "Erp-Kr-Pw-1A9b",
                                 "KEYSERVICES_SMTP_PASSWORD": "Smtp-Kr-Pw-2C8d",
                                 "KS_STATE_PW": "State-Kr-Pw-3E7f"}}
        every = {pw for phase in passwords.values() for pw in phase.values()}
        path = write_config(tmp_path, erp.url, schema=erp.schema, extra=(
            f"  admins: [it@example.com]\nsmtp:\n  host: 127.0.0.1\n  port: {port}\n"
            f"  security: none\n  username: ks\n  timeout: 5\n{state_extra}"))
        controller, inbox = smtp_server(port, every)
        outputs: list[str] = []
        runner = CliRunner()

        def invoke(*args: str) -> Any:
            result = runner.invoke(cli, [*args, "-c", str(path)])
            outputs.append(f"$ {' '.join(args)}\n{result.output}{result.stderr}")
            return result

        try:
            for phase, values in passwords.items():
                for name, value in values.items():
                    if phase == "env":
                        monkeypatch.setenv(name, value)
                    else:
                        monkeypatch.delenv(name)
                        memory_keyring.set_password("keyservices", name, value)
                shown = invoke("config", "show")
                assert shown.exit_code == 0, shown.output
                source = "keyring" if phase == "keyring" else "env KEYSERVICES_SMTP_PASSWORD"
                assert "(smtp password)" in shown.output and source in shown.output
                checked = invoke("check", "--json")
                assert checked.exit_code == 0, checked.output
                assert json.loads(checked.output)["passwords"]["smtp"] == source
                ran = invoke("run")
                assert ran.exit_code == 0, ran.output
                dry = invoke("run", "--dry-run", "--as-of", "2026-11-24")
                assert dry.exit_code == 0, dry.output
                assert invoke("status").exit_code == 0
                assert invoke("history").exit_code == 0
                rules = tmp_path / "rules" / "services.yaml"
                good = rules.read_text(encoding="utf-8")
                rules.write_text("services:\n  - code: [CPY\n", encoding="utf-8")
                failed = invoke("run")
                rules.write_text(good, encoding="utf-8")
                assert failed.exit_code == 2, failed.output
        finally:
            controller.stop()
        config: Config = load_config(path)
        written = everything_written(tmp_path, config.state_url)
        written["command output"] = "\n".join(outputs).encode()
        for i, raw in enumerate(inbox.raw):
            written[f"received mail {i}"] = raw
        assert list(tmp_path.glob("outbox/**/*failure-exit2.eml"))
        assert list(config.state.dir.glob("keyservices*.log*"))  # the log file is searched too
        subjects = [email.message_from_bytes(r, policy=email.policy.default)["Subject"]
                    for r in inbox.raw]
        assert sum("FAILED" in s for s in subjects) == 2 and len(subjects) >= 4
        leaks = [(name, pw) for name, data in written.items() for pw in every
                 if pw.encode() in data]
        assert not leaks, leaks
    finally:
        for _ in erp_iter:  # the PostgreSQL fixture's clean-up
            pass
        erp.engine.dispose()
        if state_db is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE "{state_db}" WITH (FORCE)'))
            admin.dispose()
