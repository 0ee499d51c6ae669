"""The documented install (docs/installation.md): keyservices is not on PyPI, so a wheel built
from a clone (``python -m build``) is installed, with its extras, into a fresh virtual
environment (pipx does the same in its own), and the console script runs the demo from there.

Without the network: the wheel is built without build isolation, and the dependencies are
borrowed from this environment through a ``.pth`` file, placed after the environment's own
packages so the installed wheel, not this checkout, is what runs. The docs may name no
``pip install 'keyservices[...]'``, which would look for the package on PyPI.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--sdist",
                    "--outdir", str(out), str(ROOT)], check=True, capture_output=True,
                   timeout=240)
    return out


def test_the_mit_licence_ships_in_the_wheel_and_the_sdist(dist: Path) -> None:
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License") and "keyservices contributors" in licence
    (wheel,) = dist.glob("keyservices-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
        meta = Parser().parsestr(zf.read(next(n for n in names
                                               if n.endswith(".dist-info/METADATA"))).decode())
    assert meta["License-Expression"] == "MIT"
    requires = meta.get_all("Requires-Dist")
    assert "pyodbc>=5; extra == 'mssql'" in requires  # pip install 'keyservices[mssql]'
    (sdist,) = dist.glob("keyservices-*.tar.gz")
    with tarfile.open(sdist) as tf:
        assert any(m.endswith("/LICENSE") for m in tf.getnames())


def fresh_venv(env_dir: Path) -> tuple[Path, Path, dict[str, str]]:
    """A new virtual environment (no pip of its own) that borrows this one's dependencies;
    returns its python, its bin folder and an environment without this checkout on the path."""
    venv.create(env_dir, with_pip=False)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    site = subprocess.run([str(python), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout
    Path(site.strip(), "zz-borrowed-dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return python, bindir, env


def script_version(script: Path, env: dict[str, str], cwd: Path) -> None:
    """The installed console script runs and names its version."""
    shown = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=env,
                           timeout=60, cwd=cwd, check=False)
    assert shown.returncode == 0 and shown.stdout.startswith("keyservices, version "), shown


def pip_install(python: Path, *requirement: str) -> None:
    """This environment's pip installs into ``python``'s, offline; ``--no-deps``: the
    dependencies (pyodbc of the mssql extra among them) are borrowed, not downloaded."""
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-index", "--no-build-isolation", *requirement],
                   check=True, capture_output=True, timeout=240)


def test_installed_like_pipx_the_console_script_runs_from_the_wheel(dist: Path,
                                                                    tmp_path: Path) -> None:
    (wheel,) = dist.glob("keyservices-*.whl")
    env_dir = tmp_path / "pipx-venv"
    python, bindir, env = fresh_venv(env_dir)
    pip_install(python, str(wheel))
    script = bindir / ("keyservices.exe" if os.name == "nt" else "keyservices")
    assert script.exists()
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                             env=env, timeout=60, cwd=tmp_path, check=False)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("keyservices, version ")
    where = subprocess.run([str(python), "-c", "import keyservices; print(keyservices.__file__)"],
                           capture_output=True, text=True, env=env, check=True,
                           cwd=tmp_path).stdout
    assert Path(where.strip()).is_relative_to(env_dir)
    # the packaged rules and templates are found from the installed wheel
    init = subprocess.run([str(script), "init", str(tmp_path / "site")], capture_output=True,
                          text=True, env=env, timeout=60, cwd=tmp_path, check=False)
    assert init.returncode == 0, init.stdout + init.stderr
    assert (tmp_path / "site" / "rules" / "services.yaml").exists()


def test_documented_install_the_wheel_with_its_extra_runs_the_demo(dist: Path,
                                                                   tmp_path: Path) -> None:
    """docs/installation.md: python -m build, then pip install 'dist/keyservices-...whl[mssql]'
    into a fresh venv; keyservices --version and keyservices demo run from that venv."""
    (wheel,) = dist.glob("keyservices-*-py3-none-any.whl")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"]
    assert wheel.name == f"keyservices-{version}-py3-none-any.whl"  # the name the docs give
    python, bindir, env = fresh_venv(tmp_path / "venv")
    pip_install(python, f"{wheel}[mssql]")
    script = bindir / ("keyservices.exe" if os.name == "nt" else "keyservices")
    script_version(script, env, tmp_path)
    demo_dir = tmp_path / "demo"
    demo = subprocess.run([str(script), "demo", "--dir", str(demo_dir), "--customers", "200"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
                          check=False)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    digests = sorted((demo_dir / "outbox").glob("*-digest.html"))
    assert len(digests) == 2 and sorted((demo_dir / "outbox").glob("*-digest.eml"))
    assert "Night 2" in demo.stdout and "digest" in demo.stdout
    assert digests[-1].name in demo.stdout
    assert "<html" in digests[-1].read_text(encoding="utf-8").lower()
    where = subprocess.run([str(python), "-c", "import keyservices; print(keyservices.__file__)"],
                           capture_output=True, text=True, env=env, check=True,
                           cwd=tmp_path).stdout
    assert Path(where.strip()).is_relative_to(tmp_path / "venv")


def test_documented_install_from_a_clone(tmp_path: Path) -> None:
    """docs/installation.md: pip install '.[mssql]' in a clone (here: the checkout's folder)."""
    python, bindir, env = fresh_venv(tmp_path / "venv")
    pip_install(python, f"{ROOT}[mssql]")
    script = bindir / ("keyservices.exe" if os.name == "nt" else "keyservices")
    script_version(script, env, tmp_path)


# an install command that names the package as if PyPI had it: pip/pipx install keyservices,
# 'keyservices[mssql]' or "keyservices[mssql]" (a clone's '.[mssql]' and a wheel's path are fine)
PUBLISHED = re.compile(r"\b(?:pip|pipx)\s+install\s+(?:-\S+\s+)*['\"]?keyservices(?:\[|\b)")


def test_no_instruction_installs_keyservices_from_pypi() -> None:
    places = [ROOT / "README.md", ROOT / "config.example.yaml",
              *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "keyservices").rglob("*.py"))]
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in places
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if PUBLISHED.search(line)]
    assert not found, "keyservices is not on PyPI:\n" + "\n".join(found)
