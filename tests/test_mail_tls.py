"""STARTTLS and implicit TLS with login, against a real SMTP server with a test CA (trustme)."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from keyservices.outputs.mail import SmtpSettings, send_outbox


class Server:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret-pw")


def port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    pem = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    return authority, pem


def server_context(authority: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


def queue(outbox: Path) -> Path:
    outbox.mkdir()
    msg = email.message.EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = "digest", "ks@example.com", "m@example.com"
    msg.set_content("hello")
    path = outbox / "digest.eml"
    path.write_bytes(msg.as_bytes())
    return path


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_with_login(ca, tmp_path: Path, security: str) -> None:
    authority, pem = ca
    handler, p = Server(), port()
    # aiosmtpd offers AUTH on an implicit-TLS socket only when not told to require STARTTLS
    kwargs = ({"tls_context": server_context(authority), "require_starttls": True,
               "auth_require_tls": True}
              if security == "starttls" else {"ssl_context": server_context(authority),
                                              "auth_require_tls": False})
    controller = Controller(handler, hostname="127.0.0.1", port=p,
                            authenticator=handler.authenticate, **kwargs)
    controller.start()
    try:
        path = queue(tmp_path / "outbox")
        settings = SmtpSettings(host="127.0.0.1", port=p, security=security, username="ks",
                                password="s3cret-pw", timeout=5, ca_file=pem)
        report = send_outbox(settings, tmp_path / "outbox")
    finally:
        controller.stop()
    assert report.error is None, report.error
    assert report.sent == [path] and handler.logins == [(b"ks", b"s3cret-pw")]
    assert handler.messages[0]["Subject"] == "digest"


def test_untrusted_certificate_is_refused_and_the_message_stays_queued(ca, tmp_path: Path) -> None:
    authority, _ = ca
    handler, p = Server(), port()
    controller = Controller(handler, hostname="127.0.0.1", port=p,
                            tls_context=server_context(authority), require_starttls=True)
    controller.start()
    try:
        path = queue(tmp_path / "outbox")
        report = send_outbox(SmtpSettings(host="127.0.0.1", port=p, timeout=5,
                                          password="s3cret-pw"), tmp_path / "outbox")
    finally:
        controller.stop()
    assert report.error and "CERTIFICATE_VERIFY_FAILED" in report.error
    assert "s3cret-pw" not in report.error
    assert report.queued == [path] and path.exists() and not handler.messages


def test_wrong_password_is_reported_without_the_password(ca, tmp_path: Path) -> None:
    authority, pem = ca
    handler, p = Server(), port()
    controller = Controller(handler, hostname="127.0.0.1", port=p,
                            tls_context=server_context(authority), require_starttls=True,
                            authenticator=handler.authenticate, auth_require_tls=True)
    controller.start()
    try:
        queue(tmp_path / "outbox")
        report = send_outbox(SmtpSettings(host="127.0.0.1", port=p, username="ks",
                                          password="wrong-pw-123", timeout=2, ca_file=pem),
                             tmp_path / "outbox")
    finally:
        controller.stop()
    # the server refuses (535) and may then drop the session; either way: an error, no password
    assert report.error and "wrong-pw-123" not in report.error
    assert report.queued and not handler.messages
