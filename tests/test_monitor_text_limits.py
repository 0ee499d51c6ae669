"""Monitor texts are rendered with caps: output length, loop steps, work and time.

An admin's Jinja text runs in a sandbox, but a sandbox alone lets a text write megabytes, loop
for hours or double a string thirty times. Each case below runs in a subprocess with a memory
ceiling and a timeout, so that without the caps the test fails instead of hanging the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keyservices.errors import RulesError
from keyservices.rules.texts import compile_text, render_text, template_problem

from .test_monitors import Night, customer, problems, rules_with

NESTED_OUTPUT = "{% for a in name * 100 %}{% for b in name * 100 %}{{ name }}{% endfor %}{% endfor %}"
NESTED_SILENT = ("{% for a in name * 100 %}{% for b in name * 100 %}{% for c in name * 100 %}"
                 "{% endfor %}{% endfor %}{% endfor %}")
DOUBLING = "{% set a = name ~ name %}" + "{% set a = a ~ a %}" * 30 + "{{ a | length }}"
PLUS_DOUBLING = "{% set a = name + name %}" + "{% set a = a + a %}" * 30 + "{{ a | length }}"
PRODUCT = "{{ (name * 100 * 100 * 100 * 100) | length }}"
RECURSIVE = ("{% for x in name * 100 recursive %}{% if loop.depth < 6 %}{{ loop(name * 100) }}"
             "{% endif %}{% endfor %}")

CASES = {
    "megabytes of output": (NESTED_OUTPUT, "writes more than"),
    "a silent loop of 3 billion steps": (NESTED_SILENT, "loops more than"),
    "a string doubled with ~": (DOUBLING, "builds more than"),
    "a string doubled with +": (PLUS_DOUBLING, "builds more than"),
    "repeat of a repeat": (PRODUCT, "builds more than"),
    "a recursive loop": (RECURSIVE, ""),
    "a wide filter argument": ("{{ name | center(50000000) }}", "number over"),
    "a wide method argument": ("{{ name.ljust(50000000) }}", "number over"),
    "a billion slices": ("{{ values | slice(1000000000) | list | length }}", "number over"),
    "a wide % format": ("{{ '%050000000d' % 1 }}", "width over"),
    "a wide format filter": ("{{ '%050000000d' | format(1) }}", "width over"),
    "a wide str.format": ("{{ '{:>50000000}'.format(name) }}", "width over"),
}

PROBE = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # 1 GB: a MemoryError, not swap
from keyservices.rules.texts import template_problem
start = time.monotonic()
try:
    problem = template_problem(sys.argv[1], 1)
except BaseException as exc:
    problem = f"raised {type(exc).__name__}: {exc}"
print(json.dumps({"problem": problem, "seconds": time.monotonic() - start}))
"""


@pytest.mark.parametrize("name", list(CASES))
def test_a_runaway_text_is_refused_when_the_rules_load(name: str) -> None:
    text, phrase = CASES[name]
    try:
        done = subprocess.run([sys.executable, "-c", PROBE, text], capture_output=True,
                              timeout=30, text=True, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: still rendering after 30 s")
    assert done.returncode == 0, done.stderr[-500:]
    found = json.loads(done.stdout)
    problem = found["problem"] or ""
    assert problem.startswith("not allowed in a monitor text: "), problem
    assert phrase in problem
    assert "MemoryError" not in problem and found["seconds"] < 5


def test_the_rules_error_names_file_line_and_monitor(tmp_path: Path) -> None:
    out = problems(tmp_path, "monitors:\n  - code: BIG\n    name: Big\n"
                             "    any: [{counter: invoices, period: 30}]\n"
                             f"    text: '{NESTED_OUTPUT}'\n")
    assert "monitors.yaml:5:5: monitors[0].text: monitor BIG: not allowed in a monitor text: " \
           "it writes more than 20,000 characters" in out


def test_a_text_that_runs_away_on_tonights_data_names_monitor_and_customer(
        tmp_path: Path) -> None:
    """Fine on the sample name at load time (15 characters: 3,375 steps), a runaway on a real
    128-character name (2 million steps): stopped at night with the monitor and customer."""
    text = ("{% for a in name %}{% for b in name %}{% for c in name %}{% endfor %}{% endfor %}"
            "{% endfor %}done")
    night = Night(rules_with(tmp_path, (
        "monitors:\n  - code: LOOPY\n    name: Loopy\n"
        "    any: [{counter: invoices, period: 30, op: '>=', value: 0}]\n"
        f"    text: '{text}'\n")), [1])
    started = time.monotonic()
    with pytest.raises(RulesError, match="monitor LOOPY: its text could not be rendered for "
                                         "customer C001: it loops more than 10,000 times"):
        night.evaluate({1: customer(1, "N" * 128)})
    assert time.monotonic() - started < 2


def test_ordinary_texts_render_as_before() -> None:
    text = ("{{ name }} paid {{ values[0] | money }} in 90 days.{% if contact %} Call "
            "{{ contact }}{% if phone %} ({{ phone }}){% endif %}.{% endif %}"
            "{% for v in values %} {{ loop.index }}:{{ v | int }}{% endfor %}"
            "{{ ' ' ~ name * 2 }}{{ ' %5.1f' % values[0] }} {{ '{:>6}'.format(number) }}")
    out = render_text(compile_text(text), {
        "name": "Acme", "number": "C1", "contact": "Sam", "phone": "555", "email": "",
        "branch": "", "sales_rep": "", "monitor": "M", "values": [1234.5, 2.0]})
    assert out == ("Acme paid 1,234.50 in 90 days. Call Sam (555). 1:1234 2:2 AcmeAcme "
                   "1234.5     C1")
    assert template_problem(text, 2) is None
