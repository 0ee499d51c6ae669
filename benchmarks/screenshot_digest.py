"""Render a digest in headless Chromium (Debian package ``chromium``): PNGs, or the laid-out size.

    python benchmarks/screenshot_digest.py
        the demo's night-2 digest (a fixed date, so the images are reproducible) into
        docs/digest-night2.png (760 px wide) and docs/digest-night2-375.png (a 375 px phone)
    python benchmarks/screenshot_digest.py DIGEST.html OUT.png [--width 760] [--height N]
        one digest into one PNG (the height defaults to the page's own, up to --max-height)
    python benchmarks/screenshot_digest.py DIGEST.html --measure [--width 375]
        prints WIDTHxHEIGHT of the page laid out at that width: a width over the viewport's
        means something does not fit and the reader has to scroll sideways

Headless Chromium will not make its window narrower than 500 px, so the digest is shown in an
iframe of the wanted width (the iframe is the viewport the digest sees, as on a phone).
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]
DEMO_AS_OF = dt.date(2026, 11, 25)  # night 2 of the docs' demo (README's example output)
DOCS_SHOTS = (("digest-night2.png", 760, 3200), ("digest-night2-375.png", 375, 2000))

HARNESS = """<!DOCTYPE html><html><head><meta charset="utf-8"></head>
<body style="margin:0;background:#f3f4f6;">
<iframe id="digest" scrolling="no" style="border:0;display:block;width:{width}px;height:{height}px"
 srcdoc="{doc}"></iframe>
<script>
document.getElementById("digest").addEventListener("load", function () {{
  var root = this.contentDocument.documentElement;
  document.title = "laid out " + root.scrollWidth + "x" + root.scrollHeight;
}});
</script></body></html>"""


def browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise SystemExit("chromium not found: apt-get install chromium")
    return found


def _chromium(page: Path, width: int, height: int, *extra: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([browser(), *FLAGS, f"--user-data-dir={profile}",
                               f"--window-size={width},{height}", *extra, page.as_uri()],
                              check=True, capture_output=True, text=True, timeout=180)
    return done.stdout


def _harness(digest: Path, width: int, height: int, folder: Path) -> Path:
    page = folder / "harness.html"
    doc = html.escape(digest.read_text(encoding="utf-8"), quote=True)
    page.write_text(HARNESS.format(width=width, height=height, doc=doc), encoding="utf-8")
    return page


def measure(digest: Path, width: int) -> tuple[int, int]:
    """The digest's laid-out width and height in a ``width`` px wide viewport."""
    with tempfile.TemporaryDirectory() as folder:
        page = _harness(digest, width, 800, Path(folder))
        dom = _chromium(page, max(width, 500), 800, "--dump-dom")
    found = re.search(r"<title>laid out (\d+)x(\d+)</title>", dom)
    if not found:
        raise SystemExit("chromium did not lay the page out (no size in its DOM)")
    return int(found.group(1)), int(found.group(2))


def screenshot(digest: Path, png: Path, width: int, height: int | None = None,
               max_height: int = 6000) -> Path:
    """``digest`` as a ``width`` px wide PNG, as tall as the page (at most ``max_height``)."""
    if height is None:
        height = min(measure(digest, width)[1], max_height)
    with tempfile.TemporaryDirectory() as folder:
        page = _harness(digest, width, height, Path(folder))
        _chromium(page, width, height, f"--screenshot={png.resolve()}")
    return png


def docs_images(out: Path = ROOT / "docs") -> list[Path]:
    """The demo's night-2 digest at 760 and 375 px, for README.md and docs/."""
    import keyservices

    with tempfile.TemporaryDirectory() as folder:
        result = keyservices.demo(Path(folder) / "demo", as_of=DEMO_AS_OF)
        digest = result.nights[-1].digest_html
        assert digest is not None
        return [screenshot(digest, out / name, width, max_height=limit)
                for name, width, limit in DOCS_SHOTS]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", type=Path, nargs="?", help="a digest's .html file")
    parser.add_argument("png", type=Path, nargs="?", help="the PNG to write")
    parser.add_argument("--width", type=int, default=760)
    parser.add_argument("--height", type=int, default=None,
                        help="the image's height (default: the page's, up to --max-height)")
    parser.add_argument("--max-height", type=int, default=6000)
    parser.add_argument("--measure", action="store_true",
                        help="print WIDTHxHEIGHT of the laid-out page instead")
    args = parser.parse_args()
    if args.html is None:
        for png in docs_images():
            print(png)
        return 0
    if args.measure:
        width, height = measure(args.html, args.width)
        print(f"{width}x{height}")
        return 0
    if args.png is None:
        parser.error("give the PNG to write, or --measure")
    print(screenshot(args.html, args.png, args.width, args.height, args.max_height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
