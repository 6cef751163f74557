"""The supervisor dashboard: access, figures, queue and agents, actions, chart, query counts."""

import datetime
import itertools
import re
import zoneinfo

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from bots.models import BotSession
from campaigns.charts import hourly_chart_svg, nice_ceiling
from campaigns.forms import CloseForm
from campaigns.models import AgentProfile, Interaction, InteractionEvent
from campaigns.selectors import (
    HourStatistics,
    campaign_hourly,
    campaign_statistics,
    campaigns_overview,
)
from tests.factories import (
    AgentFactory,
    BotFactory,
    CampaignFactory,
    InteractionFactory,
    MemberFactory,
    SmsChannelFactory,
)

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
Status = Interaction.Status
Outcome = Interaction.QueueOutcome
Reason = Interaction.RejectReason
STATUS_AFTER = {
    Outcome.ATTENDED: Status.FINISHED,
    Outcome.TIMED_OUT: Status.TIMED_OUT,
    Outcome.ABANDONED: Status.ABANDONED,
}
# Noon today (UTC): "today" and "the last hour" hold whenever the suite runs,
# and the test client's session, made at the real time, stays valid.
NOON = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)

_numbers = itertools.count()


def ago(minutes: float = 0, *, seconds: float = 0, now=NOON) -> datetime.datetime:
    return now - datetime.timedelta(minutes=minutes, seconds=seconds)


def stay(campaign, *, queued_at, waited=None, outcome="", met=None, status=None, **fields):
    """A conversation that entered the queue at `queued_at` and left `waited` seconds later."""
    if status is None:
        status = STATUS_AFTER.get(outcome, Status.QUEUED)
    left = None if waited is None else queued_at + datetime.timedelta(seconds=waited)
    return Interaction.objects.create(
        campaign=campaign,
        customer_number=f"+1415777{next(_numbers) % 10000:04d}",
        status=status,
        queued_at=queued_at,
        left_queue_at=left,
        queue_outcome=outcome,
        service_level_met=met,
        created_at=queued_at,
        **fields,
    )


def rejected(campaign, *, reason, created_at):
    return InteractionFactory(
        campaign=campaign,
        status=Status.REJECTED,
        reject_reason=reason,
        created_at=created_at,
        queued_at=None,
    )


def member(campaign, *, status=AgentProfile.Status.AVAILABLE, agent=None, **fields):
    """Make `agent` (a new one with `status` by default) a member of `campaign`."""
    if agent is None:
        agent = AgentFactory()
        AgentProfile.objects.filter(user=agent).update(status=status, **fields)
    MemberFactory(campaign=campaign, agent=agent)
    return agent


def held(campaign, agent, *, assigned_at, status=Status.ASSIGNED, **fields):
    return InteractionFactory(
        campaign=campaign,
        status=status,
        agent=agent,
        queued_at=assigned_at - datetime.timedelta(seconds=5),
        assigned_at=assigned_at,
        left_queue_at=assigned_at,
        queue_outcome=Outcome.ATTENDED,
        service_level_met=True,
        **fields,
    )


def survey(campaign, score, *, created_at):
    return BotSession.objects.create(
        interaction=InteractionFactory(campaign=campaign, status=Status.FINISHED),
        bot=BotFactory(),
        trigger=BotSession.Trigger.FINISH,
        status=BotSession.Status.DONE,
        answers={"csat": str(score)},
        created_at=created_at,
    )


def busy_campaign(*, name=None, time_zone="UTC"):
    """A campaign with some of everything the dashboard counts, around NOON."""
    campaign = CampaignFactory(time_zone=time_zone, **({"name": name} if name else {}))
    SmsChannelFactory(campaign=campaign)
    stay(campaign, queued_at=ago(200), waited=8, outcome=Outcome.ATTENDED, met=True)
    stay(campaign, queued_at=ago(30), waited=12, outcome=Outcome.ATTENDED, met=True)
    stay(campaign, queued_at=ago(20), waited=90, outcome=Outcome.TIMED_OUT, met=False)
    stay(campaign, queued_at=ago(10), waited=3, outcome=Outcome.ABANDONED, met=True)
    stay(campaign, queued_at=ago(2))
    stay(campaign, queued_at=ago(1))
    rejected(campaign, reason=Reason.QUEUE_FULL, created_at=ago(5))
    rejected(campaign, reason=Reason.BLACKLISTED, created_at=ago(300))
    available = member(campaign, last_seen_at=NOON)
    member(campaign, status=AgentProfile.Status.BREAK)
    held(campaign, available, assigned_at=ago(4))
    survey(campaign, 4, created_at=ago(50))
    survey(campaign, 5, created_at=ago(40))
    return campaign


@pytest.fixture
def frozen_now(monkeypatch):
    """Make the views (and the services they call) see NOON as the time."""
    monkeypatch.setattr(timezone, "now", lambda: NOON)
    return NOON


def fresh(obj):
    return type(obj).objects.get(pk=obj.pk)


