"""A dealer group's config (#25): ``companies:`` entries, what each inherits, what is refused
(with file:line, before any database is touched), and one ERP password per company."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keyring
import pytest
from click.testing import CliRunner

from keyservices.cli import cli
from keyservices.config import company_configs, load_config
from keyservices.errors import ConfigError

from .test_secrets import MemoryKeyring

GROUP = """\
dealer: Acme Group
mode: live
erp:
  connect_timeout: 30
digest:
  to: [group@example.com]
  sales_reps: {"Dana": [dana@example.com]}
companies:
  - name: North
    erp: {url: "sqlite:///north.sqlite"}
  - name: South & Co
    erp: {url: "sqlite:///south.sqlite", password_env: SOUTH_PW}
    rules: rules-south
    write: {max_changes: 5}
    digest: {to: [south@example.com]}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_each_company_is_a_config_of_its_own(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GROUP))
    north, south = company_configs(config)
    assert (north.company_name, south.company_name) == ("North", "South & Co")
    # its own database (relative to the config file), the top level's other erp settings
    assert north.erp.url == f"sqlite:///{(tmp_path / 'north.sqlite').as_posix()}"
    assert north.erp.connect_timeout == south.erp.connect_timeout == 30
    # its own password entry unless it names one
    assert north.erp.password_env == "KEYSERVICES_ERP_PASSWORD_NORTH"
    assert south.erp.password_env == "SOUTH_PW"
    # rules, write and recipients: its own where given, the top level's otherwise
    assert north.rules == tmp_path / "rules" and south.rules == tmp_path / "rules-south"
    assert north.write.max_changes is None and south.write.max_changes == 5
    assert north.digest.to == ["group@example.com"] and south.digest.to == ["south@example.com"]
    assert south.digest.sales_reps == {"Dana": ["dana@example.com"]}
    # a state store of its own
    assert north.state.dir == tmp_path / ".keyservices" / "companies" / "north"
    assert south.state.dir == tmp_path / ".keyservices" / "companies" / "south-co"
    assert [c.company_name for c in company_configs(config, ["south & co"])] == ["South & Co"]
    assert config.parallel == 2


def test_a_config_without_companies_is_one_company_named_after_the_dealer(
        tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "dealer: Solo Copiers\nerp: {url: 'sqlite:///e.db'}\n"))
    assert company_configs(config) == [config]
    assert config.company_name == "Solo Copiers" and config.erp.password_env == \
        "KEYSERVICES_ERP_PASSWORD"
    assert company_configs(config, ["solo copiers"]) == [config]
    with pytest.raises(ConfigError, match="no company named north"):
        company_configs(config, ["North"])


@pytest.mark.parametrize(("entries", "line", "message"), [
    (("  - name: North\n    erp: {url: 'sqlite:///a.db'}\n"
     "  - name: north\n    erp: {url: 'sqlite:///b.db'}\n"), 12, "same name as companies[0]"),
    (("  - name: North\n    erp: {url: 'sqlite:///a.db'}\n"
     "  - name: South\n    erp: {url: 'sqlite:///a.db'}\n"), 12, "same database"),
    ("  - name: '  '\n    erp: {url: 'sqlite:///a.db'}\n", 10, "is not a company name"),
    ("  - name: North\n", 10, "companies[0].erp: required key is missing"),
    ("  - name: North\n    erp: {url: 'sqlite:///a.db'}\n    mode: live\n", 12,
     "unknown key"),
])
def test_a_bad_company_entry_is_named_with_file_and_line(tmp_path: Path, entries: str,
                                                         line: int, message: str) -> None:
    path = _write(tmp_path, "dealer: G\nmode: live\nerp:\n  connect_timeout: 30\n"
                            "digest:\n  to: [a@example.com]\nwrite: {max_changes: 3}\n"
                            "parallel: 2\ncompanies:\n" + entries)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"config.yaml:{line}" in str(caught.value) and message in str(caught.value)


def test_a_shared_state_database_is_refused_for_a_group(tmp_path: Path) -> None:
    path = _write(tmp_path, GROUP + "state: {url: 'postgresql://ks@db/state'}\n")
    with pytest.raises(ConfigError, match=r"config.yaml:9:5: companies\[0\].state.url"):
        load_config(path)


def test_parallel_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="parallel"):
        load_config(_write(tmp_path, GROUP + "parallel: 0\n"))


@pytest.fixture
def memory_keyring() -> Any:
    before = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(before)


def test_secret_set_erp_for_one_company(tmp_path: Path, memory_keyring: MemoryKeyring,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    group = GROUP.replace("sqlite:///north.sqlite", "postgresql://ks@db/north")
    path = _write(tmp_path, group)
    runner = CliRunner()
    done = runner.invoke(cli, ["secret", "set", "erp", "--company", "north", "--stdin",
                               "-c", str(path)], input="n0rth\n")
    assert done.exit_code == 0, done.output
    assert memory_keyring.entries == {("keyservices", "KEYSERVICES_ERP_PASSWORD_NORTH"): "n0rth"}
    monkeypatch.delenv("KEYSERVICES_ERP_PASSWORD_NORTH", raising=False)
    north = company_configs(load_config(path), ["North"])[0]
    assert north.erp_password() == "n0rth" and north.password("erp").source == "keyring"
    # a group's ERP password is always one company's
    refused = runner.invoke(cli, ["secret", "set", "erp", "--stdin", "-c", str(path)],
                            input="x\n")
    assert refused.exit_code == 2 and "--company NAME (North, South & Co)" in refused.output
    unknown = runner.invoke(cli, ["secret", "set", "erp", "--company", "West", "--stdin",
                                  "-c", str(path)], input="x\n")
    assert unknown.exit_code == 2 and "no company named west" in unknown.output
