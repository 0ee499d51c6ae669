"""Monitor texts: admin-written Jinja templates rendered in a sandbox, as plain text.

Checked when the rules load (syntax, variables, what the sandbox refuses) and rendered at night
for the customers a monitor hits. Lives with the rule language because a rule file's validity
depends on it; jinja2 is imported only when monitors are used.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from .language import MONITOR_VARIABLES


class _Sandbox(SandboxedEnvironment):
    """No attribute starting with _ (the base sandbox), and no huge strings from * or **."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**":
            raise SecurityError("** is not allowed in a monitor text")
        if isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple):
            n = right if isinstance(left, str | list | tuple) else left
            if isinstance(n, int) and n > 100:
                raise SecurityError("repeating a text more than 100 times is not allowed")
        return super().call_binop(context, op, left, right)


def _money(value: Any) -> str:
    return f"{float(value):,.2f}"


_ENV = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
_ENV.filters["money"] = _money


@lru_cache(maxsize=256)
def compile_text(text: str) -> Template:
    """A monitor's text as a sandboxed template (cached: one per distinct text)."""
    return _ENV.from_string(text)


def template_problem(text: str, criteria: int) -> str | None:
    """What is wrong with a monitor's text, or None: syntax, unknown variables, or anything the
    sandbox refuses when rendered with sample values (checked when the rules load)."""
    try:
        unknown = sorted(meta.find_undeclared_variables(_ENV.parse(text)) - set(MONITOR_VARIABLES))
        if unknown:
            return (f"unknown variable {', '.join(unknown)} in the text (use "
                    f"{', '.join(MONITOR_VARIABLES)})")
        sample = {"name": "Sample Customer", "number": "C0001", "contact": "Sam Sample",
                  "phone": "555-0100", "email": "sam@example.com", "branch": "Main",
                  "sales_rep": "Rep", "monitor": "Monitor", "values": [1.0] * criteria}
        render_text(compile_text(text), sample)
    except TemplateSyntaxError as exc:
        return f"template syntax error on line {exc.lineno} of the text: {exc.message}"
    except SecurityError as exc:
        return f"not allowed in a monitor text: {exc}"
    except TemplateError as exc:
        return f"the text cannot be rendered: {exc}"
    except Exception as exc:  # noqa: BLE001 - any error of an admin's template is a rules problem
        return f"the text cannot be rendered: {type(exc).__name__}: {exc}"
    return None


def render_text(template: Template, variables: dict[str, Any]) -> str:
    """``template.render`` without the globals (range, dict, ...) a monitor text has no use
    for: half the time per alert, and the same at load time and at night."""
    return "".join(template.root_render_func(template.new_context(variables, shared=True)))
