from django.urls import path

from sms_channel import views, webhooks

app_name = "sms_channel"

# Exact paths with the trailing slash: Twilio does not follow redirects.
urlpatterns = [
    path("sms/twilio/inbound/", webhooks.twilio_inbound, name="twilio-inbound"),
    path("sms/twilio/status/", webhooks.twilio_status, name="twilio-status"),
    path("simulator/", views.simulator, name="simulator"),
]
