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
                                          "Input should be a valid integer"):
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
