"""Render a digest HTML file to a PNG with headless Chromium (Debian package ``chromium``).

Usage: python benchmarks/screenshot_digest.py DIGEST.html OUT.png [--height 3200]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=760)
    parser.add_argument("--height", type=int, default=3200)
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("chromium not found: apt-get install chromium", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}",
                        f"--window-size={args.width},{args.height}",
                        f"--screenshot={args.png.resolve()}", args.html.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
