import pytest
from django.contrib.auth.models import Group

from campaigns.models import AGENTS_GROUP, SUPERVISORS_GROUP
from tests.factories import AgentFactory, SupervisorFactory


@pytest.fixture
def supervisor(db):
    return SupervisorFactory()


@pytest.fixture
def supervisor_client(client, supervisor):
    client.force_login(supervisor)
    return client


@pytest.fixture
def agent(db):
    return AgentFactory()


@pytest.fixture
def agent_client(client, agent):
    client.force_login(agent)
    return client


@pytest.fixture
def groups(db):
    return {name: Group.objects.get(name=name) for name in (AGENTS_GROUP, SUPERVISORS_GROUP)}
