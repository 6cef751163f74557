import pytest
from django.contrib.auth.models import Group
from django.http import HttpRequest
from django.test import Client

from campaigns.models import AGENTS_GROUP, SUPERVISORS_GROUP
from tests.factories import AgentFactory, SupervisorFactory


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Every user the factories make hashes a password; the default hasher
    # takes most of a second each, and the suite makes hundreds of users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class LoginFormClient(Client):
    """Django's test client, whose login() passes a request as sign-in forms do.

    django-axes' backend counts failures per request and refuses to
    authenticate without one.
    """

    def login(self, **credentials) -> bool:
        credentials.setdefault("request", HttpRequest())
        return super().login(**credentials)


@pytest.fixture
def client():
    return LoginFormClient()


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


@pytest.fixture
def fake_twilio(settings):
    from tests.fake_twilio import start_fake_twilio

    fake, server = start_fake_twilio()
    settings.TWILIO_API_BASE_URL = fake.base_url
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _celery_eager():
    """Run tasks that services schedule in-process, and let errors surface.

    Services schedule tasks with delay_on_commit, so tasks only run in tests
    wrapped in django_capture_on_commit_callbacks(execute=True). Tests of the
    worker itself start a real one instead.
    """
    from contactcenter.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False
