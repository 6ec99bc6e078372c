"""Email over SMTP submission (stdlib ``smtplib`` in a worker thread): STARTTLS, then AUTH
when a username is configured, one multipart message with a plain-text and an HTML body.

SMTP has no 429: a 4xx reply (and a dropped connection) is "try later", a 5xx reply is a
refusal of this message, as RFC 5321 defines them.
"""

from __future__ import annotations

import asyncio
import html
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from control_plane.alerting.channels.base import (
    Delivery,
    PermanentSendError,
    RetryableSendError,
    SendError,
)
from control_plane.alerting.payload import Notification, message_link, summary_line
from control_plane.config import EmailChannelConfig


class EmailChannel:
    kind = "email"

    def __init__(self, cfg: EmailChannelConfig, *, min_interval_s: float = 0.0) -> None:
        self._cfg = cfg
        self.min_interval_s = min_interval_s

    async def send(
        self,
        notification: Notification,
        *,
        idempotency_key: str,
        previous: Mapping[str, Any] | None = None,
    ) -> Delivery:
        message = build_message(notification, self._cfg, idempotency_key=idempotency_key)
        if previous and previous.get("message_id"):
            # Mail clients thread the group's messages under its first one.
            message["In-Reply-To"] = str(previous["message_id"])
            message["References"] = str(previous["message_id"])
        refused = await asyncio.to_thread(self._submit, message)
        receipt: dict[str, Any] = {"message_id": message["Message-ID"]}
        if refused:
            receipt["refused"] = sorted(refused)
        return Delivery(250, receipt)

    def _submit(self, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        cfg = self._cfg
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s) as smtp:
                if cfg.starttls:
                    context = ssl.create_default_context(
                        cafile=str(cfg.ca_file) if cfg.ca_file else None
                    )
                    smtp.starttls(context=context)
                if cfg.username is not None:
                    password = cfg.password.get_secret_value() if cfg.password else ""
                    smtp.login(cfg.username, password)
                return smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _from_replies(exc.recipients) from exc
        except smtplib.SMTPResponseException as exc:
            raise _from_code(exc.smtp_code, exc.smtp_error) from exc
        except smtplib.SMTPNotSupportedError as exc:
            # The server does not offer STARTTLS (or AUTH): a configuration mismatch.
            raise PermanentSendError(f"SMTP: {exc}") from exc
        except ssl.SSLCertVerificationError as exc:
            raise PermanentSendError(f"SMTP TLS: {exc.verify_message}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise RetryableSendError(f"SMTP {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        return None


def _from_code(code: int, text: bytes | str) -> SendError:
    detail = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    reason = f"SMTP {code}: {detail[:200]}"
    if 400 <= code < 500:
        return RetryableSendError(reason, status=code)
    return PermanentSendError(reason, status=code)


def _from_replies(replies: Mapping[str, tuple[int, bytes]]) -> SendError:
    """Every recipient refused: retry if any refusal was temporary."""
    codes = [code for code, _ in replies.values()]
    code = min(codes, key=lambda c: (not 400 <= c < 500, c))
    return _from_code(code, b"recipients refused: " + ", ".join(sorted(replies)).encode())


def build_message(
    n: Notification, cfg: EmailChannelConfig, *, idempotency_key: str
) -> EmailMessage:
    subject = summary_line(n)
    message = EmailMessage()
    message["Subject"] = subject[:200]
    message["From"] = cfg.from_addr
    message["To"] = ", ".join(cfg.to)
    domain = cfg.from_addr.rpartition("@")[2] or None
    # Stable per outbox message: a resend after a crash carries the same Message-ID.
    message["Message-ID"] = make_msgid(idstring=_token(idempotency_key), domain=domain)
    message["X-Haetae-Idempotency-Key"] = idempotency_key
    message.set_content(render_text(n))
    message.add_alternative(render_html(n), subtype="html")
    return message


def _token(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in key)[:64]


def _lines(n: Notification) -> list[tuple[str, str, str]]:
    rows = []
    for alert in n["alerts"]:
        ann = alert["annotations"]
        title = ann.get("summary") or alert["labels"].get("alertname", "alert")
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
        state = alert["status"].upper() + (" (flapping)" if alert["flapping"] else "")
        rows.append((state, title, labels))
    return rows


def render_text(n: Notification) -> str:
    out = [summary_line(n), ""]
    url = message_link(n)
    if url:
        out += [f"{'Incident' if n.get('incident') is not None else 'Incidents'}: {url}", ""]
    for state, title, labels in _lines(n):
        out += [f"{state}  {title}", f"    {labels}"]
    return "\n".join(out) + "\n"


def render_html(n: Notification) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr><td><b>{esc(state)}</b></td><td>{esc(title)}</td><td><code>{esc(labels)}</code>"
        "</td></tr>"
        for state, title, labels in _lines(n)
    )
    url = message_link(n)
    link = ""
    if url:
        what = "the incident" if n.get("incident") is not None else "the incidents"
        link = f'<p><a href="{esc(url)}">Open {what}</a></p>'
    return f"<html><body><h2>{esc(summary_line(n))}</h2>{link}<table>{rows}</table></body></html>"
