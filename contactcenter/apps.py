from django.contrib.admin.apps import AdminConfig


class ContactCenterAdminConfig(AdminConfig):
    default_site = "contactcenter.admin.ContactCenterAdminSite"
