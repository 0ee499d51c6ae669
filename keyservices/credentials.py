"""Passwords: where they may come from (an environment variable, then the OS keyring) and where they
may never be (any part of a database URL, and so any output that shows one).

A nightly job under Windows Task Scheduler runs as a service account that never sees an admin's
per-user ``setx`` variable, so the keyring (Windows Credential Manager for that account) is the
second source. Entries are named service ``keyservices``, user = the environment variable's name
(``KEYSERVICES_ERP_PASSWORD``), so two installs that name different variables do not clash.

This module is shared (imported by ``config``, ``erp`` and ``commands``) and imports no subpackage.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .errors import SecretStoreError

KEYRING_SERVICE = "keyservices"
log = logging.getLogger(__name__)
# a backend class whose module or name says so keeps passwords in a file anyone who can read it
# can read (keyrings.alt's file.PlaintextKeyring and pyfs.PlaintextKeyring)
_PLAINTEXT_WORDS = ("plaintext", "unencrypted")
_WARNED: list[tuple[object, str]] = []  # (backend, entry) already warned about in this process

# query parameters and ODBC keywords that carry a password (any case, "_" and "-" ignored):
# SQLAlchemy's and libpq's password, libpq's sslpassword (the client key's passphrase) and
# passfile (a password file), ODBC's PWD, and anything named a secret, passphrase or token
# (KeyStoreSecret, client_secret, AccessToken)
PASSWORD_PARAMETERS = frozenset({"password", "pwd", "passwd", "pass", "passfile", "passphrase"})
_SECRET_PARTS = ("password", "passwd", "passphrase", "secret", "token")
# msodbcsql's ClientKey=file:<path>[,<passphrase>]: the path is no secret, the passphrase is
_CLIENT_KEY = "clientkey"
# one keyword=value of an ODBC connection string (``odbc_connect=DRIVER=...;UID=sa;PWD=x``); a
# value in braces may hold ; and = (a } inside is written }})
_ODBC_PAIR = re.compile(r"(^|;)(\s*)([^=;{}]+?)(\s*=\s*)(\{(?:[^}]|\}\})*\}|[^;]*)")
# what the admin can do instead, for the secrets the password_env / keyring cannot hold
_INSTEAD = {
    "sslpassword": "the client key's passphrase: use a key file without one, readable only by "
                   "the account the job runs as",
    "passfile": "a password file: set PGPASSFILE in the job's environment instead",
    _CLIENT_KEY: "the client key's passphrase after the comma: use a key file without one, "
                 "readable only by the account the job runs as",
}


def is_secret_keyword(name: str) -> bool:
    """Whether a URL query parameter or ODBC keyword named ``name`` carries a secret."""
    key = _normal(name)
    return (key in PASSWORD_PARAMETERS or key.endswith("pwd")
            or any(part in key for part in _SECRET_PARTS))


def _normal(key: str) -> str:
    return re.sub(r"[\s_\-]", "", key).lower()


def _secret_in(key: str, value: str) -> bool:
    """``key=value`` carries a secret: a secret keyword, or a ClientKey with a passphrase."""
    return is_secret_keyword(key) or (_normal(key) == _CLIENT_KEY and "," in value)


def _why(key: str) -> str:
    note = _INSTEAD.get(_normal(key))
    return f", {note}" if note else ""


def url_password_problem(url: str | URL) -> str | None:
    """Where ``url`` carries a password or another secret (None when it carries none); never the
    secret itself.

    Raises ``ArgumentError`` for a string that is not a SQLAlchemy URL."""
    parsed = make_url(url)
    if parsed.password:
        return "the URL contains a password (user:password@)"
    for key, values in parsed.query.items():
        for value in (values,) if isinstance(values, str) else values:
            if _secret_in(key, value):
                return f"the URL contains a password (the query parameter {key}={_why(key)})"
            for pair in _ODBC_PAIR.finditer(value):
                inner = pair.group(3)
                if _secret_in(inner, pair.group(5)):
                    return (f"the URL contains a password ({inner}= inside {key}="
                            f"{_why(inner)})")
    return None


def _masked_value(key: str, value: str) -> str:
    """``value`` of ``key`` with its secret replaced by ***: all of it, or a ClientKey's
    passphrase (the part after the comma), keeping the braces around an ODBC value."""
    braced = value.startswith("{") and value.endswith("}") and len(value) >= 2
    inner = value[1:-1] if braced else value
    inner = "***" if is_secret_keyword(key) else inner.split(",", 1)[0] + ",***"
    return "{" + inner + "}" if braced else inner


def _mask_odbc(value: str) -> str:
    """Every secret keyword's value inside an ODBC connection string masked."""
    def mask(m: re.Match[str]) -> str:
        if not _secret_in(m.group(3), m.group(5)):
            return m.group(0)
        start, space, key, equals, value = m.groups()
        return start + space + key + equals + _masked_value(key, value)

    return _ODBC_PAIR.sub(mask, value)


