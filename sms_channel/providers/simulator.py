"""The built-in Simulator: outbound messages go to the local outbox.

The outbox is the Message table itself (the phone simulator page reads it),
so "sending" only hands out a SID and reports the message delivered.
"""

import datetime
import uuid

from sms_channel.providers.base import SendResult


class SimulatorProvider:
    def __init__(self, connector) -> None:
        self.connector = connector

    def send(
        self, *, from_number: str, to_number: str, body: str, status_callback: str
    ) -> SendResult:
        return SendResult(sid=f"SIM{uuid.uuid4().hex}", status="delivered")

    def find_sent(
        self, *, from_number: str, to_number: str, body: str, since: datetime.datetime
    ) -> list[SendResult]:
        # Simulator sends cannot half-fail, so there is never an earlier trace.
        return []
