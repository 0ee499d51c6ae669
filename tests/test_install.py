"""What ``pipx install keyservices`` gets: the licence, the extras, a console script that runs.

The wheel is installed into a fresh virtual environment the way pipx does (its own environment,
the ``keyservices`` script in its ``bin``), without the network: the dependencies are borrowed
from this environment through a ``.pth`` file, placed after the environment's own packages so
the installed wheel, not this checkout, is what runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
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


def test_installed_like_pipx_the_console_script_runs_from_the_wheel(dist: Path,
                                                                    tmp_path: Path) -> None:
    (wheel,) = dist.glob("keyservices-*.whl")
    env_dir = tmp_path / "pipx-venv"
    venv.create(env_dir, with_pip=False)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True,
                   timeout=240)
    site = subprocess.run([str(python), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout
    Path(site.strip(), "zz-borrowed-dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    script = bindir / ("keyservices.exe" if os.name == "nt" else "keyservices")
    assert script.exists()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
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
