"""An SMTP server on loopback (aiosmtpd) that keeps every message it receives, as a fixture."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default as default_policy

import pytest

from support.service_cli import free_port


class SmtpSink:
    """aiosmtpd on a free loopback port; `messages` holds (recipients, parsed message) of each one received."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                sink.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=default_policy)))
                return "250 OK"

        self.port = free_port()  # aiosmtpd's start-up check connects to the port it was given: no port 0
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, data_size_limit=50_000_000)
        self.controller.start()

    def stop(self):
        self.controller.stop()


@pytest.fixture()
def smtp():
    sink = SmtpSink()
    yield sink
    sink.stop()
