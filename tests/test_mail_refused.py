"""Mail is never lost silently: a refused recipient is named, kept for and retried, and given up
on out loud; a server that hangs up after accepting the mail does not make it a failure."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner

import keyservices
from keyservices.cli import cli
from keyservices.commands import deliver
from keyservices.commands.logs import current_log_file
from keyservices.commands.setup import status
from keyservices.config import Config

from .conftest import AS_OF, ErpBuilder
from .test_mail_delivery import Inbox, free_port, smtp_config, start_server
from .test_outbox import stale

TODAY = dt.date.today()
MANAGERS, GONE = "managers@example.com", "gone@example.com"


class Refusing(Inbox):
    """Refuses some addresses at RCPT with 550, as a server does for a mailbox that is gone."""

    def __init__(self, *refused: str) -> None:
        super().__init__()
        self.refused = set(refused)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refused:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class HangsUpOnQuit(Inbox):
    """Accepts every message, then answers QUIT with 421, as a server going down does."""

    async def handle_QUIT(self, server, session, envelope):
        return "421 4.3.2 Service shutting down"


def serve(handler: Inbox, port: int) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def dealer(erp: ErpBuilder) -> ErpBuilder:
    erp.equipment(erp.customer("COP001", "Copier Customer"), "MFP-A3-CO-03")
    return erp


def with_recipients(config: Config, *recipients: str) -> Config:
    """The digest to these addresses, in the file too, so the command line sees them."""
    path = config.config_path
    assert path is not None
    path.write_text(path.read_text(encoding="utf-8").replace(
        f"to: [{MANAGERS}]", f"to: [{', '.join(recipients)}]"), encoding="utf-8")
    config.digest.to = list(recipients)
    return config


def addressed_to(path: Path, *recipients: str) -> Path:
    """A queued message (see ``stale``) readdressed to ``recipients``."""
    path.write_bytes(path.read_bytes().replace(f"To: {MANAGERS}".encode(),
                                               f"To: {', '.join(recipients)}".encode()))
    return path


def test_a_refused_recipient_is_warned_kept_and_retried_for_that_recipient_only(
        dealer: ErpBuilder, config_for, smtp_port: int, runner: CliRunner) -> None:
    config = with_recipients(config_for(dealer, smtp_config(smtp_port)), MANAGERS, GONE)
    refusing = Refusing(GONE)
    controller = serve(refusing, smtp_port)
    try:
        night = runner.invoke(cli, ["run", "-c", str(config.config_path)])  # tonight
    finally:
        controller.stop()
    assert night.exit_code == 0, night.output  # the managers have their digest
    assert [rcpts for _, rcpts in refusing.envelopes] == [[MANAGERS]]
    (kept,) = config.digest.outbox.glob("*.eml")  # kept in the outbox for the refused address
    assert not (config.digest.outbox / "sent" / kept.name).exists()
    logged = current_log_file(config.state.dir).read_text(encoding="utf-8")
    warning = next(line for line in logged.splitlines() if GONE in line)
    assert "WARNING" in warning and "550" in warning and "User unknown" in warning
    assert kept.name in warning
    (refused,) = status(config).refused
    assert GONE in refused and "550" in refused and kept.name in refused
    shown = runner.invoke(cli, ["status", "-c", str(config.config_path)])
    assert GONE in shown.output and "Kept for refused recipients: 1" in shown.output

    controller, inbox = start_server(smtp_port)  # the mailbox is back
    try:
        retried = runner.invoke(cli, ["send-outbox", "-c", str(config.config_path)])
        again = runner.invoke(cli, ["send-outbox", "-c", str(config.config_path)])
    finally:
        controller.stop()
    assert retried.exit_code == 0, retried.output
    assert "Sent 1, still queued 0." in retried.output
    assert [rcpts for _, rcpts in inbox.envelopes] == [[GONE]]  # not the managers again
    assert (config.digest.outbox / "sent" / kept.name).exists()
    assert again.exit_code == 0 and "Sent 0, still queued 0." in again.output
    assert len(inbox.messages) == 1
    assert status(config).refused == []


def test_the_next_digest_says_which_recipient_was_refused(
        dealer: ErpBuilder, config_for, smtp_port: int) -> None:
    config = with_recipients(config_for(dealer, smtp_config(smtp_port)), MANAGERS, GONE)
    refusing = Refusing(GONE)
    controller = serve(refusing, smtp_port)
    try:
        first = keyservices.run(config, as_of=AS_OF)
        second = keyservices.run(config, as_of=AS_OF)
    finally:
        controller.stop()
    assert first.exit_code == 0 and second.exit_code == 0, second.delivery_error
    # each digest reached the managers once; the refused one is still kept for GONE alone
    assert [rcpts for _, rcpts in refusing.envelopes] == [[MANAGERS], [MANAGERS]]
    assert len(status(config).refused) == 2
    text = refusing.messages[1].get_body(preferencelist=("plain",)).get_content()
    assert GONE in text and "550" in text and first.digests[0].name in text
    assert any(GONE in note for note in second.notes)
    assert not any(GONE in note for note in first.notes)


def test_a_recipient_still_refused_after_max_age_days_is_given_up_out_loud(
        erp: ErpBuilder, config_for, smtp_port: int, caplog: pytest.LogCaptureFixture) -> None:
    config = config_for(erp, smtp_config(smtp_port))
    queued = addressed_to(stale(config.digest.outbox, TODAY - dt.timedelta(days=2), run=1),
                          MANAGERS, GONE)
    refusing = Refusing(GONE)
    controller = serve(refusing, smtp_port)
    try:
        kept = deliver.send_outbox(config)  # two days old, max_age_days 3: sent, GONE refused
        config.digest.max_age_days = 1  # now too old: GONE is given up on
        with caplog.at_level(logging.WARNING, logger="keyservices"):
            given_up = deliver.send_outbox(config)
    finally:
        controller.stop()
    assert kept.error is None and kept.queued == [queued]
    assert [rcpts for _, rcpts in refusing.envelopes] == [[MANAGERS]]  # never twice
    assert given_up.expired == [queued] and not given_up.sent
    expired = config.digest.outbox / "expired" / queued.name
    assert expired.exists() and not queued.exists()
    line = next(r.getMessage() for r in caplog.records if "gave up" in r.getMessage().lower())
    assert GONE in line and "550" in line and queued.name in line
    assert status(config).refused == []
    (gave_up,) = status(config).gave_up
    assert GONE in gave_up and queued.name in gave_up
    (note,) = deliver.delivery_notes(config)
    assert GONE in note and "gave up" in note.lower()


def test_every_recipient_refused_stays_queued_and_exits_5(
        dealer: ErpBuilder, config_for, smtp_port: int, caplog: pytest.LogCaptureFixture) -> None:
    config = with_recipients(config_for(dealer, smtp_config(smtp_port)), GONE)
    controller = serve(Refusing(GONE), smtp_port)
    try:
        with caplog.at_level(logging.WARNING, logger="keyservices"):
            result = keyservices.run(config, as_of=AS_OF)
    finally:
        controller.stop()
    assert result.exit_code == 5 and result.delivery == "queued"
    assert GONE in (result.delivery_error or "") and "550" in (result.delivery_error or "")
    assert result.digest_eml is not None and result.digest_eml.exists()
    assert any(GONE in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    (refused,) = status(config).refused
    assert GONE in refused


def test_a_refused_admin_does_not_make_the_failure_alert_vanish(
        erp: ErpBuilder, config_for, smtp_port: int, caplog: pytest.LogCaptureFixture) -> None:
    from keyservices.errors import RulesError

    config = config_for(erp, smtp_config(smtp_port))
    config.digest.admins = ["it-admin@example.com", GONE]
    (config.rules / "services.yaml").write_text("services:\n  - code: [CPY\n", encoding="utf-8")
    refusing = Refusing(GONE)
    controller = serve(refusing, smtp_port)
    try:
        with caplog.at_level(logging.WARNING, logger="keyservices"), \
                pytest.raises(RulesError):
            keyservices.run(config, as_of=AS_OF)
    finally:
        controller.stop()
    assert [rcpts for _, rcpts in refusing.envelopes] == [["it-admin@example.com"]]
    assert any(GONE in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    (alert,) = config.digest.outbox.glob("*-failure-exit2.eml")  # kept for GONE
    assert alert.name in status(config).refused[0]


def test_a_421_on_quit_after_every_message_was_accepted_is_not_a_failure(
        erp: ErpBuilder, config_for, smtp_port: int, runner: CliRunner) -> None:
    config = config_for(erp, smtp_config(smtp_port))
    queued = [stale(config.digest.outbox, TODAY, run=n) for n in (1, 2, 3)]
    server = HangsUpOnQuit()
    controller = serve(server, smtp_port)
    try:
        sent = runner.invoke(cli, ["send-outbox", "-c", str(config.config_path)])
    finally:
        controller.stop()
    assert sent.exit_code == 0, sent.output
    assert "Sent 3, still queued 0." in sent.output
    assert len(server.messages) == 3
    assert all((config.digest.outbox / "sent" / p.name).exists() for p in queued)


def test_a_run_whose_server_hangs_up_on_quit_is_done_and_sent(
        dealer: ErpBuilder, config_for, smtp_port: int) -> None:
    config = config_for(dealer, smtp_config(smtp_port))
    server = HangsUpOnQuit()
    controller = serve(server, smtp_port)
    try:
        result = keyservices.run(config, as_of=AS_OF)
    finally:
        controller.stop()
    assert result.exit_code == 0 and result.delivery_error is None
    assert result.delivery == "sent" and result.digest_eml is not None
    assert result.digest_eml.parent.name == "sent" and len(server.messages) == 1
