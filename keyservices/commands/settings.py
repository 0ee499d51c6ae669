"""``config show`` and the password sources ``check`` prints: the settings as people read them.

Kept apart from ``config`` (which validates the file) so that the model stays one screenful.
"""

from __future__ import annotations

import json
from typing import Any

from ..config import Config, PasswordName, setting_keys
from ..erp import display_url


def show(config: Config) -> list[tuple[str, str, str]]:
    """The effective settings (key, value, source), secrets masked: for ``config show``."""
    rows = []
    dumped = config.model_dump(by_alias=True, mode="json")
    for key, _ in setting_keys():
        node: Any = dumped
        for part in key:
            node = node.get(part) if isinstance(node, dict) else None
        dotted = ".".join(key)
        if key[0] == "smtp" and dumped.get("smtp") is None:
            continue
        value = display_url(node) if dotted in ("erp.url", "state.url") and node else node
        rows.append((dotted, json.dumps(value, ensure_ascii=False),
                     config.sources.get(dotted, "default")))
    for which in password_names(config):
        secret = config.password(which)
        rows.append((f"({which} password)", "set" if secret.value else "not set", secret.source))
    return rows


def password_sources(config: Config) -> dict[str, str]:
    """Where each configured password comes from ("env NAME", "keyring", "not set"), never the
    value: what ``check`` and ``config show`` print."""
    return {which: config.password(which).source for which in password_names(config)}


def password_names(config: Config) -> list[PasswordName]:
    """The passwords a config uses: the ERP's; SMTP's with an smtp: section; the state
    store's with state.password_env."""
    names: list[PasswordName] = ["erp"]
    if config.smtp is not None:
        names.append("smtp")
    if config.state.password_env:
        names.append("state")
    return names
