"""SMTP delivery of the outbox: every queued ``.eml`` is sent, then moved to ``outbox/sent``.

The outbox folder is the queue: a digest is written there before any network I/O, so an SMTP outage
loses nothing; the next run (or ``keyservices send-outbox``) delivers what is still queued.
"""

from __future__ import annotations

import email
import email.policy
import os
import smtplib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    sender: str = "keyservices@localhost"
    ca_file: Path | None = None

    def __repr__(self) -> str:  # never show the password in logs or tracebacks
        return (f"SmtpSettings(host={self.host!r}, port={self.port}, security={self.security!r}, "
                f"username={self.username!r}, password={'***' if self.password else None})")


@dataclass
class DeliveryReport:
    sent: list[Path] = field(default_factory=list)
    queued: list[Path] = field(default_factory=list)
    error: str | None = None


def queued(outbox: Path) -> list[Path]:
    """Queued messages, oldest first."""
    if not outbox.is_dir():
        return []
    return sorted(outbox.glob("*.eml"), key=lambda p: (p.stat().st_mtime, p.name))


def send_outbox(settings: SmtpSettings | None, outbox: Path) -> DeliveryReport:
    """Deliver every queued message over one SMTP session; stop at the first failure."""
    pending = queued(outbox)
    report = DeliveryReport(queued=list(pending))
    if settings is None or not pending:
        return report
    try:
        with _connect(settings) as smtp:
            for path in pending:
                msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.SMTP)
                smtp.send_message(msg, from_addr=settings.sender)
                _move_to_sent(path)
                report.sent.append(path)
                report.queued.remove(path)
    except (OSError, smtplib.SMTPException) as exc:
        report.error = _describe(exc, settings)
    return report


def _connect(s: SmtpSettings) -> smtplib.SMTP:
    """Connect with certificate verification always on; a private CA is trusted via ca_file."""
    context = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
    if s.security == "ssl":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
    else:
        smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        if s.security == "starttls":
            smtp.starttls(context=context)
    if s.username:
        smtp.login(s.username, s.password or "")
    return smtp


def _move_to_sent(path: Path) -> None:
    sent = path.parent / "sent"
    sent.mkdir(exist_ok=True)
    os.replace(path, sent / path.name)
    html = path.with_suffix(".html")
    if html.exists():
        os.replace(html, sent / html.name)


def _describe(exc: BaseException, s: SmtpSettings) -> str:
    text = str(exc) or type(exc).__name__
    if s.password:
        text = text.replace(s.password, "***")
    return f"SMTP {s.host}:{s.port}: {text}"
