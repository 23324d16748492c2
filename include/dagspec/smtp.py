"""Sending one e-mail through an Airflow SMTP connection (alerts and report e-mails).

host and port (465, or extra.ssl, means SMTPS; extra.starttls upgrades a plain connection), login and
password when given, extra.timeout in seconds.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from dagspec.connections import ConnectionInfo

SEND_TIMEOUT_S = 15


def send_email(info: ConnectionInfo, message: EmailMessage) -> None:
    port = info.port or (465 if _flag(info.extra.get("ssl")) else 25)
    timeout = float(info.extra.get("timeout", SEND_TIMEOUT_S))
    if _flag(info.extra.get("ssl")) or port == 465:
        server: smtplib.SMTP = smtplib.SMTP_SSL(info.host or "localhost", port, timeout=timeout,
                                                context=ssl.create_default_context())
    else:
        server = smtplib.SMTP(info.host or "localhost", port, timeout=timeout)
    with server:
        if _flag(info.extra.get("starttls")):
            server.starttls(context=ssl.create_default_context())
        if info.login:
            server.login(info.login, info.password or "")
        server.send_message(message)


def _flag(value: object) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def sender_of(info: ConnectionInfo) -> str:
    return info.extra.get("from_email") or info.login or "dagspec@localhost"
