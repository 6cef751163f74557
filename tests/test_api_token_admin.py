"""API token keys never appear in the admin: DRF's own token pages are removed."""

import pytest
from django.contrib import admin
from rest_framework.authtoken.models import Token, TokenProxy

from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


def test_the_admin_has_no_token_pages(admin_client):
    key = Token.objects.create(user=AgentFactory()).key

    assert not admin.site.is_registered(TokenProxy)
    assert key not in admin_client.get("/admin/").content.decode()
    assert admin_client.get("/admin/authtoken/tokenproxy/").status_code == 404
