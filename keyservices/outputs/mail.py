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

A recipient the server refuses (a 550 at RCPT) does not stop the queue and is never dropped in
silence. The message stays queued, and ``<stem>.delivery.json`` beside it records who has it and
who was refused (code, reply, since when). The next delivery sends it to the refused recipients
only, so nobody gets it twice; once it is older than ``max_age_days`` it is expired with that
record, and the refusals are reported as given up (``given_up``). A message whose every recipient
is refused, and that reached nobody before, is an error, as an SMTP failure is. Once the server
has accepted a message (250 after DATA) it is delivered: what the server answers to QUIT (a
421, a dropped line) changes nothing.
"""

from __future__ import annotations

import datetime as dt
import email
import email.message
import email.policy
import email.utils
import hashlib
import json
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
RECORD_SUFFIX = ".delivery.json"  # beside a message some recipients refused: who has it
REPLY_CHARS = 200  # a server's reply is quoted in logs and digests, not pasted whole
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


@dataclass(frozen=True, slots=True)
class Refusal:
    """One recipient the server refused for one message: kept and retried, or given up on."""

    path: Path  # the .eml: queued in the outbox, or in outbox/expired once given up on
    recipient: str
    code: int
    reply: str
    since: str  # when it was first refused (ISO, local time)
    delivered: tuple[str, ...]  # who has the message already

    def describe(self) -> str:
        """One line for the log, ``status`` and the digest's notes."""
        reached = ", ".join(self.delivered) if self.delivered else "no one yet"
        return (f"{self.path.name}: {self.recipient} refused by the mail server "
                f"({self.code} {self.reply}) since {self.since[:16].replace('T', ' ')}; "
                f"delivered to {reached}")


@dataclass
class DeliveryReport:
    """What one delivery did; ``error`` means some mail reached no one (exit 5), ``warnings`` do
    not. ``refused`` is queued mail kept for the recipients the server refused (retried by the
    next delivery); ``given_up`` the refusals of mail that expired with them."""

    sent: list[Path] = field(default_factory=list)
    queued: list[Path] = field(default_factory=list)
    expired: list[Path] = field(default_factory=list)  # now in outbox/expired, never sent
    already_sent: list[Path] = field(default_factory=list)  # recorded as sent: moved, not resent
    partly_sent: list[Path] = field(default_factory=list)  # delivered to some, kept for others
    refused: list[Refusal] = field(default_factory=list)
    given_up: list[Refusal] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def fail(self, error: str) -> None:
        """Keep every error: a refused message does not stop the queue, so more may follow."""
        self.error = error if self.error is None else f"{self.error}; {error}"


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


def kept_for_refused(outbox: Path) -> list[Refusal]:
    """Queued messages the server refused for some recipients: retried for those only."""
    return [r for item in _scan(outbox) for r in _refusals(item.path, item.message_id)]


def given_up(outbox: Path, *, unnoted: bool = False) -> list[Refusal]:
    """Recipients of expired messages that the server refused until the end; ``unnoted``: only
    those no digest has mentioned yet (see ``mark_noted``)."""
    folder = outbox / EXPIRED_DIR
    if not folder.is_dir():
        return []
    out = []
    for record in sorted(folder.glob(f"*{RECORD_SUFFIX}")):
        eml = record.with_name(record.name[:-len(RECORD_SUFFIX)] + ".eml")
        data = _load_record(eml)
        if data is not None and not (unnoted and data.get("noted")):
            out += _refusals(eml, None, data)
    return out


def mark_noted(refusals: list[Refusal]) -> None:
    """Remember that a digest has said these were given up on, so the next one does not repeat it;
    best effort (a failure only repeats the note)."""
    for path in {r.path for r in refusals}:
        data = _load_record(path)
        if data is not None:
            data["noted"] = True
            try:
                _write_record(path, data)
            except OSError:
                pass


