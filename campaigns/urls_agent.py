from django.urls import path

from campaigns.views import agent

urlpatterns = [
    path("", agent.console, name="console"),
    path("status/", agent.set_status, name="status"),
    path("heartbeat/", agent.heartbeat, name="heartbeat"),
    path("partials/conversations/", agent.conversations_partial, name="conversations-partial"),
    path("partials/pending/", agent.pending_partial, name="pending-partial"),
    path("conversations/new/", agent.start_conversation, name="start-conversation"),
    path("conversations/<int:pk>/", agent.conversation, name="conversation"),
    path("conversations/<int:pk>/thread/", agent.thread_partial, name="thread-partial"),
    path("conversations/<int:pk>/reply/", agent.reply, name="reply"),
    path("conversations/<int:pk>/transfer/agent/", agent.transfer_to_agent, name="transfer-agent"),
    path(
        "conversations/<int:pk>/transfer/campaign/",
        agent.transfer_to_campaign,
        name="transfer-campaign",
    ),
    path("conversations/<int:pk>/finish/", agent.finish, name="finish"),
    path("conversations/<int:pk>/take/", agent.take, name="take"),
    path("conversations/<int:pk>/accept/", agent.accept, name="accept"),
    path("conversations/<int:pk>/decline/", agent.decline, name="decline"),
]
