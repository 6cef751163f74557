from django.db.models import Prefetch, Q, QuerySet

from sms_channel.models import Connector, Message, PhoneNumber, SmsChannel


def phone_number_list(*, connector_id: int | None) -> QuerySet[PhoneNumber]:
    """Return the numbers of one connector, or every number when none is given."""
    numbers = PhoneNumber.objects.all()
    if connector_id is not None:
        numbers = numbers.filter(connector_id=connector_id)
    return numbers


def simulator_numbers() -> list[PhoneNumber]:
    """Numbers of active Simulator connectors, with the campaigns they serve."""
    return list(
        PhoneNumber.objects.filter(
            connector__provider=Connector.Provider.SIMULATOR, connector__active=True
        )
        .prefetch_related(
            Prefetch("channels", queryset=SmsChannel.objects.select_related("campaign"))
        )
        .order_by("number")
    )


def simulator_thread(*, number: str, customer: str, limit: int = 200) -> list[Message]:
    """The latest messages between a customer and a number, oldest first."""
    latest = Message.objects.filter(
        Q(from_number=customer, to_number=number) | Q(from_number=number, to_number=customer)
    ).order_by("-created_at", "-id")[:limit]
    return list(reversed(latest))
