"""The report lays out on a 375 px phone: its wide tables (penetration by group, won and lost)
scroll inside their own box, so the page never scrolls sideways (it was 454 px wide)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import keyservices

from .conftest import AS_OF
from .test_digest_screens import ROOT


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    result = keyservices.demo(folder / "demo", customers=300, as_of=AS_OF)
    config = keyservices.load_config(result.config)
    return keyservices.report(config, out=folder / "out", as_of=AS_OF).files.html


def test_every_wide_table_scrolls_in_its_own_box(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    tables = re.findall(r'(.{0,30})<table class="(heat|wl)">', html)
    assert tables and all(before.endswith('<div class="scroll">') for before, _ in tables)
    assert ".scroll { overflow-x: auto;" in html and "@media (max-width: 520px)" in html


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="chromium is not installed (apt-get install chromium)")
def test_chromium_lays_the_whole_report_out_within_375px(page: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "screenshot_digest.py"),
                          str(page), "--measure", "--width", "375"], capture_output=True,
                         text=True, timeout=180, check=True)
    width, height = map(int, out.stdout.split()[-1].split("x"))
    assert width <= 375 and height > 3000