def figure(html: str, name: str, campaign=None) -> str:
    """The text of the `data-figure="name"` element (in `campaign`'s card, if given)."""
    if campaign is not None:
        start = html.index(f'id="campaign-{campaign.pk}"')
        html = html[start : html.find("</section>", start)]
    match = re.search(rf'data-figure="{name}">(.*?)</dd>', html, re.S)
    assert match, f"no figure {name}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", match.group(1))).strip()


def urls(campaign_id: int, interaction_id: int) -> dict[str, str]:
    return {
        "overview": reverse("supervisor:overview"),
        "overview_live": reverse("supervisor:overview_live"),
        "campaign": reverse("supervisor:campaign", args=[campaign_id]),
        "campaign_live": reverse("supervisor:campaign_live", args=[campaign_id]),
        "reassign": reverse("supervisor:reassign", args=[campaign_id, interaction_id]),
        "close": reverse("supervisor:close", args=[campaign_id, interaction_id]),
    }


# Access ---------------------------------------------------------------------------


def test_the_overview_lives_at_supervisor():
    assert reverse("supervisor:overview") == "/supervisor/"


@pytest.mark.parametrize("name", ["overview", "overview_live", "campaign", "campaign_live"])
def test_anonymous_visitors_are_sent_to_sign_in(client, name):
    interaction = InteractionFactory()
    url = urls(interaction.campaign_id, interaction.pk)[name]

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


