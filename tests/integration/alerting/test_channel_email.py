"""The email channel against a real SMTP server (aiosmtpd on loopback) through the notification
pipeline: STARTTLS with a self-signed certificate made here, AUTH over TLS only, a plain-text
and an HTML body, and SMTP replies classified (4xx retried with backoff, 5xx refused)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from alerting_support import Clock
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from notify_support import record_transition
from pydantic import SecretStr
from tests_support import free_port

from control_plane.alerting import Notifier, Outcome
from control_plane.config import EmailChannelConfig, NotifyConfig, ReceiverConfig, RouteConfig

T0 = 1_800_000_000.0


@dataclass
class Mailbox:
    """An aiosmtpd handler: records what arrives; answers DATA from ``script`` first."""

    messages: list[tuple[EmailMessage, bool]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    script: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.script:
            return self.script.pop(0)
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((parsed, session.ssl is not None))
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"s3cret"
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class SmtpServer:
    mailbox: Mailbox
    port: int
    ca_file: Path


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    cert, key = _self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=True,
        authenticator=mailbox.authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield SmtpServer(mailbox, port, cert)
    finally:
        controller.stop()


def email_config(smtp: SmtpServer, **overrides: Any) -> NotifyConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": smtp.port,
        "from_addr": "haetae@example.org",
        "to": ["oncall@example.org", "ops@example.org"],
        "username": "haetae",
        "password": SecretStr("s3cret"),
        "ca_file": smtp.ca_file,
        "timeout_s": 5.0,
    }
    values.update(overrides)
    return NotifyConfig(
        receivers=[ReceiverConfig(name="mail", email=[EmailChannelConfig(**values)])],
        routes=[RouteConfig(receiver="mail", group_wait_s=0, group_interval_s=1)],
        retry_base_s=1.0,
        retry_max_s=60.0,
    )


def alert(name: str) -> dict[str, str]:
    return {"alertname": name, "agent": "a1", "severity": "critical"}


async def test_email_over_starttls_with_text_and_html(pool: asyncpg.Pool, smtp: SmtpServer) -> None:
    clock = Clock(T0)
    async with Notifier(pool, email_config(smtp), clock=clock, background=False) as notifier:
        await record_transition(
            pool, T0, alert("X"), "pending", "firing", annotations={"summary": "disk <b>full</b>"}
        )
        assert await notifier.run_once() == [Outcome.SENT]
        await record_transition(pool, T0 + 1, alert("X"), "firing", "resolved")
        clock.now = T0 + 2
        assert await notifier.run_once() == [Outcome.SENT]
    assert smtp.mailbox.logins == ["haetae", "haetae"]
    (first, first_tls), (second, second_tls) = smtp.mailbox.messages
    assert first_tls and second_tls  # delivered after STARTTLS
    assert first["Subject"] == "[FIRING:1] X"
    assert first["To"] == "oncall@example.org, ops@example.org"
    assert first["X-Haetae-Idempotency-Key"]
    text = first.get_body(("plain",))
    html = first.get_body(("html",))
    assert text is not None and html is not None
    assert "disk <b>full</b>" in text.get_content()
    assert "disk &lt;b&gt;full&lt;/b&gt;" in html.get_content()
    assert second["Subject"] == "[RESOLVED] X"
    assert second["In-Reply-To"] == first["Message-ID"]  # threaded under the first
    receipt = await pool.fetchval("SELECT receipt FROM notify_outbox ORDER BY outbox_id LIMIT 1")
    assert receipt["message_id"] == first["Message-ID"]


async def test_temporary_smtp_failure_is_retried_with_backoff(
    pool: asyncpg.Pool, smtp: SmtpServer
) -> None:
    smtp.mailbox.script = ["451 4.3.0 try again later"]
    clock = Clock(T0)
    async with Notifier(
        pool, email_config(smtp), clock=clock, background=False, rng=random.Random(1)
    ) as notifier:
        await record_transition(pool, T0, alert("X"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.RETRY]
        clock.now = T0 + 0.4
        assert await notifier.run_once() == []  # backoff: between 0.5 and 1 s
        clock.now = T0 + 1.01
        assert await notifier.run_once() == [Outcome.SENT]
    row = await pool.fetchrow("SELECT status, attempts, response_status FROM notify_outbox")
    assert row is not None
    assert (row["status"], row["attempts"], row["response_status"]) == ("sent", 2, 250)
    assert len(smtp.mailbox.messages) == 1


async def test_permanent_smtp_refusal_is_recorded_failed(
    pool: asyncpg.Pool, smtp: SmtpServer
) -> None:
    smtp.mailbox.script = ["554 5.6.0 message refused"]
    async with Notifier(pool, email_config(smtp), clock=Clock(T0), background=False) as notifier:
        await record_transition(pool, T0, alert("X"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.FAILED]
    row = await pool.fetchrow("SELECT status, last_error, response_status FROM notify_outbox")
    assert row is not None and row["status"] == "failed" and row["response_status"] == 554


async def test_bad_credentials_and_untrusted_certificate_are_permanent(
    pool: asyncpg.Pool, smtp: SmtpServer
) -> None:
    cfg = email_config(smtp, password=SecretStr("wrong"))
    async with Notifier(pool, cfg, clock=Clock(T0), background=False) as notifier:
        await record_transition(pool, T0, alert("X"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.FAILED]
    row = await pool.fetchrow("SELECT response_status FROM notify_outbox")
    assert row is not None and row["response_status"] == 535
    await pool.execute("DELETE FROM notify_outbox")
    cfg = email_config(smtp, ca_file=None)  # the self-signed certificate is not trusted
    async with Notifier(pool, cfg, clock=Clock(T0 + 10), background=False) as notifier:
        await record_transition(pool, T0 + 10, alert("Y"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.FAILED]
    row = await pool.fetchrow("SELECT last_error FROM notify_outbox")
    assert row is not None and "certificate" in row["last_error"]
    assert smtp.mailbox.messages == []
