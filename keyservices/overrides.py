"""Environment overrides of settings (``KEYSERVICES_WRITE_MAX_CHANGES_PERCENT=25``): read as
YAML where a setting is not text, and refused where they would unset a value or put a word
where a number belongs, so that an override can never silently switch the change guard off."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal


def parse_env(text: str, annotation: Any) -> Any:
    """Strings stay strings; numbers, booleans and lists are read as YAML ('[a@x, b@y]')."""
    if annotation in (str, Path) or str(annotation) in ("str | None", "pathlib.Path | None"):
        return text
    from ruamel.yaml import YAML

    try:
        return YAML(typ="safe").load(text)
    except Exception:  # noqa: BLE001 - pydantic then reports the value as invalid
        return text


def env_problem(text: str, value: Any, annotation: Any, dotted: str) -> str | None:
    """What is wrong with an environment override, or None. An override replaces a value, it
    never removes one: ``null`` or ``~`` would silently drop the file's setting (a change
    guard's limit among them), and a number's override must be a number (``true`` is not 1)."""
    if value is None:
        return (f"{text!r} would unset the setting; an environment variable can only replace "
                "a value. Remove the variable to use the file's value")
    if numeric(annotation) and (isinstance(value, bool) or not isinstance(value, int | float)):
        hint = (" (to switch the change guard off, write 'off' in the file)"
                if dotted.startswith("write.max_changes") else "")
        return f"{text!r} is not a number; an override of a number must be a number{hint}"
    return None


def numeric(annotation: Any) -> bool:
    """Whether a setting holds a number (``int``, ``float``, or one of them or a word)."""
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) in (dict, list, Literal):
        return False
    return any(numeric(arg) for arg in typing.get_args(annotation))