def test_an_htmx_poll_without_a_session_sends_the_whole_page_to_sign_in(client):
    campaign = CampaignFactory()
    page = reverse("supervisor:campaign", args=[campaign.pk])

    response = client.get(
        reverse("supervisor:campaign_live", args=[campaign.pk]),
        headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver{page}"},
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/accounts/login/?next={page}"


@pytest.mark.parametrize("name", ["reassign", "close"])
def test_anonymous_posts_change_nothing(client, name):
    interaction = InteractionFactory()
    agent = member(interaction.campaign)

    response = client.post(urls(interaction.campaign_id, interaction.pk)[name], {"agent": agent.pk})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert fresh(interaction).status == Status.QUEUED
    assert not InteractionEvent.objects.exists()


@pytest.mark.parametrize("name", ["overview", "overview_live", "campaign", "campaign_live"])
def test_agents_may_not_open_the_dashboard(agent_client, name):
    interaction = InteractionFactory()

    response = agent_client.get(urls(interaction.campaign_id, interaction.pk)[name])

    assert response.status_code == 403


@pytest.mark.parametrize("name", ["reassign", "close"])
def test_agents_may_not_act_from_the_dashboard(agent_client, agent, name):
    campaign = CampaignFactory()
    SmsChannelFactory(campaign=campaign)
    member(campaign, agent=agent)
    # Even on a conversation they hold themselves.
    interaction = held(campaign, agent, assigned_at=timezone.now())
    other = member(campaign)

    response = agent_client.post(
        urls(campaign.pk, interaction.pk)[name], {"agent": other.pk, "reason": "mine"}
    )

    assert response.status_code == 403
    stored = fresh(interaction)
    assert (stored.status, stored.agent_id) == (Status.ASSIGNED, agent.pk)
    assert not InteractionEvent.objects.exists()


def test_dashboard_pages_refuse_posts_and_actions_refuse_gets(supervisor_client):
    interaction = InteractionFactory()
    all_urls = urls(interaction.campaign_id, interaction.pk)

    for name in ("overview", "overview_live", "campaign", "campaign_live"):
        assert supervisor_client.post(all_urls[name]).status_code == 405
    for name in ("reassign", "close"):
        assert supervisor_client.get(all_urls[name]).status_code == 405


def test_a_missing_campaign_is_404(supervisor_client):
    assert supervisor_client.get(reverse("supervisor:campaign", args=[999999])).status_code == 404


def test_superusers_see_the_dashboard(client):
    client.force_login(get_user_model().objects.create_superuser("root", "r@example.com", "x"))

    assert client.get(reverse("supervisor:overview")).status_code == 200


# The overview selector ------------------------------------------------------------


def test_overview_matches_campaign_statistics_for_every_campaign_and_time_zone():
    now = datetime.datetime(2026, 11, 25, 3, 30, tzinfo=UTC)
    # 03:30 UTC is 22:30 yesterday in New York and 12:30 today in Tokyo: each
    # campaign's today starts at its own midnight.
    campaigns = [
        CampaignFactory(name="A", time_zone="UTC"),
        CampaignFactory(name="B", time_zone="America/New_York"),
        CampaignFactory(name="C", time_zone="Asia/Tokyo"),
        CampaignFactory(name="D", time_zone="America/New_York"),
    ]
    for n, campaign in enumerate(campaigns):
        for minutes in (20, 50, 100, 200, 400, 800, 1500):
            stay(
                campaign,
                queued_at=ago(minutes + n, now=now),
                waited=10 + minutes % 7,
                outcome=[Outcome.ATTENDED, Outcome.TIMED_OUT, Outcome.ABANDONED][minutes % 3],
                met=minutes % 2 == 0,
            )
        stay(campaign, queued_at=ago(3 + n, now=now))
        rejected(campaign, reason=Reason.OUT_OF_HOURS, created_at=ago(30, now=now))
        rejected(campaign, reason=Reason.QUEUE_FULL, created_at=ago(300 + 60 * n, now=now))
        agent = member(campaign)
        member(campaign, status=AgentProfile.Status.BREAK)
        member(campaign, status=AgentProfile.Status.OFFLINE)
        held(campaign, agent, assigned_at=ago(1, now=now))
    inactive = CampaignFactory(name="E", active=False)
    stay(inactive, queued_at=ago(5, now=now))

    overviews = campaigns_overview(now=now)

    assert [o.campaign for o in overviews] == campaigns
    for overview in overviews:
        assert overview.statistics == campaign_statistics(campaign=overview.campaign, now=now)
    # The comparison is not vacuous: the time zones split the cohorts.
    entered_today = [o.statistics.today.entered for o in overviews]
    # UTC's day began 210 minutes ago, Tokyo's 750, New York's 1,350 (counting
    # the one waiting and the one held).
    assert entered_today == [6, 8, 7, 8]


def test_overview_figures_of_one_campaign():
    campaign = busy_campaign()

    (overview,) = campaigns_overview(now=NOON)

    s = overview.statistics
    assert (s.queued_now, s.longest_waiting_seconds) == (2, 120.0)
    assert (s.agents_by_status, s.agents_busy) == (
        {"available": 1, "break": 1, "offline": 0},
        1,
    )
    # Today: 2 attended within, 1 timed out, 1 abandoned within (of 4 that left),
    # plus the held one, attended within 5 s.
    assert (s.today.attended, s.today.timed_out, s.today.abandoned) == (3, 1, 1)
    assert s.today.sl_percent == 60.0
    assert s.today.sl_percent_with_abandoned == 80.0
    # Last hour: the same less the one at 200 minutes ago.
    assert s.last_hour.sl_percent == 50.0
    assert s.last_hour.sl_percent_with_abandoned == 75.0
    assert s.today.rejected_by_reason == {"queue_full": 1, "blacklisted": 1}
    assert s.last_hour.rejected_by_reason == {"queue_full": 1}
    assert (overview.satisfaction_answers, overview.satisfaction_average) == (2, 4.5)
    assert overview.rejected_today == [("Queue full", 1), ("Sender blacklisted", 1)]
    assert overview.campaign == campaign


def test_satisfaction_counts_today_in_the_campaign_time_zone():
    now = datetime.datetime(2026, 11, 25, 3, 30, tzinfo=UTC)
    utc = CampaignFactory(time_zone="UTC")
    new_york = CampaignFactory(time_zone="America/New_York")  # today began at 05:00 UTC on 24th
    for campaign in (utc, new_york):
        survey(campaign, 5, created_at=ago(60, now=now))  # 02:30 UTC
        survey(campaign, 1, created_at=ago(300, now=now))  # 22:30 UTC yesterday
        survey(campaign, 2, created_at=ago(60 * 24, now=now))  # before either today

    by_campaign = {o.campaign: o for o in campaigns_overview(now=now)}

    assert (by_campaign[utc].satisfaction_answers, by_campaign[utc].satisfaction_average) == (
        1,
        5.0,
    )
    assert (
        by_campaign[new_york].satisfaction_answers,
        by_campaign[new_york].satisfaction_average,
    ) == (2, 3.0)


def test_overview_without_campaigns_is_empty(django_assert_num_queries):
    with django_assert_num_queries(1):
        assert campaigns_overview(now=NOON) == []


@pytest.mark.parametrize("count", [3, 8])
def test_overview_selector_runs_a_fixed_number_of_queries(django_assert_num_queries, count):
    for _ in range(count):
        busy_campaign()

    # Campaigns, cohort, rejections, queue, agents, satisfaction.
    with django_assert_num_queries(6):
        overviews = campaigns_overview(now=NOON)

    assert len(overviews) == count


def test_overview_queries_grow_with_time_zones_only_for_satisfaction(django_assert_num_queries):
    """The survey period is one per call of the channel: one per distinct start of day."""
    for time_zone in ("UTC", "America/New_York", "Asia/Tokyo") * 3:
        busy_campaign(time_zone=time_zone)

    with django_assert_num_queries(5 + 3):
        overviews = campaigns_overview(now=NOON)

    assert len(overviews) == 9


# The overview page ----------------------------------------------------------------


def test_overview_page_shows_each_campaigns_figures(supervisor_client, frozen_now):
    campaign = busy_campaign(name="Sales <EU>")
    quiet = CampaignFactory(name="Quiet")
    CampaignFactory(name="Retired", active=False)

    response = supervisor_client.get(reverse("supervisor:overview"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Sales &lt;EU&gt;" in html
    assert "Retired" not in html
    assert reverse("supervisor:campaign", args=[campaign.pk]) in html
    assert reverse("admin:index") in html
    assert f'hx-get="{reverse("supervisor:overview_live")}"' in html
    expected = {
        "queued": "2",
        "longest-wait": "2m 00s",
        "agents": "1 / 1 / 1",
        "sl-today": "60.0%",
        "sl-hour": "50.0%",
        "sl-abandoned-today": "80.0%",
        "sl-abandoned-hour": "75.0%",
        "attended": "3",
        "timed-out": "1",
        "abandoned": "1",
        "rejected": "2 (Queue full 1, Sender blacklisted 1)",
        "satisfaction": "4.50 / 5 (2 answers)",
    }
    for name, text in expected.items():
        assert figure(html, name, campaign) == text, name
    assert figure(html, "sl-today", quiet) == "—"
    assert figure(html, "satisfaction", quiet) == "— (0 answers)"
    assert figure(html, "queued", quiet) == "0"


def test_overview_shows_sl_to_one_decimal(supervisor_client, frozen_now):
    campaign = CampaignFactory()
    stay(campaign, queued_at=ago(10), waited=5, outcome=Outcome.ATTENDED, met=True)
    stay(campaign, queued_at=ago(9), waited=5, outcome=Outcome.ATTENDED, met=True)
    stay(campaign, queued_at=ago(8), waited=50, outcome=Outcome.ATTENDED, met=False)

    html = supervisor_client.get(reverse("supervisor:overview")).content.decode()

    assert campaigns_overview(now=NOON)[0].statistics.today.sl_percent == 66.7
    assert figure(html, "sl-today", campaign) == "66.7%"
    assert figure(html, "sl-hour", campaign) == "66.7%"


def test_overview_partial_is_the_cards_alone(supervisor_client, frozen_now):
    campaign = busy_campaign()

    response = supervisor_client.get(
        reverse("supervisor:overview_live"), headers={"HX-Request": "true"}
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert figure(html, "sl-today", campaign) == "60.0%"


def test_overview_says_when_there_is_no_active_campaign(supervisor_client):
    html = supervisor_client.get(reverse("supervisor:overview")).content.decode()

    assert "No active campaign" in html


@pytest.mark.parametrize("count", [3, 8])
@pytest.mark.parametrize("name", ["overview", "overview_live"])
def test_overview_pages_run_a_fixed_number_of_queries(
    supervisor_client, frozen_now, django_assert_num_queries, count, name
):
    for _ in range(count):
        busy_campaign()

    # Session, user, supervisor group; then the six of the selector.
    with django_assert_num_queries(9):
        response = supervisor_client.get(reverse(f"supervisor:{name}"))

    assert response.status_code == 200
    assert response.content.decode().count('class="card dash-campaign"') == count


# The campaign page ----------------------------------------------------------------


def test_campaign_page_lists_the_queue_in_order_with_waits(supervisor_client, frozen_now):
    campaign = CampaignFactory(time_zone="Europe/Paris")
    second = stay(campaign, queued_at=ago(3))
    first = stay(campaign, queued_at=ago(7, seconds=5))
    third = stay(campaign, queued_at=ago(0, seconds=30))
    # Same instant as `second`: the lower id goes first, as routing serves them.
    fourth = stay(campaign, queued_at=ago(3))
    stay(CampaignFactory(), queued_at=ago(60))  # another campaign

    html = supervisor_client.get(reverse("supervisor:campaign", args=[campaign.pk])).content
    html = html.decode()

    queue = html[html.index('id="queue"') : html.index('id="in-progress"')]
    rows = re.findall(r'<tr id="conversation-(\d+)" class="queued">\s*<td class="num">(\d+)', queue)
    assert rows == [
        (str(first.pk), "1"),
        (str(second.pk), "2"),
        (str(fourth.pk), "3"),
        (str(third.pk), "4"),
    ]
    assert "7m 05s" in queue
    assert "30s" in queue
    assert "(4 waiting)" in queue
    # Entry times in the campaign's time zone.
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    assert f"{first.queued_at.astimezone(paris):%H:%M:%S}" in queue


def test_campaign_page_shows_agents_and_held_conversations(supervisor_client, frozen_now):
    campaign = CampaignFactory()
    alice = AgentFactory(first_name="Alice", last_name="Able")
    bob = AgentFactory(first_name="Bob", last_name="Baker")
    carol = AgentFactory(first_name="Carol", last_name="Cole")
    AgentProfile.objects.filter(user=alice).update(
        status=AgentProfile.Status.AVAILABLE, capacity=4, last_seen_at=ago(seconds=10)
    )
    AgentProfile.objects.filter(user=bob).update(status=AgentProfile.Status.BREAK)
    MemberFactory(campaign=campaign, agent=alice, position=1)
    MemberFactory(campaign=campaign, agent=bob, position=2)
    MemberFactory(campaign=campaign, agent=carol, position=3, active=False)
    # Never signed in to the console: no profile yet.
    AgentProfile.objects.filter(user=carol).delete()
    mine = held(campaign, alice, assigned_at=ago(12, seconds=3))
    offered = held(
        campaign,
        alice,
        assigned_at=ago(2),
        status=Status.TRANSFERRING,
        transfer_to=bob,
        transfer_deadline_at=NOON + datetime.timedelta(seconds=45),
    )

    html = supervisor_client.get(reverse("supervisor:campaign", args=[campaign.pk])).content
    html = html.decode()

    agents = html[html.index('id="agents"') :]
    alice_row = agents[agents.index(f'id="agent-{alice.pk}"') :].split("</tr>")[0]
    assert "Alice Able" in alice_row
    assert "Available" in alice_row
    assert "2 / 4" in alice_row  # two held (one being offered away)
    assert "not seen recently" not in alice_row
    bob_row = agents[agents.index(f'id="agent-{bob.pk}"') :].split("</tr>")[0]
    assert "On break" in bob_row
    assert "1 / 3" in bob_row  # the offer to him counts
    assert "never" in bob_row
    carol_row = agents[agents.index(f'id="agent-{carol.pk}"') :].split("</tr>")[0]
    assert "paused" in carol_row
    assert "Offline" in carol_row
    assert "0 / 3" in carol_row

    progress = html[html.index('id="in-progress"') : html.index('id="agents"')]
    mine_row = progress[progress.index(f'id="conversation-{mine.pk}"') :].split("</tr>")[0]
    assert "Alice Able" in mine_row
    assert "12m 03s" in mine_row
    assert "Reassign" in mine_row
    # Reassign offers the other active members, not the holder nor a paused member.
    assert f'<option value="{bob.pk}">' in mine_row
    assert f'<option value="{alice.pk}">' not in mine_row
    assert f'<option value="{carol.pk}">' not in mine_row
    offered_row = progress[progress.index(f'id="conversation-{offered.pk}"') :].split("</tr>")[0]
    assert "Transferring" in offered_row
    assert "to Bob Baker, 45s left" in offered_row
    assert progress.index(f"conversation-{mine.pk}") < progress.index(f"conversation-{offered.pk}")


def test_campaign_page_shows_figures_chart_and_admin_link(supervisor_client, frozen_now):
    campaign = busy_campaign(name="Support & <Care>")

    response = supervisor_client.get(reverse("supervisor:campaign", args=[campaign.pk]))

    html = response.content.decode()
    assert figure(html, "sl-today") == "60.0%"
    assert figure(html, "queued") == "2"
    assert "<svg" in html
    assert "<title>Support &amp; &lt;Care&gt;: entered and SL% per hour today (UTC)</title>" in html
    assert reverse("admin:campaigns_campaign_change", args=[campaign.pk]) in html
    assert "Support & <Care>" not in html
    assert f'hx-get="{reverse("supervisor:campaign_live", args=[campaign.pk])}"' in html


def test_campaign_partial_is_the_live_part_alone(supervisor_client, frozen_now):
    campaign = busy_campaign()

    response = supervisor_client.get(
        reverse("supervisor:campaign_live", args=[campaign.pk]), headers={"HX-Request": "true"}
    )

    html = response.content.decode()
    assert "<html" not in html
    assert 'id="queue"' in html
    assert "<svg" in html
    assert figure(html, "sl-hour") == "50.0%"


def _fill_campaign(campaign, *, scale: int) -> None:
    """Members, waiting, held, finished and rejected conversations, `scale` of each."""
    SmsChannelFactory(campaign=campaign)
    for n in range(scale):
        agent = member(campaign, last_seen_at=NOON)
        held(campaign, agent, assigned_at=ago(n + 1))
        stay(campaign, queued_at=ago(n + 1))
        stay(campaign, queued_at=ago(60 * n + 5), waited=10, outcome=Outcome.ATTENDED, met=True)
        rejected(campaign, reason=Reason.QUEUE_FULL, created_at=ago(n))
        survey(campaign, 3, created_at=ago(n))
    other = member(campaign)
    held(
        campaign,
        AgentFactory(),
        assigned_at=ago(1),
        status=Status.TRANSFERRING,
        transfer_to=other,
        transfer_deadline_at=NOON,
    )


@pytest.mark.parametrize("scale", [1, 6])
@pytest.mark.parametrize("name", ["campaign", "campaign_live"])
def test_campaign_pages_run_a_fixed_number_of_queries(
    supervisor_client, frozen_now, django_assert_num_queries, scale, name
):
    campaign = CampaignFactory()
    _fill_campaign(campaign, scale=scale)

    # Session, user, supervisor group, campaign; figures (5: cohort,
    # rejections, queue, agents, satisfaction); queue list; members and their
    # loads (3); held conversations; hours.
    with django_assert_num_queries(15):
        response = supervisor_client.get(reverse(f"supervisor:{name}", args=[campaign.pk]))

    assert response.status_code == 200
    # Each waiting row offers every member (scale + 1), each assigned one all but
    # its holder, the transferring one everybody.
    options = re.findall(r'<option value="\d+">', response.content.decode())
    assert len(options) == 2 * scale * scale + 2 * scale + 1


# Reassign and close -------------------------------------------------------------------


def _events(interaction):
    return list(
        InteractionEvent.objects.filter(interaction=interaction).values_list(
            "from_status", "to_status", "actor", "user_id", "reason", "data"
        )
    )


def test_reassign_gives_a_held_conversation_to_another_member(supervisor_client, supervisor):
    campaign = CampaignFactory()
    SmsChannelFactory(campaign=campaign)
    alice, bob = member(campaign), member(campaign, status=AgentProfile.Status.BREAK)
    interaction = held(campaign, alice, assigned_at=timezone.now())

    response = supervisor_client.post(
        reverse("supervisor:reassign", args=[campaign.pk, interaction.pk]),
        {"agent": bob.pk},
        follow=True,
    )

    assert response.redirect_chain == [(reverse("supervisor:campaign", args=[campaign.pk]), 302)]
    stored = fresh(interaction)
    assert (stored.status, stored.agent_id) == (Status.ASSIGNED, bob.pk)
    assert _events(interaction) == [
        (
            Status.ASSIGNED,
            Status.ASSIGNED,
            InteractionEvent.Actor.SUPERVISOR,
            supervisor.pk,
            "reassigned",
            {"from_agent": alice.pk, "to_agent": bob.pk},
        )
    ]
    name = bob.get_full_name()
    assert f"Conversation #{interaction.pk} is now with {name}." in response.content.decode()


def test_assign_takes_a_conversation_out_of_the_queue(supervisor_client, supervisor, frozen_now):
    channel = SmsChannelFactory(service_level_seconds=20)
    campaign = channel.campaign
    agent = member(campaign)
    waiting = stay(campaign, queued_at=ago(seconds=30))

    supervisor_client.post(
        reverse("supervisor:reassign", args=[campaign.pk, waiting.pk]), {"agent": agent.pk}
    )

    stored = fresh(waiting)
    assert (stored.status, stored.agent_id, stored.queue_outcome) == (
        Status.ASSIGNED,
        agent.pk,
        Outcome.ATTENDED,
    )
    assert (stored.left_queue_at, stored.service_level_met) == (NOON, False)
    assert [e[:5] for e in _events(waiting)] == [
        (
            Status.QUEUED,
            Status.ASSIGNED,
            InteractionEvent.Actor.SUPERVISOR,
            supervisor.pk,
            "reassigned",
        )
    ]


def test_reassign_refused_by_the_service_shows_its_error(supervisor_client):
    campaign = CampaignFactory()
    SmsChannelFactory(campaign=campaign)
    alice = member(campaign)
    full = member(campaign, capacity=1)
    held(campaign, full, assigned_at=timezone.now())
    interaction = held(campaign, alice, assigned_at=timezone.now())

    response = supervisor_client.post(
        reverse("supervisor:reassign", args=[campaign.pk, interaction.pk]),
        {"agent": full.pk},
        follow=True,
    )

    assert response.status_code == 200
    assert (
        f'<li class="error">{full.get_full_name()} is at their capacity of 1 conversation.</li>'
        in response.content.decode()
    )
    assert fresh(interaction).agent_id == alice.pk
    assert not InteractionEvent.objects.exists()


def test_reassign_to_someone_outside_the_campaign_is_refused(supervisor_client):
    campaign = CampaignFactory()
    alice = member(campaign)
    outsider = member(CampaignFactory())
    interaction = held(campaign, alice, assigned_at=timezone.now())

    for data, message in [
        ({"agent": outsider.pk}, "Agent: That agent is not an active member of this campaign."),
        ({}, "Agent: Pick the agent to give the conversation to."),
    ]:
        response = supervisor_client.post(
            reverse("supervisor:reassign", args=[campaign.pk, interaction.pk]), data, follow=True
        )
        assert f'<li class="error">{message}</li>' in response.content.decode()

    assert fresh(interaction).agent_id == alice.pk
    assert not InteractionEvent.objects.exists()


def test_reassign_a_missing_conversation_shows_an_error(supervisor_client):
    campaign = CampaignFactory()
    agent = member(campaign)

    response = supervisor_client.post(
        reverse("supervisor:reassign", args=[campaign.pk, 999999]), {"agent": agent.pk}, follow=True
    )

    assert '<li class="error">No such conversation.</li>' in response.content.decode()


def test_close_abandons_a_waiting_conversation_with_the_reason(supervisor_client, supervisor):
    channel = SmsChannelFactory(service_level_seconds=60)
    campaign = channel.campaign
    waiting = stay(campaign, queued_at=timezone.now() - datetime.timedelta(seconds=5))

    response = supervisor_client.post(
        reverse("supervisor:close", args=[campaign.pk, waiting.pk]),
        {"reason": "  customer phoned instead  "},
        follow=True,
    )

    stored = fresh(waiting)
    assert (stored.status, stored.queue_outcome, stored.close_reason) == (
        Status.ABANDONED,
        Outcome.ABANDONED,
        "customer phoned instead",
    )
    assert [e[:5] for e in _events(waiting)] == [
        (
            Status.QUEUED,
            Status.ABANDONED,
            InteractionEvent.Actor.SUPERVISOR,
            supervisor.pk,
            "customer phoned instead",
        )
    ]
    assert f"Conversation #{waiting.pk} is closed." in response.content.decode()


def test_close_finishes_a_held_conversation(supervisor_client, supervisor):
    campaign = CampaignFactory()
    SmsChannelFactory(campaign=campaign)
    interaction = held(campaign, member(campaign), assigned_at=timezone.now())

    supervisor_client.post(reverse("supervisor:close", args=[campaign.pk, interaction.pk]))

    stored = fresh(interaction)
    assert (stored.status, stored.close_reason) == (Status.FINISHED, "closed by a supervisor")
    assert stored.finished_at is not None
    assert [e[:5] for e in _events(interaction)] == [
        (
            Status.ASSIGNED,
            Status.FINISHED,
            InteractionEvent.Actor.SUPERVISOR,
            supervisor.pk,
            "closed by a supervisor",
        )
    ]


def test_closing_a_closed_conversation_shows_the_services_error(supervisor_client):
    campaign = CampaignFactory()
    done = InteractionFactory(campaign=campaign, status=Status.FINISHED)

    response = supervisor_client.post(
        reverse("supervisor:close", args=[campaign.pk, done.pk]), follow=True
    )

    assert (
        f'<li class="error">Conversation #{done.pk} is finished; it cannot become finished.</li>'
        in response.content.decode()
    )
    assert not InteractionEvent.objects.exists()


def test_close_refuses_a_reason_longer_than_the_column(supervisor_client):
    campaign = CampaignFactory()
    SmsChannelFactory(campaign=campaign)
    waiting = stay(campaign, queued_at=timezone.now())

    response = supervisor_client.post(
        reverse("supervisor:close", args=[campaign.pk, waiting.pk]),
        {"reason": "x" * 65},
        follow=True,
    )

    assert "Reason: Ensure this value has at most 64 characters" in response.content.decode()
    assert fresh(waiting).status == Status.QUEUED


def test_close_form_allows_what_the_column_holds():
    column = Interaction._meta.get_field("close_reason").max_length
    assert CloseForm().fields["reason"].max_length == column


def test_every_row_has_both_forms_and_they_post_without_javascript(supervisor_client, frozen_now):
    campaign = CampaignFactory()
    agent = member(campaign)
    waiting = stay(campaign, queued_at=ago(1))
    holding = held(campaign, agent, assigned_at=ago(1))

    html = supervisor_client.get(reverse("supervisor:campaign", args=[campaign.pk])).content
    html = html.decode()

    for interaction in (waiting, holding):
        for name in ("reassign", "close"):
            action = reverse(f"supervisor:{name}", args=[campaign.pk, interaction.pk])
            assert f'<form method="post" action="{action}"' in html
    assert html.count('name="csrfmiddlewaretoken"') == 4


# Hours of today -------------------------------------------------------------------


def test_hourly_counts_each_local_hour_of_today():
    campaign = CampaignFactory(time_zone="Europe/Paris")
    now = datetime.datetime(2026, 11, 25, 14, 30, tzinfo=UTC)  # 15:30 in Paris (CET)
    paris = zoneinfo.ZoneInfo("Europe/Paris")

    def local(hour, minute=0):
        return datetime.datetime(2026, 11, 25, hour, minute, tzinfo=paris)

    stay(campaign, queued_at=local(0, 0), waited=5, outcome=Outcome.ATTENDED, met=True)
    stay(campaign, queued_at=local(9, 10), waited=5, outcome=Outcome.ATTENDED, met=True)
    stay(campaign, queued_at=local(9, 20), waited=50, outcome=Outcome.ATTENDED, met=False)
    stay(campaign, queued_at=local(9, 59), waited=90, outcome=Outcome.TIMED_OUT, met=False)
    stay(campaign, queued_at=local(9, 40))  # still waiting: entered, not in SL%
    stay(campaign, queued_at=local(15, 5), waited=2, outcome=Outcome.ABANDONED, met=True)
    # Not today: yesterday 23:59 Paris (22:59 UTC), another campaign, the future.
    stay(campaign, queued_at=local(0) - datetime.timedelta(minutes=1), waited=1, met=True)
    stay(CampaignFactory(), queued_at=local(9, 15))
    stay(campaign, queued_at=now + datetime.timedelta(minutes=1))

    hours = campaign_hourly(campaign=campaign, now=now)

    assert [h.start for h in hours] == [local(h) for h in range(24)]
    assert hours[0] == HourStatistics(
        start=local(0), entered=1, attended_within=1, left=1, sl_percent=100.0
    )
    assert hours[9] == HourStatistics(
        start=local(9), entered=4, attended_within=1, left=3, sl_percent=33.3
    )
    assert hours[15] == HourStatistics(
        start=local(15), entered=1, attended_within=0, left=1, sl_percent=0.0
    )
    others = [h for i, h in enumerate(hours) if i not in (0, 9, 15)]
    assert {(h.entered, h.left, h.sl_percent) for h in others} == {(0, 0, None)}


def test_hourly_runs_one_query(django_assert_num_queries):
    campaign = CampaignFactory(time_zone="Asia/Kolkata")
    for minutes in range(1, 600, 37):
        stay(campaign, queued_at=ago(minutes), waited=3, outcome=Outcome.ATTENDED, met=True)

    with django_assert_num_queries(1):
        hours = campaign_hourly(campaign=campaign, now=NOON)

    # A half-hour zone: its hours start at :00 on its own clock.
    assert {h.start.minute for h in hours} == {0}
    assert sum(h.entered for h in hours) == len(range(1, 600, 37)) - sum(
        1
        for minutes in range(1, 600, 37)
        if ago(minutes).astimezone(campaign.time_zone).date()
        != NOON.astimezone(campaign.time_zone).date()
    )


@pytest.mark.parametrize(
    ("day", "count", "missing", "repeated_entered"),
    [
        (datetime.date(2026, 3, 29), 23, 2, None),  # clocks go forward at 02:00
        (datetime.date(2026, 10, 25), 24, None, 2),  # 02:00-03:00 happens twice
    ],
)
def test_hourly_follows_daylight_saving_changes(day, count, missing, repeated_entered):
    campaign = CampaignFactory(time_zone="Europe/Paris")
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    now = datetime.datetime.combine(day, datetime.time(23, 30), tzinfo=paris)
    if repeated_entered:
        # 02:30 CEST (00:30 UTC) and 02:30 CET (01:30 UTC): one wall-clock hour.
        for utc_hour in (0, 1):
            instant = datetime.datetime.combine(day, datetime.time(utc_hour, 30), tzinfo=UTC)
            stay(campaign, queued_at=instant, waited=1, outcome=Outcome.ATTENDED, met=True)

    hours = campaign_hourly(campaign=campaign, now=now)

    assert len(hours) == count
    assert [h.start.hour for h in hours] == sorted({h.start.hour for h in hours})
    if missing is not None:
        assert missing not in [h.start.hour for h in hours]
    if repeated_entered:
        (two_am,) = [h for h in hours if h.start.hour == 2]
        assert (two_am.entered, two_am.sl_percent) == (repeated_entered, 100.0)


# The chart --------------------------------------------------------------------------


def test_chart_draws_a_bar_per_hour_and_a_point_per_sl_figure():
    svg = hourly_chart_svg(
        labels=["09:00", "10:00", "11:00", "12:00"],
        volumes=[4, 0, 10, 7],
        sl_percents=[50.0, None, 100.0, 66.7],
        title="Today",
    )

    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert svg.endswith("</svg>")
    assert re.findall(r'<rect [^>]*data-value="(\d+)"', svg) == ["4", "0", "10", "7"]
    assert re.findall(r'<circle [^>]*data-value="([\d.]+)"', svg) == ["50.0", "100.0", "66.7"]
    assert "<title>11:00: 10 entered</title>" in svg
    assert "<title>12:00: SL 66.7%</title>" in svg
    # The hour without a figure breaks the line: only 11:00-12:00 is joined.
    assert len(re.findall(r"<polyline ", svg)) == 1
    # Bars scale to the left axis top (10): the 10 fills the plot, the 0 is flat.
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)" data-value', svg)]
    assert heights[1] == 0.0
    assert heights[2] == max(heights)
    assert heights[0] == pytest.approx(heights[2] * 0.4, abs=0.1)
    # The 100% point sits on the top grid line, the 50% one half way.
    ys = [float(y) for y in re.findall(r'<circle [^>]*cy="([\d.]+)" r="3.5"', svg)]
    assert ys[1] < ys[2] < ys[0]
    assert ">100%</text>" in svg and ">10</text>" in svg


def test_chart_escapes_text():
    svg = hourly_chart_svg(labels=['<b>"9"</b>'], volumes=[1], sl_percents=[None], title="A & <B>")

    assert "<b>" not in svg
    assert "&lt;b&gt;&quot;9&quot;&lt;/b&gt;" in svg
    assert 'aria-label="A &amp; &lt;B&gt;"' in svg
    assert "<title>A &amp; &lt;B&gt;</title>" in svg


def test_chart_of_an_empty_day_has_flat_bars_and_no_line():
    svg = hourly_chart_svg(
        labels=["00:00"] * 24, volumes=[0] * 24, sl_percents=[None] * 24, title=""
    )

    assert len(re.findall(r"<rect [^>]*data-value", svg)) == 24
    assert "<circle " not in svg.split('class="sl"')[1]
    assert "<polyline" not in svg


def test_chart_refuses_series_of_different_lengths():
    with pytest.raises(ValueError, match="one item per hour"):
        hourly_chart_svg(labels=["09:00"], volumes=[1, 2], sl_percents=[None], title="")


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10), (10, 10), (11, 20), (480, 500)]
)
def test_nice_ceiling(value, ceiling):
    assert nice_ceiling(value) == ceiling
