"""config.yaml: validation with positions, secrets from the environment, paths relative to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyservices.config import load_config
from keyservices.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_config_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found: .*keyservices init"):
        load_config(tmp_path / "nope.yaml")


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "erp: {url: 'sqlite:///erp.sqlite'}\n"))
    assert cfg.erp.url == f"sqlite:///{(tmp_path / 'erp.sqlite').as_posix()}"
    assert cfg.rules == tmp_path / "rules"
    assert cfg.state.dir == tmp_path / ".keyservices"
    assert cfg.digest.outbox == tmp_path / "outbox"


def test_unknown_keys_and_bad_values_are_all_reported(tmp_path: Path) -> None:
    path = write(tmp_path, ("erp:\n  url: 'sqlite:///x'\n  conect_timeout: 5\n"
                            "mode: production\nwrite:\n  chunk_size: 0\n"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert text.startswith("3 problems in the config:")
    assert f"{path}:3:3: erp.conect_timeout: unknown key (did you mean 'connect_timeout'?)" in text
    assert f"{path}:4:1: mode: Input should be 'live' or 'test'" in text
    assert f"{path}:6:3: write.chunk_size: Input should be greater than or equal to 1" in text


def test_password_in_url_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "erp: {url: 'mssql+pyodbc://sa:hunter2@erp/coDemo'}\n")
    with pytest.raises(ConfigError, match="contains a password") as err:
        load_config(path)
    assert "hunter2" not in str(err.value) or "url" in str(err.value)


def test_password_comes_from_the_environment(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(write(tmp_path, ("erp:\n  url: 'postgresql://ks@db/co'\n"
                                       "  password_env: MY_ERP_PW\n")))
    monkeypatch.setenv("MY_ERP_PW", "s3cret")
    assert cfg.erp_password() == "s3cret"


def test_erp_url_from_environment_overrides_the_file(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSERVICES_ERP_URL", "sqlite:///other.sqlite")
    cfg = load_config(write(tmp_path, "erp: {url: 'sqlite:///erp.sqlite'}\n"))
    assert cfg.erp.url.endswith("/other.sqlite")


def test_profile_overrides_are_checked(tmp_path: Path) -> None:
    path = write(tmp_path, ("erp:\n  url: 'sqlite:///x'\n  profile:\n"
                            "    model_categories: {table: ICCategories, columns: {cod: Cat}}\n"))
    with pytest.raises(ConfigError, match="model_categories: unknown column 'cod'"):
        load_config(path)


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "erp:\n  url: 'sqlite:///x\n")
    with pytest.raises(ConfigError, match=r"config\.yaml:\d+:\d+: YAML syntax error"):
        load_config(path)


def test_precedence_flags_then_environment_then_file_then_defaults(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "erp: {url: 'sqlite:///erp.sqlite'}\nmode: live\n"
                           "write: {chunk_size: 100, max_changes: 50}\n")
    monkeypatch.setenv("KEYSERVICES_WRITE_CHUNK_SIZE", "250")
    monkeypatch.setenv("KEYSERVICES_DIGEST_TO", "[a@example.com, b@example.com]")
    monkeypatch.setenv("KEYSERVICES_MODE", "test")
    cfg = load_config(path, {"mode": "live"})
    assert cfg.mode == "live" and cfg.sources["mode"] == "command line"
    assert cfg.write.chunk_size == 250 and cfg.sources["write.chunk_size"] == \
        "env KEYSERVICES_WRITE_CHUNK_SIZE"
    assert cfg.write.max_changes == 50 and cfg.sources["write.max_changes"] == "config.yaml:3"
    assert cfg.digest.to == ["a@example.com", "b@example.com"]
    assert cfg.digest.max_rows == 50 and "digest.max_rows" not in cfg.sources


def test_a_bad_environment_value_names_the_variable(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "erp: {url: 'sqlite:///erp.sqlite'}\n")
    monkeypatch.setenv("KEYSERVICES_WRITE_CHUNK_SIZE", "lots")
    with pytest.raises(ConfigError, match="env KEYSERVICES_WRITE_CHUNK_SIZE: write.chunk_size: "
                                          "'lots' is not a number"):
        load_config(path)


def test_config_show_masks_secrets_and_names_sources(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from keyservices.cli import cli

    path = write(tmp_path, "erp:\n  url: 'postgresql://ks@db/co'\nsmtp: {host: mail}\n")
    monkeypatch.setenv("KEYSERVICES_ERP_PASSWORD", "Sup3r-Secret")
    result = CliRunner().invoke(cli, ["config", "show", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "Sup3r-Secret" not in result.output
    assert "(erp password)" in result.output and "set" in result.output
    assert "config.yaml:2" in result.output and "default" in result.output
    assert "smtp.host" in result.output


# -- no password in any URL (they are shown, logged and stored) ------------------------------------
@pytest.mark.parametrize("key", ["erp", "state"])
@pytest.mark.parametrize("url", [
    "mssql+pyodbc://sa:hunter2@erp/coDemo",
    "mssql+pyodbc://sa:pa/ss-hunter2@erp/coDemo",
    "postgresql://ks:pa%2Fss-hunter2@db/co",
    "postgresql://ks@db/co?password=hunter2",
    "mssql+pyodbc://ks@erp/co?driver=ODBC+Driver+18+for+SQL+Server&PWD=hunter2",
    "mssql+pyodbc://ks@erp/co?Pwd=hunter2",
    "mssql+pyodbc://ks@erp/co?PassWord=hunter2",
    ("mssql+pyodbc:///?odbc_connect=DRIVER%3D%7BODBC+Driver+18%7D%3BSERVER%3Derp%3BUID%3Dsa%3B"
    "PWD%3Dhunter2"),
    ("mssql+pyodbc:///?odbc_connect=DRIVER%3D%7BODBC+Driver+18%7D%3BSERVER%3Derp%3BUID%3Dsa%3B"
    "Password%20%3D%20%7Bhun%3Bter2%7D"),
])
def test_a_password_anywhere_in_a_url_is_refused(tmp_path: Path, key: str, url: str) -> None:
    text = (f"erp: {{url: '{url}'}}\n" if key == "erp" else
            f"erp: {{url: 'sqlite:///erp.sqlite'}}\nstate:\n  url: '{url}'\n")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"{key}.url: the URL contains a password") as err:
        load_config(path)
    assert "hunter2" not in str(err.value) and "hun" not in str(err.value)
    assert f"{path}:{1 if key == 'erp' else 3}:" in str(err.value)


def test_a_password_in_a_url_from_the_environment_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSERVICES_STATE_URL", "postgresql://ks@db/state?password=hunter2")
    with pytest.raises(ConfigError, match="env KEYSERVICES_STATE_URL: state.url: the URL contains"):
        load_config(write(tmp_path, "erp: {url: 'sqlite:///erp.sqlite'}\n"))


def test_urls_without_a_password_are_accepted(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, (
        "erp: {url: 'mssql+pyodbc://ks@erp/co?driver=ODBC+Driver+18+for+SQL+Server"
        "&TrustServerCertificate=yes'}\nstate:\n  url: 'postgresql://ks@db/state'\n"
        "  password_env: KS_STATE_PW\n")))
    assert cfg.state.password_env == "KS_STATE_PW"


def test_the_display_url_masks_every_password_form() -> None:
    from keyservices.erp import display_url

    for url in ("postgresql://ks:Zq/7x@db/co", "postgresql://ks@db/co?password=Zq/7x",
                "mssql+pyodbc://ks@erp/co?PWD=Zq/7x&driver=x",
                "mssql+pyodbc://ks@erp/co?odbc_connect=UID%3Dsa%3BPWD%3DZq/7x%3BSERVER%3Derp"):
        shown = display_url(url)
        assert "Zq" not in shown and "7x" not in shown, shown
    assert display_url("sqlite:////data/erp.sqlite") == "sqlite:////data/erp.sqlite"


# -- YAML that would explode ------------------------------------------------------------------------
def alias_bomb(under: str) -> str:
    """'Billion laughs': nine levels of nine aliases, 9**9 values once expanded, 1 kB on disk."""
    lines, prev = [], None
    for name in "abcdefghi":
        item = '"lol@example.com"' if prev is None else f"*{prev}"
        lines.append(f"  {name}: &{name} [{', '.join([item] * 9)}]")
        prev = name
    return f"{under}:\n" + "\n".join(lines) + "\n"


def test_an_alias_bomb_in_the_config_is_refused_fast(tmp_path: Path) -> None:
    import time

    path = write(tmp_path, "erp: {url: 'sqlite:///erp.sqlite'}\ndigest:\n"
                 + alias_bomb("  branches").replace("\n  ", "\n    "))
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"config\.yaml: the aliases \(\*name\) expand to more "
                                          r"than 200,000 values"):
        load_config(path)
    assert time.perf_counter() - started < 2


def test_an_alias_bomb_inside_a_rule_section_is_refused_fast(tmp_path: Path) -> None:
    import time

    from keyservices.errors import RulesError
    from keyservices.rules import load_rules

    (tmp_path / "r.yaml").write_text(alias_bomb("model_classes"), encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(RulesError, match="an alias bomb"):
        load_rules(tmp_path)
    assert time.perf_counter() - started < 2


def test_ordinary_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, (
        "erp: {url: 'sqlite:///erp.sqlite'}\ndigest:\n  to: &managers [a@example.com, "
        "b@example.com]\n  admins: *managers\n  branches: {North: *managers}\n")))
    assert cfg.digest.admins == cfg.digest.branches["North"] == ["a@example.com", "b@example.com"]


# -- every recipient is one address, checked before anything is written ----------------------------
@pytest.mark.parametrize(("yaml", "key", "line"), [
    ('  to: [managers@example.com, "b@example.com\\r\\nBcc: spy@evil.example"]\n',
     "digest.to[1]", 3),
    ('  to:\n    - managers@example.com\n    - "b@example.com\\nBcc: spy@evil.example"\n',
     "digest.to[1]", 5),
    ('  admins: ["it@example.com, boss@example.com"]\n', "digest.admins[0]", 3),
    ("  branches:\n    North: [north-manager]\n", "digest.branches.North[0]", 4),
    ('  sales_reps:\n    "Dana Whitfield": ["dana@exa mple.com"]\n',
     "digest.sales_reps.Dana Whitfield[0]", 4),
    ('  sender: "ks@example.com\\r\\nSubject: hi"\n', "digest.sender", 3),
])
def test_a_bad_recipient_is_refused_naming_the_key_and_line(tmp_path: Path, yaml: str, key: str,
                                                           line: int) -> None:
    path = write(tmp_path, "erp: {url: 'sqlite:///erp.sqlite'}\ndigest:\n" + yaml)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert text.startswith("1 problem in the config:")
    assert f"{path}:{line}:" in text and f" {key}: " in text, text
    assert "\n" not in text.split(key)[1].strip("\n"), text  # the line break is shown escaped


def test_display_names_and_single_addresses_are_accepted(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, (
        "erp: {url: 'sqlite:///erp.sqlite'}\ndigest:\n"
        "  sender: 'keyservices <ks@dealer.example>'\n"
        "  to: ['\"Whitfield, Dana\" <dana@dealer.example>', it@localhost]\n")))
    assert cfg.digest.to[0] == '"Whitfield, Dana" <dana@dealer.example>'


def test_a_bad_recipient_from_the_environment_names_the_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSERVICES_DIGEST_TO", "[a@example.com, not-an-address]")
    with pytest.raises(ConfigError, match=r"env KEYSERVICES_DIGEST_TO: digest.to\[1\]: "):
        load_config(write(tmp_path, "erp: {url: 'sqlite:///erp.sqlite'}\n"))


# -- folders that must exist -------------------------------------------------------------------------
def test_a_missing_templates_folder_is_refused_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, "erp: {url: 'sqlite:///erp.sqlite'}\ndigest:\n  templates: mine\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == (
        f"1 problem in the config:\n  {path}:3: digest.templates: the folder "
        f"{tmp_path / 'mine'} does not exist (copy the templates folder that ships with "
        "keyservices there, or remove the setting to use the built-in templates)")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "digest.html.j2").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="digest.templates: digest.txt.j2 not found in"):
        load_config(path)
    (tmp_path / "mine" / "digest.txt.j2").write_text("x", encoding="utf-8")
    assert load_config(path).digest.templates == tmp_path / "mine"


def test_a_missing_smtp_ca_file_is_an_error_at_load(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("erp:\n  url: sqlite:///erp.sqlite\nsmtp:\n  host: mail.example.com\n"
                    "  ca_file: certs/ca.pem\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"config.yaml:5: smtp.ca_file: .*ca.pem not found"):
        load_config(path)
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    assert load_config(path).smtp.ca_file == tmp_path / "certs" / "ca.pem"
