"""Files that ship with keyservices: the example rules and the digest templates.

In a wheel they live in ``keyservices/_data``; in a source checkout (editable install) they are the
top-level ``rules/`` and ``templates/`` folders, where admins and designers find them.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent

# the digest's templates (HTML, text): a digest.templates folder must hold both
DIGEST_TEMPLATES = ("digest.html.j2", "digest.txt.j2")
# a company's section of a dealer group's one message; optional in a digest.templates folder
SECTION_TEMPLATE = "digest-section.html.j2"


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"the packaged '{name}' folder is missing from {_PACKAGE}; reinstall "
                      "keyservices")


def example_rules_dir() -> Path:
    return _find("rules")


def templates_dir() -> Path:
    return _find("templates")
