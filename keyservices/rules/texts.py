"""Monitor texts: admin-written Jinja templates rendered in a sandbox, as plain text.

Checked when the rules load (syntax, variables, what the sandbox refuses) and rendered at night
for the customers a monitor hits. Lives with the rule language because a rule file's validity
depends on it; jinja2 is imported only when monitors are used.

The sandbox keeps a text from reaching Python's internals; the caps below keep it from running
away: a text writes at most MAX_OUTPUT characters, its loops take at most MAX_STEPS steps, the
strings it builds along the way (``~``, ``+``, ``*``, ``%``, filters, method calls) total at most
MAX_WORK characters, a number argument of a filter or method is at most MAX_ARGUMENT, a format
width has at most four digits, and one rendering takes at most MAX_SECONDS. Going past one raises
:class:`TextLimit`, which the loader reports with file, line and monitor, and the night as a
RulesError naming the monitor and the customer: never a hang or a MemoryError.
"""

from __future__ import annotations

import contextvars
import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from .language import MONITOR_VARIABLES

MAX_OUTPUT = 20_000  # characters one text writes (the digest keeps 2,000 of one line)
MAX_STEPS = 10_000  # loop steps in one rendering
MAX_WORK = 1_000_000  # characters of the strings and lists built while rendering one text
MAX_ARGUMENT = 10_000  # a number argument of a filter or method (center(50000000), slice(...))
MAX_SECONDS = 1.0  # one rendering
_WIDE = re.compile(r"\d{5,}")  # a format width or precision of five digits or more
_NESTED = re.compile(r"\{[^{}]*\{")  # a str.format width taken from an argument: {:>{w}}
_SIZED_FILTERS = frozenset({"batch", "center", "indent", "slice", "wordwrap"})
_SIZED_METHODS = frozenset({"center", "expandtabs", "ljust", "rjust", "zfill"})
# filters whose result is a number or no longer than their input: not worth a guard per call
_SMALL_FILTERS = frozenset({"abs", "capitalize", "count", "d", "default", "first", "float", "int",
                            "last", "length", "lower", "money", "round", "title", "trim",
                            "upper"})
_STEPS, _CONCAT = "_ks_steps", "_ks_concat"  # the guards compile_text puts into every template


class TextLimit(SecurityError):
    """A monitor text went past one of the caps of this module."""


class _Budget:
    """What one rendering has spent so far."""

    __slots__ = ("deadline", "steps", "work")

    def __init__(self) -> None:
        self.deadline = time.monotonic() + MAX_SECONDS
        self.steps = 0
        self.work = 0

    def spend(self, chars: int = 0, steps: int = 0) -> None:
        self.work += chars
        self.steps += steps
        if self.steps > MAX_STEPS:
            raise TextLimit(f"it loops more than {MAX_STEPS:,} times")
        if self.work > MAX_WORK:
            raise TextLimit(f"it builds more than {MAX_WORK:,} characters of text")
        if time.monotonic() > self.deadline:
            raise TextLimit(f"it takes longer than {MAX_SECONDS:g} second(s) to render")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("monitor_text_budget",
                                                                         default=None)


def _spend(chars: int = 0, steps: int = 0) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.spend(chars, steps)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple) else 0


def _check_arguments(args: Iterable[Any]) -> None:
    """Size arguments (a width, a count of slices) beyond MAX_ARGUMENT are refused up front."""
    for arg in args:
        if isinstance(arg, int | float) and not isinstance(arg, bool) and abs(arg) > MAX_ARGUMENT:
            raise TextLimit(f"a number over {MAX_ARGUMENT:,} as an argument is not allowed")


def _check_format(fmt: Any, args: Iterable[Any]) -> None:
    """A format string may not ask for a huge width, written out or taken from an argument."""
    if not isinstance(fmt, str):
        return
    if _WIDE.search(fmt):
        raise TextLimit("a format width over 9999 is not allowed")
    if "*" in fmt or _NESTED.search(fmt):
        _check_arguments(args)


def _check_replace(text: Any, old: Any, new: Any) -> None:
    """``replace`` can multiply a string (replace("", long)): counted before it is built."""
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        hits = text.count(old) if old else len(text) + 1
        _spend(len(text) + hits * max(len(new) - len(old), 0))


