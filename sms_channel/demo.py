"""The demo data that `make run` seeds: one campaign on the Simulator connector.

Lives in sms_channel because the demo needs a channel, and sms_channel may
import campaigns but not the other way round.
"""

from dataclasses import dataclass

from django.contrib.auth.models import Group, User
from django.db import transaction

from bots.models import Bot, BotStep
from bots.services import bot_save
from campaigns.models import (
    AGENTS_GROUP,
    SUPERVISORS_GROUP,
    AgentProfile,
    Campaign,
    Disposition,
    Member,
)
from campaigns.services import agent_create
from sms_channel.models import Connector, PhoneNumber, SmsChannel
from sms_channel.services import connector_save, sms_channel_save

DEMO_CAMPAIGN = "Demo"
DEMO_CONNECTOR = "Simulator"
DEMO_NUMBER = "+15555550100"
DEMO_DISPOSITIONS = ("Resolved", "Follow-up", "Not interested")
DEMO_SUPERVISOR = ("supervisor", "watch-the-queue", "Demo", "Supervisor")
# The demo's Automations: a greeting that asks for an order number, a
# satisfaction survey when the agent finishes, an apology after a timeout.
DEMO_BOTS = {
    "bot_on_start": (
        "Demo greeting",
        [
            (
                "send_message",
                "Hi! Thanks for texting {campaign}. You are number {queue_position} in the "
                "queue; the wait is {estimated_wait}.",
                {},
            ),
            (
                "ask",
                "While you wait: what is your order number? (Reply NONE if you have none.)",
                {"key": "order_number", "wait_seconds": 600},
            ),
            ("send_message", "Thanks, an agent will see it.", {}),
        ],
    ),
    "bot_on_finish": (
        "Demo survey",
        [
            (
                "ask",
                "Thanks for talking to us! How did we do, from 1 (poor) to 5 (great)?",
                {
                    "key": "csat",
                    "choices": ["1", "2", "3", "4", "5"],
                    "retry_text": "Please answer with a number from 1 to 5.",
                    "max_retries": 1,
                    "wait_seconds": 3600,
                },
            ),
            ("send_message", "Thank you for your feedback!", {}),
        ],
    ),
    "bot_after_timeout": (
        "Demo apology",
        [
            (
                "send_message",
                "Sorry, all our agents are busy. We could not answer in time; please text "
                "us again later.",
                {},
            ),
        ],
    ),
}
DEMO_AGENTS = (
    ("agent1", "answer-texts-1", "Agent", "One"),
    ("agent2", "answer-texts-2", "Agent", "Two"),
)


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str
    # False: the user was there before, so `password` is only what the seed
    # would have set; whoever changed it since knows the real one.
    created: bool


@dataclass(frozen=True)
class DemoResult:
    logins: tuple[DemoLogin, ...]
    channel: SmsChannel
    created: tuple[str, ...]


@transaction.atomic(durable=True)
def demo_seed() -> DemoResult:
    """Create whatever of the demo is missing; leave what exists as it is.

    Running it again creates nothing and changes nothing, so a person's edits
    to the demo (a password, the channel's strategy) survive `make run`.
    """
    logins = [_supervisor_ensure()]
    agents = []
    for username, password, first_name, last_name in DEMO_AGENTS:
        agent, login = _agent_ensure(
            username=username, password=password, first_name=first_name, last_name=last_name
        )
        agents.append(agent)
        logins.append(login)
    created = [f"user {login.username}" for login in logins if login.created]

    campaign, is_new = Campaign.objects.get_or_create(
        name=DEMO_CAMPAIGN,
        defaults={"description": "Demo campaign on the Simulator connector, open 24/7."},
    )
    if is_new:
        created.append(f"campaign “{campaign}”")
    for position, agent in enumerate(agents):
        _, is_new = Member.objects.get_or_create(
            campaign=campaign, agent=agent, defaults={"position": position}
        )
        if is_new:
            created.append(f"{agent.username} as member of “{campaign}”")
    for name in DEMO_DISPOSITIONS:
        _, is_new = Disposition.objects.get_or_create(campaign=campaign, name=name)
        if is_new:
            created.append(f"disposition “{name}”")

    connector = Connector.objects.filter(name=DEMO_CONNECTOR).first()
    if connector is None:
        created.append(f"connector “{DEMO_CONNECTOR}”")
        connector = connector_save(
            connector=Connector(name=DEMO_CONNECTOR, provider=Connector.Provider.SIMULATOR)
        )
    elif connector.opt_out_list_id is None:
        # Saved some other way than connector_save, which adds the list.
        connector = connector_save(connector=connector)
    phone_number, is_new = PhoneNumber.objects.get_or_create(
        number=DEMO_NUMBER, defaults={"connector": connector, "label": "Demo"}
    )
    if is_new:
        created.append(f"phone number {phone_number.number}")

    bots = {}
    for field, (name, steps) in DEMO_BOTS.items():
        bots[field], is_new = _bot_ensure(name=name, steps=steps)
        if is_new:
            created.append(f"bot “{name}”")

    channel = SmsChannel.objects.filter(campaign=campaign).first()
    if channel is None:
        created.append(f"SMS channel of “{campaign}”")
        channel = sms_channel_save(
            channel=SmsChannel(
                campaign=campaign,
                status=SmsChannel.Status.ENABLED,
                connector=connector,
                phone_number=phone_number,
                strategy=SmsChannel.Strategy.LEASTRECENT,
                service_level_seconds=20,
                max_queue_seconds=300,
                **bots,
            )
        )
    return DemoResult(logins=tuple(logins), channel=channel, created=tuple(created))


def _bot_ensure(*, name: str, steps: list[tuple[str, str, dict]]) -> tuple[Bot, bool]:
    bot = Bot.objects.filter(name=name).first()
    if bot is not None:
        return bot, False
    bot = bot_save(bot=Bot(name=name, description="Made by the demo seed."))
    for position, (kind, text, options) in enumerate(steps, start=1):
        step = BotStep(bot=bot, position=position * 10, kind=kind, text=text, options=options)
        step.full_clean()
        step.save()
    return bot, True


def _supervisor_ensure() -> DemoLogin:
    username, password, first_name, last_name = DEMO_SUPERVISOR
    user = User.objects.filter(username=username).first()
    is_new = user is None
    if is_new:
        user = User.objects.create_user(
            username=username,
            password=password,
            first_name=first_name,
            last_name=last_name,
            is_staff=True,
        )
    # An existing "supervisor" is given the role only if it lacks it, so the
    # printed login reaches the admin without touching anything else.
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    user.groups.add(Group.objects.get(name=SUPERVISORS_GROUP))
    return DemoLogin(username=username, password=password, role="supervisor", created=is_new)


def _agent_ensure(
    *, username: str, password: str, first_name: str, last_name: str
) -> tuple[User, DemoLogin]:
    user = User.objects.filter(username=username).first()
    is_new = user is None
    if is_new:
        user = agent_create(
            username=username,
            password=password,
            first_name=first_name,
            last_name=last_name,
            capacity=3,
        )
    else:
        user.groups.add(Group.objects.get(name=AGENTS_GROUP))
        AgentProfile.objects.get_or_create(user=user, defaults={"capacity": 3})
    return user, DemoLogin(username=username, password=password, role="agent", created=is_new)
