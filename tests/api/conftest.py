import pytest
from django.test import Client


@pytest.fixture
def client_for():
    """A separate signed-in test client per user, for tests that need several."""

    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make
