"""SMTP delivery of the outbox: every queued ``.eml`` is sent, then moved to ``outbox/sent``.

The outbox folder is the queue: a digest is written there before any network I/O, so an SMTP outage
loses nothing; the next run (or ``keyservices send-outbox``) delivers what is still queued.

Three rules keep the queue safe to leave unattended:

* A message older than ``max_age_days`` is moved to ``outbox/expired`` and never sent, so turning
  on ``smtp:`` after weeks in test mode does not mail the backlog. Its age is its ``Date`` header
  (when the digest was rendered), else the ``YYYY-MM-DD`` its file name starts with; never the
  file's mtime, which a copied folder does not keep. A message with neither is sent.
* Every delivered message's Message-ID is appended to ``outbox/sent-message-ids.txt`` before it
  is moved, so a message whose move to ``sent/`` fails is moved later but never sent twice.
* Sending stops at the first SMTP failure; what is left stays queued, in order (oldest first).
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import email.utils
import hashlib
import os
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Literal

SENT_DIR = "sent"
EXPIRED_DIR = "expired"
SENT_IDS = "sent-message-ids.txt"
_NAME_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")


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
    """What one delivery did; ``error`` stops the queue, ``warnings`` do not."""

    sent: list[Path] = field(default_factory=list)
    queued: list[Path] = field(default_factory=list)
    expired: list[Path] = field(default_factory=list)  # now in outbox/expired, never sent
    already_sent: list[Path] = field(default_factory=list)  # recorded as sent: moved, not resent
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Queued:
    path: Path
    written: dt.datetime | None  # from the Date header or the file name; None if neither
    message_id: str


def queued(outbox: Path) -> list[Path]:
    """Queued messages, oldest first (by Date header, then file name)."""
    return [q.path for q in _scan(outbox)]


def expired_count(outbox: Path) -> int:
    """Messages that were too old to send, kept in ``outbox/expired`` for the admin to read."""
    folder = outbox / EXPIRED_DIR
    return len(list(folder.glob("*.eml"))) if folder.is_dir() else 0


def send_outbox(settings: SmtpSettings | None, outbox: Path, *, max_age_days: int | None = None,
                today: dt.date | None = None) -> DeliveryReport:
    """Deliver every queued message over one SMTP session; stop at the first failure.

    Without settings nothing is touched (the outbox is then the delivery). Messages already
    recorded as sent are only moved; messages older than ``max_age_days`` are only expired.
    """
    pending = _scan(outbox)
    report = DeliveryReport(queued=[q.path for q in pending])
    if settings is None or not pending:
        return report
    try:
        done = _sent_ids(outbox)
    except OSError as exc:
        report.error = (f"cannot read {outbox / SENT_IDS} ({exc}), so nothing was sent: without "
                        "it a message could be sent twice; fix its permissions")
        return report
    today = today or dt.date.today()
    to_send: list[_Queued] = []
    for item in pending:
        if item.message_id in done:  # delivered before, but its move to sent/ failed
            report.queued.remove(item.path)
            report.already_sent.append(item.path)
            _file_away(item.path, SENT_DIR, report, sent=True)
        elif (max_age_days is not None and item.written is not None
              and (today - item.written.date()).days > max_age_days):
            report.queued.remove(item.path)
            report.expired.append(item.path)
            _file_away(item.path, EXPIRED_DIR, report, sent=False)
        else:
            to_send.append(item)
    if not to_send:
        return report
    try:
        with _connect(settings) as smtp:
            for item in to_send:
                msg = email.message_from_bytes(item.path.read_bytes(), policy=email.policy.SMTP)
                smtp.send_message(msg, from_addr=settings.sender)
                report.sent.append(item.path)
                report.queued.remove(item.path)
                _record_sent(outbox, item, report)
                _file_away(item.path, SENT_DIR, report, sent=True)
    except (OSError, smtplib.SMTPException) as exc:
        report.error = _describe(exc, settings)
    return report


def _scan(outbox: Path) -> list[_Queued]:
    if not outbox.is_dir():
        return []
    items = [_read_queued(p) for p in outbox.glob("*.eml")]
    floor = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(items, key=lambda q: (q.written or floor, q.path.name))


def _read_queued(path: Path) -> _Queued:
    """The headers only: when the message was written and the id that marks it as sent."""
    try:
        data = path.read_bytes()
    except OSError:  # sending it reports the error, with its path
        return _Queued(path=path, written=None, message_id=f"unreadable:{path.name}")
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
    message_id = (headers.get("Message-ID") or "").strip()
    if not message_id:
        message_id = "sha256:" + hashlib.sha256(data).hexdigest()
    written: dt.datetime | None = None
    try:
        written = email.utils.parsedate_to_datetime(headers.get("Date") or "")
    except (TypeError, ValueError):
        match = _NAME_DATE.match(path.name)
        if match:
            try:
                written = dt.datetime.fromisoformat(match.group(1))
            except ValueError:
                written = None
    if written is not None:
        written = written.astimezone()  # local calendar date; naive means local time
    return _Queued(path=path, written=written, message_id=message_id)


def _sent_ids(outbox: Path) -> set[str]:
    record = outbox / SENT_IDS
    if not record.exists():
        return set()
    return {line.strip() for line in record.read_text(encoding="utf-8").splitlines()
            if line.strip()}


def _record_sent(outbox: Path, item: _Queued, report: DeliveryReport) -> None:
    """Append the Message-ID and flush it to disk before the move, so a failed move is harmless."""
    try:
        with (outbox / SENT_IDS).open("a", encoding="utf-8") as fh:
            fh.write(item.message_id + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        report.warnings.append(f"{item.path.name} was sent but could not be recorded in "
                               f"{outbox / SENT_IDS} ({exc})")


def _file_away(path: Path, folder_name: str, report: DeliveryReport, *, sent: bool) -> None:
    """Move the ``.eml`` and its ``.html`` into a subfolder; a failure is a warning, not a stop."""
    folder = path.parent / folder_name
    try:
        folder.mkdir(exist_ok=True)
        os.replace(path, folder / path.name)
        html = path.with_suffix(".html")
        if html.exists():
            os.replace(html, folder / html.name)
    except OSError as exc:
        then = ("it was sent and will not be sent again" if sent
                else "it will not be sent")
        report.warnings.append(f"could not move {path.name} to {folder} ({exc}); {then}; "
                               "the next delivery moves it")


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


def _describe(exc: BaseException, s: SmtpSettings) -> str:
    text = str(exc) or type(exc).__name__
    if s.password:
        text = text.replace(s.password, "***")
    return f"SMTP {s.host}:{s.port}: {text}"
