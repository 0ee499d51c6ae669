"""The package builds (wheel and sdist), carries its rules and templates, and runs as a module."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import keyservices
from keyservices.commands.setup import CONFIG_TEMPLATE

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_and_sdist_carry_rules_templates_and_the_entry_point(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--sdist",
                    "--outdir", str(tmp_path), str(ROOT)], check=True, capture_output=True,
                   timeout=240)
    (wheel,) = tmp_path.glob("keyservices-*.whl")
    (sdist,) = tmp_path.glob("keyservices-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("keyservices/_data/rules/services.yaml",
                   "keyservices/_data/rules/tests/id789.yaml",
                   "keyservices/_data/templates/digest.html.j2",
                   "keyservices/_data/templates/digest.txt.j2"):
        assert needed in names, needed
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "keyservices = keyservices.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    assert any(m.endswith("templates/digest.html.j2") for m in members)
    assert any(m.endswith("rules/services.yaml") for m in members)


def test_python_dash_m_and_version() -> None:
    out = subprocess.run([sys.executable, "-m", "keyservices", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"keyservices, version {keyservices.__version__}"


def test_config_example_is_the_init_template() -> None:
    assert (ROOT / "config.example.yaml").read_text(encoding="utf-8") == CONFIG_TEMPLATE


def test_the_public_names_are_the_lazy_exports() -> None:
    """``__all__`` is written out (a tool reads it as it stands) and must name exactly what the
    lazy ``__getattr__`` resolves, each of which must exist."""
    import keyservices

    exports = keyservices._EXPORTS
    assert sorted(keyservices.__all__) == sorted(["__version__", *exports])
    for name in exports:
        assert getattr(keyservices, name) is not None
