"""Regenerate the generated parts of docs/ (the rule reference in docs/rules.md).

Usage: python docs/generate.py          (tests/test_docs.py fails when this is needed)
"""

from __future__ import annotations

import sys
from pathlib import Path

from keyservices.rules import reference_markdown

BEGIN = "<!-- BEGIN GENERATED: rule reference (python docs/generate.py) -->"
END = "<!-- END GENERATED -->"
RULES_DOC = Path(__file__).resolve().parent / "rules.md"


def render(text: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{reference_markdown()}\n{END}{tail}"


if __name__ == "__main__":
    RULES_DOC.write_text(render(RULES_DOC.read_text(encoding="utf-8")), encoding="utf-8")
    print(RULES_DOC)
    sys.exit(0)
