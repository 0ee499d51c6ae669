"""The outbox as a queue a scheduler can trust: no backlog mailed, no race, no double send."""

from __future__ import annotations

import datetime as dt
import email.message
import email.utils
import os
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

import keyservices
from keyservices.cli import cli
from keyservices.commands import deliver
from keyservices.commands.setup import status
from keyservices.config import load_config
from keyservices.errors import ConfigError
from keyservices.outputs import mail

from .conftest import AS_OF, ErpBuilder, write_config
from .test_mail_delivery import free_port, smtp_config, start_server

TODAY = dt.date.today()


def stale(outbox: Path, day: dt.date, *, run: int, date_header: bool = True,
          name: str | None = None) -> Path:
    """A digest queued on ``day``, as a test-mode night would have left it."""
    outbox.mkdir(parents=True, exist_ok=True)
    msg = email.message.EmailMessage()
    msg["Subject"] = f"[keyservices] {day}: digest {run}"
    msg["From"], msg["To"] = "ks@example.com", "managers@example.com"
    if date_header:
        noon = dt.datetime.combine(day, dt.time(2, 0)).astimezone()
        msg["Date"] = email.utils.format_datetime(noon)
    msg["Message-ID"] = email.utils.make_msgid(domain="keyservices.local")
    msg.set_content("old news")
    stem = name or f"{day.isoformat()}-run{run:04d}-digest"
    (outbox / f"{stem}.html").write_text("<p>old news</p>", encoding="utf-8")
    path = outbox / f"{stem}.eml"
    path.write_bytes(msg.as_bytes())
    return path


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def dealer(erp: ErpBuilder) -> ErpBuilder:
    erp.equipment(erp.customer("COP001", "Copier Customer"), "MFP-A3-CO-03")
    return erp


def test_two_weeks_of_test_mode_are_not_mailed_when_smtp_is_turned_on(
        dealer: ErpBuilder, config_for, smtp_port: int, runner: CliRunner) -> None:
    config = config_for(dealer, "mode: test\n")
    for n in range(14):  # fourteen unattended test-mode nights, digests left in the outbox
        stale(config.digest.outbox, TODAY - dt.timedelta(days=17 - n), run=n + 1)
    config = config_for(dealer, "mode: test\n" + smtp_config(smtp_port))
    controller, inbox = start_server(smtp_port)
    try:
        result = keyservices.run(config, as_of=AS_OF)
    finally:
        controller.stop()
    assert result.exit_code == 0 and result.delivery == "sent"
    # default max_age_days 3: the backlog (4 to 17 days old) expires; only tonight's is sent
    sent_subjects = [m["Subject"] for m in inbox.messages]
    assert len(sent_subjects) == 1, sent_subjects
    expired = sorted((config.digest.outbox / "expired").glob("*.eml"))
    assert len(expired) == 14
    assert len(list((config.digest.outbox / "expired").glob("*.html"))) == 14
    assert not list(config.digest.outbox.glob("*.eml"))
    assert status(config).expired == 14
    shown = runner.invoke(cli, ["status", "-c", str(config.config_path)])
    assert "Expired (older than digest.max_age_days, never sent): 14 in " in shown.output


def test_age_comes_from_the_date_header_then_the_file_name_never_the_mtime(
        tmp_path: Path, smtp_port: int) -> None:
    outbox = tmp_path / "outbox"
    old = TODAY - dt.timedelta(days=4)
    # copied folder: the old digest has a fresh mtime, the fresh one an old mtime
    by_header = stale(outbox, old, run=1)
    os.utime(by_header, None)
    by_name = stale(outbox, old, run=2, date_header=False)
    # an --as-of backfill run tonight: old run date in the name, tonight's Date header wins
    backfill = stale(outbox, TODAY, run=3, name=f"{old.isoformat()}-run0003-digest")
    fresh = stale(outbox, TODAY - dt.timedelta(days=3), run=4)
    week_ago = (dt.datetime.now() - dt.timedelta(days=7)).timestamp()
    os.utime(fresh, (week_ago, week_ago))
    two_weeks_ago = (dt.datetime.now() - dt.timedelta(days=14)).timestamp()
    os.utime(backfill, (two_weeks_ago, two_weeks_ago))
    undated = stale(outbox, TODAY, run=5, date_header=False, name="hand-written")
    controller, inbox = start_server(smtp_port)
    try:
        report = mail.send_outbox(mail.SmtpSettings(host="127.0.0.1", port=smtp_port,
                                                    security="none", timeout=5),
                                  outbox, max_age_days=3)
    finally:
        controller.stop()
    assert report.error is None
    assert sorted(p.name for p in report.expired) == sorted([by_header.name, by_name.name])
    # oldest first by the same dates (undated first), not by mtime
    assert [p.name for p in report.sent] == [undated.name, fresh.name, backfill.name]
    assert len(inbox.messages) == 3
    assert (outbox / "expired" / by_name.name).exists()