def mask_url(url: str | URL) -> str:
    """The URL as text with every secret masked: the user part's password, secret query
    parameters (password, sslpassword, passfile, PWD, ..., a ClientKey's passphrase) and the same
    inside an ODBC connection string. Safe for logs, messages and the state store."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<invalid URL>"
    query: dict[str, str | tuple[str, ...]] = {}
    for key, values in parsed.query.items():
        masked = tuple(_masked_value(key, v) if _secret_in(key, v) else _mask_odbc(v)
                       for v in ((values,) if isinstance(values, str) else values))
        query[key] = masked[0] if isinstance(values, str) else masked
    return parsed.set(query=query).render_as_string(hide_password=True)


@dataclass(frozen=True)
class Secret:
    """A password and where it came from; ``repr`` and ``str`` never show the value."""

    source: str  # "env KEYSERVICES_ERP_PASSWORD", "keyring", "not set", "not needed (SQLite)"
    value: str | None = field(default=None, repr=False)
    problem: str | None = None  # the keyring could not be read: why, and what to do

    def __str__(self) -> str:
        return self.source

    def get(self) -> str | None:
        """The password; a keyring that could not be read fails here, with what to do."""
        if self.problem:
            raise SecretStoreError(self.problem)
        return self.value


def keyring_entry(env_name: str) -> str:
    """How an entry is named, for messages and docs: service keyservices, user <variable>."""
    return f"service '{KEYRING_SERVICE}', user '{env_name}'"


def find_password(env_name: str) -> Secret:
    """The password named by ``env_name``: the environment variable wins, then the OS keyring.

    No keyring backend (a Linux server without a Secret Service) means "not set", as before the
    keyring existed; a backend that fails is reported in ``problem`` (raised by ``get``)."""
    value = os.environ.get(env_name)
    if value:
        return Secret(f"env {env_name}", value)
    try:
        import keyring
        from keyring.errors import NoKeyringError

        try:
            stored = keyring.get_password(KEYRING_SERVICE, env_name)
        except NoKeyringError:
            return Secret("not set")
    except Exception as exc:  # noqa: BLE001 - any backend failure becomes one clear message
        return Secret("keyring error", problem=(
            f"the password could not be read from the keyring ({keyring_entry(env_name)}): "
            f"{type(exc).__name__}: {exc}. Set the environment variable {env_name} instead, or "
            f"fix the keyring and run 'keyservices secret set' again as the account the job "
            f"runs as"))
    if stored:
        _warn_once(env_name)
        return Secret("keyring", stored)
    return Secret("not set")


def plaintext_warning(env_name: str) -> str | None:
    """Why the keyring entry for ``env_name`` is not safe where it is, or None.

    The ``keyring`` package picks its backend itself: installing keyrings.alt, a
    ``PYTHON_KEYRING_BACKEND`` variable or a ``keyringrc.cfg`` can make it a plain file, where
    the admin believes the password sits in the OS store. A chain of backends (keyring's
    ChainerBackend) is judged by the member that actually holds the entry."""
    import keyring

    backend = keyring.get_keyring()
    for member in getattr(backend, "backends", None) or [backend]:
        kind = f"{type(member).__module__}.{type(member).__qualname__}".lower()
        if not any(word in kind for word in _PLAINTEXT_WORDS):
            continue
        try:
            held = member.get_password(KEYRING_SERVICE, env_name) is not None
            where = getattr(member, "file_path", None)
        except Exception:  # noqa: BLE001 - a backend that fails here holds nothing we can use
            held, where = False, None
        if held:
            return _plaintext_message(type(member).__name__, env_name, where)
    return None


def _plaintext_message(backend: str, env_name: str, where: object) -> str:
    file = f" ({where})" if where else ""
    return (f"the password ({keyring_entry(env_name)}) is kept by {backend}, which stores it "
            f"unencrypted in a file{file}: anyone who can read that file can read the password. "
            f"Remove it ('keyservices secret delete'), then keep it in the OS store (Windows "
            f"Credential Manager, macOS Keychain, a Linux Secret Service: uninstall keyrings.alt "
            f"or unset PYTHON_KEYRING_BACKEND, and run 'keyservices secret set' again), or in the "
            f"environment variable {env_name} (an env file only the job's account can read)")


def _warn_once(env_name: str) -> None:
    """Log the plaintext warning for an entry read from the keyring, once per process: in the
    day's log for the nightly run, on stderr for check and config show."""
    try:
        import keyring

        backend = keyring.get_keyring()
        if any(b is backend and name == env_name for b, name in _WARNED):
            return
        _WARNED.append((backend, env_name))
        warning = plaintext_warning(env_name)
    except Exception:  # noqa: BLE001 - a warning must never stop the password being used
        return
    if warning:
        log.warning(warning[0].upper() + warning[1:])


def store_password(env_name: str, value: str) -> str:
    """Save the password in the OS keyring of the current user; returns the backend's name."""
    import keyring

    try:
        keyring.set_password(KEYRING_SERVICE, env_name, value)
        return _backend_name(keyring.get_keyring())
    except Exception as exc:  # noqa: BLE001 - one clear message instead of a traceback
        raise SecretStoreError(_write_failed("stored in", env_name, exc)) from None


def delete_password(env_name: str) -> bool:
    """Remove the entry; False when there was none."""
    import keyring
    from keyring.errors import PasswordDeleteError

    try:
        if keyring.get_password(KEYRING_SERVICE, env_name) is None:
            return False
        keyring.delete_password(KEYRING_SERVICE, env_name)
        return True
    except PasswordDeleteError:
        return False
    except Exception as exc:  # noqa: BLE001 - one clear message instead of a traceback
        raise SecretStoreError(_write_failed("deleted from", env_name, exc)) from None


def _write_failed(what: str, env_name: str, exc: Exception) -> str:
    return (f"the password could not be {what} the keyring ({keyring_entry(env_name)}): "
            f"{type(exc).__name__}: {exc}. On Windows it lives in the Credential Manager of the "
            f"account that runs this command; on Linux without a keyring, put the password in "
            f"the environment variable {env_name} instead (an env file read by cron or systemd)")


def _backend_name(backend: object) -> str:
    name = getattr(backend, "name", None) or type(backend).__name__
    return str(name)