def send_outbox(settings: SmtpSettings | None, outbox: Path, *, max_age_days: int | None = None,
                today: dt.date | None = None) -> DeliveryReport:
    """Deliver every queued message over one SMTP session; stop at the first SMTP failure.

    Without settings nothing is touched (the outbox is then the delivery). Messages already
    recorded as sent are only moved; messages older than ``max_age_days`` are only expired (with
    the refusals that kept them reported as given up). A message kept for refused recipients goes
    to those only.
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
            refused = _refusals(item.path, item.message_id)
            _file_away(item.path, EXPIRED_DIR, report, sent=False)
            report.given_up += [_moved(r, EXPIRED_DIR) for r in refused]
        else:
            to_send.append(item)
    if not to_send:
        return report
    smtp: smtplib.SMTP | None = None
    try:
        smtp = _connect(settings)
        for item in to_send:
            _send_one(smtp, item, outbox, settings, report)
    except (OSError, smtplib.SMTPException) as exc:
        report.fail(_describe(exc, settings))
    finally:
        if smtp is not None:
            _hang_up(smtp)
    return report


def _send_one(smtp: smtplib.SMTP, item: _Queued, outbox: Path, settings: SmtpSettings,
              report: DeliveryReport) -> None:
    """Send one message to whoever does not have it yet; a refused recipient keeps it queued."""
    try:
        record = _load_record(item.path, item.message_id, strict=True) or {}
    except (OSError, ValueError, TypeError) as exc:
        report.warnings.append(
            f"{item.path.name} was not sent: its record of who already has it "
            f"({_record_path(item.path)}) cannot be read ({exc}), and sending without it could "
            "mail someone twice; fix or delete that file (deleting it sends to every recipient)")
        return
    msg = email.message_from_bytes(item.path.read_bytes(), policy=email.policy.SMTP)
    everyone = _recipients(msg)
    delivered = list(record.get("delivered", []))
    remaining = [a for a in everyone if a not in delivered]
    refused: dict[str, tuple[int, bytes]] = {}
    if remaining or not record:
        try:
            refused = smtp.send_message(msg, from_addr=settings.sender,
                                        to_addrs=remaining or None)
        except smtplib.SMTPRecipientsRefused as exc:  # every remaining recipient; session intact
            if not exc.recipients:  # no recipient at all: a broken message, as before
                raise
            refused = dict(exc.recipients)
    delivered += [a for a in remaining if a not in refused]
    if refused:
        _keep_for_refused(item, record, delivered, refused, outbox, settings, report)
        return
    if record:  # what sent/ keeps beside the message: everyone has it
        record.update(delivered=delivered, refused={})
        try:
            _write_record(item.path, record)
        except OSError:
            pass  # the Message-ID recorded next is what prevents a second send
    report.sent.append(item.path)
    report.queued.remove(item.path)
    _record_sent(outbox, item, report)
    _file_away(item.path, SENT_DIR, report, sent=True)


def _keep_for_refused(item: _Queued, record: dict, delivered: list[str],
                      refused: dict[str, tuple[int, bytes]], outbox: Path,
                      settings: SmtpSettings, report: DeliveryReport) -> None:
    """Record who has the message and who was refused, so the retry reaches only the latter."""
    now = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    before = record.get("refused", {})
    record.update(message_id=item.message_id, delivered=delivered, refused={
        addr: {"code": code, "reply": _reply_text(reply),
               "since": before.get(addr, {}).get("since", now), "last": now}
        for addr, (code, reply) in refused.items()})
    kept = _refusals(item.path, item.message_id, record)
    try:
        _write_record(item.path, record)
    except OSError as exc:
        if delivered:  # without the record a retry would mail these twice: settle for them
            report.warnings.append(
                f"{item.path.name} could not record who has it ({_record_path(item.path)}: "
                f"{exc}), so it is not retried for {', '.join(refused)} (it would reach "
                f"{', '.join(delivered)} twice); forward it to them from {outbox / SENT_DIR}")
            report.given_up += [_moved(r, SENT_DIR) for r in kept]
            report.sent.append(item.path)
            report.queued.remove(item.path)
            _record_sent(outbox, item, report)
            _file_away(item.path, SENT_DIR, report, sent=True)
            return
    report.refused += kept
    if delivered:
        report.partly_sent.append(item.path)
    else:
        report.fail(f"SMTP {settings.host}:{settings.port} refused every recipient of "
                    f"{item.path.name}: " + "; ".join(f"{r.recipient} ({r.code} {r.reply})"
                                                      for r in kept))


def _recipients(msg: email.message.Message) -> list[str]:
    """The envelope recipients ``send_message`` would use (To, Bcc, Cc or their Resent- forms)."""
    prefix = "Resent-" if msg.get_all("Resent-Date") else ""
    fields = [str(v) for v in (msg[prefix + "To"], msg[prefix + "Bcc"], msg[prefix + "Cc"])
              if v is not None]
    return list(dict.fromkeys(a for _, a in email.utils.getaddresses(fields) if a))


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    text = " ".join(text.split())
    return text if len(text) <= REPLY_CHARS else text[:REPLY_CHARS - 1] + "\u2026"


def _record_path(eml: Path) -> Path:
    return eml.with_name(eml.stem + RECORD_SUFFIX)


def _load_record(eml: Path, message_id: str | None = None, *,
                 strict: bool = False) -> dict | None:
    """The record beside ``eml``; None if there is none or it belongs to another message.
    ``strict`` raises when it cannot be read, where a guess could send the message twice."""
    path = _record_path(eml)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        if strict:
            raise
        return None
    if message_id is not None and data.get("message_id") != message_id:
        return None  # left by another message of the same name: not this one's
    return data


def _write_record(eml: Path, data: dict) -> None:
    """Written beside the message and flushed to disk before anything else happens to it."""
    path = _record_path(eml)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _refusals(eml: Path, message_id: str | None, data: dict | None = None) -> list[Refusal]:
    data = data if data is not None else _load_record(eml, message_id)
    if not data:
        return []
    delivered = tuple(data.get("delivered", []))
    return [Refusal(path=eml, recipient=addr, code=int(r.get("code", 0)),
                    reply=str(r.get("reply", "")), since=str(r.get("since", "")),
                    delivered=delivered)
            for addr, r in sorted(data.get("refused", {}).items())]


def _moved(refusal: Refusal, folder_name: str) -> Refusal:
    path = refusal.path.parent / folder_name / refusal.path.name
    return Refusal(path, refusal.recipient, refusal.code, refusal.reply, refusal.since,
                   refusal.delivered)


def _hang_up(smtp: smtplib.SMTP) -> None:
    """QUIT, whatever the answer: every message the server accepted (250 after DATA) is delivered
    and recorded already, so a 421 or a dropped line here must not turn it into a failure."""
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        pass
    finally:
        smtp.close()


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
    """Move the ``.eml``, its ``.html`` and its delivery record into a subfolder; a failure is a
    warning, not a stop."""
    folder = path.parent / folder_name
    try:
        folder.mkdir(exist_ok=True)
        os.replace(path, folder / path.name)
        for beside in (path.with_suffix(".html"), _record_path(path)):
            if beside.exists():
                os.replace(beside, folder / beside.name)
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
    try:
        if s.security == "starttls":
            smtp.starttls(context=context)
        if s.username:
            smtp.login(s.username, s.password or "")
    except BaseException:  # a refused STARTTLS or login must not leave the socket open
        smtp.close()
        raise
    return smtp


def _describe(exc: BaseException, s: SmtpSettings) -> str:
    text = str(exc) or type(exc).__name__
    if s.password:
        text = text.replace(s.password, "***")
    return f"SMTP {s.host}:{s.port}: {text}"