def test_without_smtp_nothing_expires(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    path = stale(outbox, TODAY - dt.timedelta(days=30), run=1)
    report = mail.send_outbox(None, outbox, max_age_days=3)
    assert report.queued == [path] and not report.expired and path.exists()


def test_max_age_days_below_one_is_a_config_error(erp: ErpBuilder, tmp_path: Path) -> None:
    path = write_config(tmp_path, erp.url)
    path.write_text(path.read_text(encoding="utf-8").replace(
        "digest:\n", "digest:\n  max_age_days: 0\n"), encoding="utf-8")
    with pytest.raises(ConfigError,
                       match=r"config\.yaml:\d+:\d+: digest\.max_age_days: Input should be greater"):
        load_config(path)


def test_send_outbox_waits_for_no_one_while_a_run_holds_the_lock(
        dealer: ErpBuilder, config_for, smtp_port: int, runner: CliRunner) -> None:
    from keyservices.state import run_lock

    config = config_for(dealer, smtp_config(smtp_port))
    queued = stale(config.digest.outbox, TODAY, run=1)
    controller, inbox = start_server(smtp_port)
    try:
        with run_lock(config.state.dir):
            held = runner.invoke(cli, ["send-outbox", "-c", str(config.config_path)])
        after = runner.invoke(cli, ["send-outbox", "-c", str(config.config_path)])
    finally:
        controller.stop()
    assert held.exit_code == 4, held.output
    assert "another keyservices run holds the lock" in held.output
    assert "Traceback" not in held.output
    assert after.exit_code == 0, after.output
    assert len(inbox.messages) == 1
    assert (config.digest.outbox / "sent" / queued.name).exists()


def test_a_sent_message_whose_move_fails_is_not_sent_again(
        dealer: ErpBuilder, config_for, smtp_port: int, runner: CliRunner) -> None:
    config = config_for(dealer, smtp_config(smtp_port))
    queued = stale(config.digest.outbox, TODAY, run=1)
    blocker = config.digest.outbox / "sent"
    blocker.write_text("not a folder", encoding="utf-8")  # the move to sent/ fails once
    controller, inbox = start_server(smtp_port)
    try:
        first = runner.invoke(cli, ["send-outbox", "-c", str(config.config_path)])
        assert queued.exists()  # delivered, but still in the outbox
        blocker.unlink()
        second = runner.invoke(cli, ["send-outbox", "-c", str(config.config_path)])
    finally:
        controller.stop()
    assert first.exit_code == 0, first.output
    assert "could not move" in first.output and "will not be sent again" in first.output
    assert second.exit_code == 0, second.output
    assert len(inbox.messages) == 1
    assert (config.digest.outbox / "sent" / queued.name).exists()
    assert (config.digest.outbox / "sent" / queued.with_suffix(".html").name).exists()
    assert not queued.exists()


def test_two_failure_alerts_in_one_second_are_both_kept(
        erp: ErpBuilder, config_for, monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_for(erp)
    frozen = dt.datetime(2026, 11, 24, 2, 0, 0)

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> Frozen:  # type: ignore[override]
            return cls.fromtimestamp(frozen.timestamp(), tz)

    monkeypatch.setattr(deliver, "dt", types.SimpleNamespace(datetime=Frozen, date=dt.date))
    first = deliver.alert_failure(config, RuntimeError("first"), 1)
    second = deliver.alert_failure(config, RuntimeError("second"), 1)
    assert first is not None and second is not None and first != second
    alerts = sorted(config.digest.outbox.glob("*-failure-exit1.eml"))
    assert len(alerts) == 2
    bodies = b"".join(p.read_bytes() for p in alerts)
    assert b"first" in bodies and b"second" in bodies


def test_a_run_refused_by_the_lock_queues_its_alert_but_leaves_sending_to_the_holder(
        dealer: ErpBuilder, config_for, smtp_port: int) -> None:
    from keyservices.errors import LockHeld
    from keyservices.state import run_lock

    config = config_for(dealer, smtp_config(smtp_port))
    controller, inbox = start_server(smtp_port)
    try:
        with run_lock(config.state.dir), pytest.raises(LockHeld):
            keyservices.run(config, as_of=AS_OF)
    finally:
        controller.stop()
    assert not inbox.messages  # the holder is sending this queue; no second sender
    (alert,) = config.digest.outbox.glob("*-failure-exit4.eml")
    assert b"another keyservices run holds the lock" in alert.read_bytes()
