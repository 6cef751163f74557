"""A customer, two agents and a supervisor, side by side in real browsers.

The whole product on a live server: the phone simulator's messages go
through the real intake, routing and bots (Celery runs eagerly inside the
server thread), and every page updates by its own polling, never by reload.
"""

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from bots.models import BotSession
from campaigns.models import AGENTS_GROUP, SUPERVISORS_GROUP, Interaction
from sms_channel.demo import DEMO_AGENTS, DEMO_SUPERVISOR, demo_seed

pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMER = "+15555550123"
# Set UPDATE_SCREENSHOTS=1 to refresh the pictures the README shows.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def sign_in(new_page, username: str, password: str):
    page = new_page("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    return page


def screenshot(page, name: str, tmp_path: Path) -> None:
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_customer_agents_and_supervisor_side_by_side(new_page, tmp_path):
    # Transactional tests start from empty tables, groups included.
    for name in (AGENTS_GROUP, SUPERVISORS_GROUP):
        Group.objects.get_or_create(name=name)
    demo_seed()
    (user1, password1, *_), (user2, password2, *_) = DEMO_AGENTS
    supervisor_name, supervisor_password, *_ = DEMO_SUPERVISOR

    agents = {}
    for username, password in ((user1, password1), (user2, password2)):
        page = sign_in(new_page, username, password)
        page.wait_for_url("**/agent/")
        page.click("button[name=status][value=available]")
        page.wait_for_selector("button[value=available][aria-pressed=true]")
        agents[username] = page

    supervisor = sign_in(new_page, supervisor_name, supervisor_password)
    supervisor.wait_for_url("**/supervisor/")
    assert supervisor.text_content("[data-figure=attended]").strip() == "0"

    # The customer texts the Demo campaign from the phone simulator.
    customer = sign_in(new_page, supervisor_name, supervisor_password)
    customer.goto("/simulator/")
    customer.fill("#id_body", "Hi, my order 4711 is late")
    customer.click("text=Send as customer")
    customer.wait_for_selector("#thread >> text=Hi, my order 4711 is late")

    interaction = Interaction.objects.get(customer_number=CUSTOMER)
    assert interaction.status == Interaction.Status.ASSIGNED
    first = interaction.agent.username
    second = user2 if first == user1 else user1

    # It appears in the agent's console by itself.
    console = agents[first]
    console.wait_for_selector(f"#my-conversations >> text={CUSTOMER}")
    screenshot(console, "agent-console", tmp_path)
    console.click(f"#my-conversations >> text={CUSTOMER}")
    console.wait_for_selector("#thread >> text=Hi, my order 4711 is late")

    # The agent replies; the customer's phone shows it.
    console.fill("#id_body", "Hello! Let me look into order 4711.")
    console.click("#reply button[type=submit]")
    customer.wait_for_selector("#thread >> text=Hello! Let me look into order 4711.")
    screenshot(console, "agent-conversation", tmp_path)

    # The first agent transfers it; the second accepts from their pending list.
    console.select_option("#id_to_agent", label=agents_label(second))
    console.fill("#id_agent_note", "Billing question")
    console.click("text=Offer")
    other = agents[second]
    other.wait_for_selector("#pending >> text=Accept")
    other.click("#pending >> text=Accept")
    interaction.refresh_from_db()
    assert (interaction.status, interaction.agent.username) == ("assigned", second)

    # The second agent finishes; the survey bot asks the customer, who answers.
    other.goto(f"/agent/conversations/{interaction.pk}/")
    other.select_option("#id_disposition", label="Resolved")
    other.click("text=Finish the conversation")
    customer.wait_for_selector("#thread >> text=How did we do")
    customer.fill("#id_body", "5")
    customer.click("text=Send as customer")
    customer.wait_for_selector("#thread >> text=Thank you for your feedback!")
    survey = BotSession.objects.get(interaction=interaction, trigger="finish")
    assert survey.answers == {"csat": "5"}

    # The supervisor's dashboard shows the counts change, without a reload.
    supervisor.wait_for_selector("[data-figure=attended] >> text=1")
    supervisor.wait_for_selector("[data-figure=satisfaction] >> text=5.00 / 5")
    screenshot(supervisor, "supervisor-dashboard", tmp_path)
    screenshot(customer, "phone-simulator", tmp_path)


def agents_label(username: str) -> str:
    from django.contrib.auth.models import User

    user = User.objects.get(username=username)
    return user.get_full_name() or user.username