class _Sandbox(SandboxedEnvironment):
    """No attribute starting with _ (the base sandbox), no huge strings from * or **, and the
    caps of the module on everything that builds a string."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**":
            raise SecurityError("** is not allowed in a monitor text")
        if op == "*" and (isinstance(left, str | list | tuple)
                          or isinstance(right, str | list | tuple)):
            seq, n = (left, right) if isinstance(left, str | list | tuple) else (right, left)
            if isinstance(n, int) and n > 100:
                raise SecurityError("repeating a text more than 100 times is not allowed")
            if isinstance(n, int):
                _spend(_size(seq) * max(n, 0))  # before it is built
        elif op == "+":
            _spend(_size(left) + _size(right))
        elif op == "%":
            _check_format(left, right if isinstance(right, tuple) else (right,))
        result = super().call_binop(context, op, left, right)
        if op == "%":
            _spend(_size(result))
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Every ``str.format`` / ``format_map`` a text reaches comes through here."""
        sandboxed = super().wrap_str_format(value)
        if sandboxed is None:
            return None
        fmt = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            mapping = [v for a in args if isinstance(a, dict) for v in a.values()]
            _check_format(fmt, (*args, *kwargs.values(), *mapping))
            return sandboxed(*args, **kwargs)

        return checked

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        name, owner = getattr(obj, "__name__", ""), getattr(obj, "__self__", None)
        if isinstance(owner, str):
            if name in _SIZED_METHODS:
                _check_arguments((*args, *kwargs.values()))
            elif name == "replace" and len(args) >= 2:
                _check_replace(owner, args[0], args[1])
        result = super().call(context, obj, *args, **kwargs)
        _spend(_size(result))
        return result


def _guard_filter(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """A filter with the caps: its number arguments (not the value filtered) and its result."""
    skip = 2 if getattr(func, "jinja_pass_arg", None) is not None else 1

    @functools.wraps(func)  # keeps jinja_pass_arg (pass_context, ...)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if name in _SIZED_FILTERS:
            _check_arguments((*args[skip:], *kwargs.values()))
        elif name == "format" and len(args) >= skip:
            _check_format(args[skip - 1], (*args[skip:], *kwargs.values()))
        elif name == "replace" and len(args) >= skip + 2:
            _check_replace(args[skip - 1], args[skip], args[skip + 1])
        result = func(*args, **kwargs)
        _spend(_size(result))
        return result

    return guarded


def _steps(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every for loop of a monitor text iterates through this: one step each."""
    for item in iterable:
        _spend(steps=1)
        yield item


def _concat(values: list[Any]) -> str:
    """``a ~ b``: counted like every other string a text builds."""
    text = "".join(str(v) for v in values)  # at most twice the largest part: already counted
    _spend(len(text))
    return text


def _money(value: Any) -> str:
    return f"{float(value):,.2f}"


_ENV = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
_ENV.filters["money"] = _money
_ENV.filters = {name: f if name in _SMALL_FILTERS else _guard_filter(f, name)
                for name, f in _ENV.filters.items()}
_ENV.filters[_STEPS] = _steps
_ENV.filters[_CONCAT] = _concat


def _guard(node: nodes.Node) -> None:
    """Route every loop through _steps and every ``~`` through _concat (in place)."""
    def wrap(child: Any) -> Any:
        if isinstance(child, nodes.Concat):
            return nodes.Filter(nodes.List(child.nodes, lineno=child.lineno), _CONCAT, [], [],
                                None, None, lineno=child.lineno)
        return child

    for field in node.fields:
        value = getattr(node, field, None)
        if isinstance(value, list):
            setattr(node, field, [wrap(v) for v in value])
        else:
            setattr(node, field, wrap(value))
    if isinstance(node, nodes.For):
        node.iter = nodes.Filter(node.iter, _STEPS, [], [], None, None, lineno=node.lineno)
    for child in node.iter_child_nodes():
        _guard(child)


@lru_cache(maxsize=256)
def compile_text(text: str) -> Template:
    """A monitor's text as a sandboxed template with the caps (cached: one per distinct text)."""
    tree = _ENV.parse(text)
    _guard(tree)
    return _ENV.from_string(tree)


CONTACT_VARIABLES = frozenset({"contact", "phone", "email"})


def names_contact(text: str) -> bool:
    """Whether a monitor's text shows the customer's contact (so the run reads the contacts
    table for it). A text that does not parse names none (the rules loader reports it)."""
    try:
        return bool(meta.find_undeclared_variables(_ENV.parse(text)) & CONTACT_VARIABLES)
    except TemplateError:
        return False


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
    for (half the time per alert, and the same at load time and at night), within the caps."""
    budget = _Budget()
    token = _BUDGET.set(budget)
    try:
        parts: list[str] = []
        written = 0
        for part in template.root_render_func(template.new_context(variables, shared=True)):
            written += len(part)
            if written > MAX_OUTPUT:  # what writes is bounded by this, what loops by _steps
                raise TextLimit(f"it writes more than {MAX_OUTPUT:,} characters")
            parts.append(part)
        return "".join(parts)
    finally:
        _BUDGET.reset(token)
