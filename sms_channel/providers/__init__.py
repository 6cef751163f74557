"""SMS providers behind one small interface; `get_provider` picks by connector."""

from sms_channel.providers.base import Provider, ProviderError, SendResult


def get_provider(connector) -> Provider:
    from sms_channel.models import Connector

    if connector.provider == Connector.Provider.TWILIO:
        from sms_channel.providers.twilio import TwilioProvider

        return TwilioProvider(connector)
    from sms_channel.providers.simulator import SimulatorProvider

    return SimulatorProvider(connector)


__all__ = ["Provider", "ProviderError", "SendResult", "get_provider"]
