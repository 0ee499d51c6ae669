"""Delivery to a real SMTP server (aiosmtpd) started by the test; nothing lost when it is down."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner

import keyservices
from keyservices.cli import cli
from keyservices.commands.logs import current_log_file

from .conftest import AS_OF, ErpBuilder


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_port() -> int:
    return free_port()


def start_server(port: int) -> tuple[Controller, Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, inbox


@pytest.fixture
def hostile_dealer(erp: ErpBuilder) -> Iterator[ErpBuilder]:
    cid = erp.customer("COP001", "Copier Customer")
    erp.equipment(cid, "MFP-A3-CO-03")
    # a hostile name where a baseline digest shows it: the customers that cannot be written
    erp.customer("NOCFG1", "<script>alert(\"x\")</script> & 'Co'", config=None)
    yield erp


def smtp_config(port: int) -> str:
    return (f"smtp:\n  host: 127.0.0.1\n  port: {port}\n  security: none\n  timeout: 5\n")


def test_digest_arrives_with_both_parts_and_attachment(hostile_dealer: ErpBuilder, config_for,
                                                       smtp_port: int) -> None:
    controller, inbox = start_server(smtp_port)
    try:
        config = config_for(hostile_dealer, smtp_config(smtp_port))
        result = keyservices.run(config, as_of=AS_OF)
    finally:
        controller.stop()
    assert result.exit_code == 0 and result.delivery_error is None
    (msg,) = inbox.messages
    assert inbox.envelopes[0][1] == ["managers@example.com"]
    assert msg["Subject"].startswith("[keyservices] 2026-11-24: baseline")
    assert "script" not in msg["Subject"]
    html = msg.get_body(preferencelist=("html",)).get_content()
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "<script>alert(\"x\")</script> & 'Co'" in text
    (attachment,) = list(msg.iter_attachments())
    assert "NOCFG1" in attachment.get_content()
    assert result.digest_eml.parent.name == "sent" and result.digest_eml.exists()
    assert not list(config.digest.outbox.glob("*.eml"))


def test_smtp_down_queues_exit_5_then_delivers(hostile_dealer: ErpBuilder, config_for,
                                               smtp_port: int, runner: CliRunner) -> None:
    config = config_for(hostile_dealer, smtp_config(smtp_port))
    # nothing listens on the port: the run completes, the digest stays queued, exit 5
    result = runner.invoke(cli, ["run", "-c", str(config.config_path)])
    assert result.exit_code == 5, result.output
    assert "could not be sent" in result.output and "stays queued" in result.output
    queued = list(config.digest.outbox.glob("*.eml"))
    assert len(queued) == 1
    controller, inbox = start_server(smtp_port)
    try:
        sent = runner.invoke(cli, ["send-outbox", "-c", str(config.config_path)])
    finally:
        controller.stop()
    assert sent.exit_code == 0, sent.output
    assert "Sent 1, still queued 0." in sent.output
    assert len(inbox.messages) == 1
    assert (config.digest.outbox / "sent" / queued[0].name).exists()


def test_next_run_delivers_what_an_outage_left_queued(hostile_dealer: ErpBuilder, config_for,
                                                      smtp_port: int) -> None:
    config = config_for(hostile_dealer, smtp_config(smtp_port))
    first = keyservices.run(config, as_of=AS_OF)
    assert first.exit_code == 5 and first.delivery_error
    controller, inbox = start_server(smtp_port)
    try:
        second = keyservices.run(config, as_of=AS_OF)
    finally:
        controller.stop()
    assert second.exit_code == 0
    subjects = sorted(m["Subject"] for m in inbox.messages)
    assert len(subjects) == 2 and "baseline" in subjects[0] + subjects[1]


def test_smtp_password_never_appears_in_errors(hostile_dealer: ErpBuilder, config_for,
                                               smtp_port: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSERVICES_SMTP_PASSWORD", "pa55-w0rd-secret")
    config = config_for(hostile_dealer, smtp_config(smtp_port) + "  username: ks\n")
    result = keyservices.run(config, as_of=AS_OF)
    assert result.exit_code == 5
    assert "pa55-w0rd-secret" not in (result.delivery_error or "")
    log = current_log_file(config.state.dir)
    assert not log.exists() or "pa55-w0rd-secret" not in log.read_text(encoding="utf-8")


def test_branch_managers_get_their_branch_and_the_consolidated_copy_goes_to_all(
        erp: ErpBuilder, config_for, smtp_port: int) -> None:
    import sqlalchemy as sa

    north = erp.customer("NOR001", "North Copier Co")
    south = erp.customer("SOU001", "South Copier Co")
    for cid in (north, south):
        erp.equipment(cid, "MFP-A3-CO-03")
    erp.insert("GLBranches", BranchID=2, BranchNumber="02", Description="South")
    with erp.engine.begin() as conn:
        t = erp.t["ARCustomers"]
        conn.execute(sa.update(t).where(t.c.CustomerID == south).values(BranchID=2))
    config = config_for(erp, smtp_config(smtp_port))
    config.digest.branches = {"Main": ["main-manager@example.com"],
                              "South": ["south-manager@example.com"]}
    controller, inbox = start_server(smtp_port)
    try:
        result = keyservices.run(config, as_of=AS_OF, dry_run=False)
        erp.set_value(north, None)
        erp.set_value(south, None)
        second = keyservices.run(config, as_of=AS_OF)
    finally:
        controller.stop()
    assert len(result.digests) == 3 and len(second.digests) == 3
    by_rcpt = {tuple(rcpts): m for (_, rcpts), m in zip(inbox.envelopes[3:], inbox.messages[3:])}
    consolidated = by_rcpt[("managers@example.com",)]
    south_copy = by_rcpt[("south-manager@example.com",)]
    assert "[keyservices South]" in south_copy["Subject"]
    south_text = south_copy.get_body(preferencelist=("plain",)).get_content()
    all_text = consolidated.get_body(preferencelist=("plain",)).get_content()
    assert "SOU001" in south_text and "NOR001" not in south_text
    assert "SOU001" in all_text and "NOR001" in all_text


def test_a_sales_rep_gets_a_copy_of_their_own_customers(erp: ErpBuilder, config_for,
                                                       smtp_port: int) -> None:
    import sqlalchemy as sa

    mine = erp.customer("DAN001", "Dana's Copier Co")
    other = erp.customer("LEE001", "Lee's Copier Co")
    for cid in (mine, other):
        erp.equipment(cid, "MFP-A3-CO-03")
    erp.insert("SHAgents", AgentID=2, PrefFullName="Lee Rep")
    with erp.engine.begin() as conn:
        t = erp.t["ARCustomers"]
        conn.execute(sa.update(t).where(t.c.CustomerID == other).values(SalesRepID=2))
    config = config_for(erp, smtp_config(smtp_port))
    config.digest.sales_reps = {"Dana Rep": ["dana@example.com"]}
    controller, inbox = start_server(smtp_port)
    try:
        keyservices.run(config, as_of=AS_OF)  # the baseline
        erp.set_value(mine, None)
        erp.set_value(other, None)
        result = keyservices.run(config, as_of=AS_OF)
    finally:
        controller.stop()
    assert len(result.digests) == 2  # the consolidated copy and Dana's
    by_rcpt = {tuple(rcpts): m for (_, rcpts), m in zip(inbox.envelopes[2:], inbox.messages[2:])}
    dana = by_rcpt[("dana@example.com",)]
    assert "[keyservices Dana Rep]" in dana["Subject"]
    text = dana.get_body(preferencelist=("plain",)).get_content()
    assert "DAN001" in text and "LEE001" not in text


def test_failed_run_sends_a_short_alert_to_the_admins(erp: ErpBuilder, config_for,
                                                      smtp_port: int) -> None:
    from keyservices.errors import RulesError

    config = config_for(erp, smtp_config(smtp_port))
    config.digest.admins = ["it-admin@example.com"]
    (config.rules / "services.yaml").write_text("services:\n  - code: [CPY\n", encoding="utf-8")
    controller, inbox = start_server(smtp_port)
    try:
        with pytest.raises(RulesError):
            keyservices.run(config, as_of=AS_OF)
    finally:
        controller.stop()
    (alert,) = inbox.messages
    assert inbox.envelopes[0][1] == ["it-admin@example.com"]
    assert alert["Subject"].startswith("[keyservices FAILED]") and "exit 2" in alert["Subject"]
    body = alert.get_body(preferencelist=("plain",)).get_content()
    assert "services.yaml:3:1: YAML syntax error" in body


def test_failure_alert_is_queued_when_smtp_is_down_too(erp: ErpBuilder, config_for,
                                                       smtp_port: int) -> None:
    from keyservices.errors import LockHeld
    from keyservices.state import run_lock

    config = config_for(erp, smtp_config(smtp_port))
    with run_lock(config.state.dir), pytest.raises(LockHeld):
        keyservices.run(config, as_of=AS_OF)
    (queued,) = config.digest.outbox.glob("*-failure-exit4.eml")
    assert b"another keyservices run holds the lock" in queued.read_bytes()


def test_demo_night2_digest_arrives_with_all_its_sections(tmp_path: Path, smtp_port: int,
                                                          runner: CliRunner) -> None:
    result = keyservices.demo(tmp_path / "demo", customers=500, as_of=AS_OF)
    with result.config.open("a", encoding="utf-8") as fh:
        fh.write(smtp_config(smtp_port))
    controller, inbox = start_server(smtp_port)
    try:
        sent = runner.invoke(cli, ["send-outbox", "-c", str(result.config)])
    finally:
        controller.stop()
    assert sent.exit_code == 0, sent.output
    night2 = next(m for m in inbox.messages if AS_OF.isoformat() in m["Subject"])  # as_of: night 2
    text = night2.get_body(preferencelist=("plain",)).get_content()
    html = night2.get_body(preferencelist=("html",)).get_content()
    # night 2's unwritable customers are night 1's: each list is one line with its count (#24)
    for section in ("Summary:", "SERVICES ADDED AND REMOVED",
                    "WITHOUT A CUSTOM-PROPERTY CONFIGURATION: ",
                    "CONFIGURATION WITHOUT ZCJKeyServices: ", "SERVICE PENETRATION"):
        assert section in text, section
    assert "unchanged since" in text
    for section in ("Services added and removed", "Customers that cannot be written",
                    "Service penetration", "unchanged since"):
        assert section in html, section
    (attachment,) = list(night2.iter_attachments())
    assert attachment.get_content_type() == "text/csv"
    assert len(inbox.messages) == 2
