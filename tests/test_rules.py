"""The rule files: loading, merging, and errors that name file, line and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from keyservices.errors import RulesError
from keyservices.resources import example_rules_dir
from keyservices.rules import load_rules

RULES = example_rules_dir()


def write(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_example_rules_load_with_the_four_id789_services() -> None:
    rules = load_rules(RULES)
    assert [s.code for s in rules.services] == ["CPY", "MPS", "DM", "MIT"]
    assert rules.property == "ZCJKeyServices"
    assert rules.level == "parent"
    assert any(s.match == "all" for s in rules.services)
    dm = next(s for s in rules.services if s.code == "DM")
    assert dm.items_sold is not None and dm.items_sold.min_unit_price == 0.01


def test_category_globs_map_to_classes_first_match_wins() -> None:
    rules = load_rules(RULES)
    assert rules.class_of("MFP-A3-CO-03") == "COPIER"
    assert rules.class_of("mfp-a4-bw-01") == "COPIER"  # e-automate collations ignore case
    assert rules.class_of("SW-DM-ECOPY") == "DOC_SOFTWARE"
    assert rules.class_of("SCAN-DESKTOP") is None


def test_value_rendering_follows_rule_order_and_parses_back() -> None:
    rules = load_rules(RULES)
    assert rules.render_value({"MIT", "CPY"}) == "CPY;MIT"
    assert rules.parse_value("MIT; CPY") == {"CPY", "MIT"}
    assert rules.parse_value(None) == frozenset()


def test_every_problem_reported_with_file_line_and_suggestion(tmp_path: Path) -> None:
    folder = write(tmp_path, "a.yaml", (
        "model_classes:\n"
        "  'MFP-*': COPIER\n"
        "services:\n"
        "  - code: CPY\n"
        "    name: Copiers\n"
        "    equipmnet:\n"
        "      model_classes: [COPIER]\n"
        "  - code: MPS\n"
        "    name: Managed Print\n"
        "    match: sometimes\n"
        "    contracts: {contract_codes: ['MPS-*']}\n"))
    with pytest.raises(RulesError) as err:
        load_rules(folder)
    text = str(err.value)
    assert text.startswith("2 problems in the rules:")
    assert f"{folder / 'a.yaml'}:6:5: services[0].equipmnet: unknown key (did you mean 'equipment'?)" in text
    assert f"{folder / 'a.yaml'}:10:5: services[1].match: Input should be 'any' or 'all'" in text


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    folder = write(tmp_path, "broken.yaml", "services:\n  - code: [CPY\n")
    with pytest.raises(RulesError, match=r"broken\.yaml:3:1: YAML syntax error"):
        load_rules(folder)


def test_unmapped_class_and_duplicate_code_are_errors(tmp_path: Path) -> None:
    folder = write(tmp_path, "a.yaml", (
        "model_classes: {'MFP-*': COPIER}\n"
        "services:\n"
        "  - {code: CPY, name: Copiers, equipment: {model_classes: [COPIER]}}\n"
        "  - {code: CPY, name: Again, equipment: {model_classes: [PRINTER]}}\n"))
    with pytest.raises(RulesError) as err:
        load_rules(folder)
    text = str(err.value)
    assert "duplicate service code 'CPY'" in text
    assert "model class 'PRINTER' is mapped from no category" in text


def test_service_without_sections_is_an_error(tmp_path: Path) -> None:
    folder = write(tmp_path, "a.yaml", "services:\n  - {code: CPY, name: Copiers}\n")
    with pytest.raises(RulesError, match="has no section"):
        load_rules(folder)


def test_rule_files_merge_and_conflicting_settings_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "level: parent\nmodel_classes: {'MFP-*': COPIER}\n")
    folder = write(tmp_path, "b.yaml", (
        "level: location\n"
        "services:\n  - {code: CPY, name: Copiers, equipment: {model_classes: [COPIER]}}\n"))
    with pytest.raises(RulesError, match=r"b\.yaml:1:1: level: already set differently"):
        load_rules(folder)


def test_empty_rules_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    with pytest.raises(RulesError, match="no \\*.yaml rule files"):
        load_rules(tmp_path / "rules")


def test_pure_modules_import_without_sqlalchemy_or_smtplib() -> None:
    code = ("import sys, keyservices.rules, keyservices.rules.texts, keyservices.engine.cases, "
            "keyservices.engine.classify, keyservices.engine.diff, keyservices.engine.metrics, "
            "keyservices.model; "
            "bad = [m for m in ('sqlalchemy', 'smtplib') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_and_cross_file_problems_are_reported_together(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", ("model_classes: {'MFP-*': COPIER}\n"
                               "services:\n  - {code: CPY, name: Copiers, equipment: "
                               "{model_classes: [COPIER]}}\n"
                               "  - {code: CPY, name: Again, equipment: {model_classes: [COPIER]}}\n"))
    folder = write(tmp_path, "b.yaml", "services:\n  - {code: MIT, name: IT, gl: {acounts: []}}\n")
    with pytest.raises(RulesError) as err:
        load_rules(folder)
    text = str(err.value)
    assert "b.yaml:2:32: services[0].gl.acounts: unknown key (did you mean 'accounts'?)" in text
    assert "duplicate service code 'CPY'" in text
