import datetime
from dataclasses import dataclass
from typing import Protocol

# The provider's code for "the recipient unsubscribed" (Twilio error 21610):
# never retry, and put the number on the opt-out list.
UNSUBSCRIBED_RECIPIENT = "21610"


@dataclass(frozen=True)
class SendResult:
    sid: str
    status: str


class ProviderError(Exception):
    """A send that did not succeed.

    `retryable`: trying again may work (rate limit, server error, network).
    `ambiguous`: the provider may have accepted the message anyway (a read
    timeout or a 5xx), so look for it before sending again.
    """

    def __init__(
        self, message: str, *, code: str = "", retryable: bool = False, ambiguous: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable
        self.ambiguous = ambiguous


class Provider(Protocol):
    def send(
        self, *, from_number: str, to_number: str, body: str, status_callback: str
    ) -> SendResult: ...

    def find_sent(
        self, *, from_number: str, to_number: str, body: str, since: datetime.datetime
    ) -> list[SendResult]:
        """Find the messages an earlier, ambiguous attempt may have created.

        All matches: an identical text sent earlier may be among them.
        """
        ...
