from django.contrib import admin


class ContactCenterAdminSite(admin.AdminSite):
    site_header = "SMS contact center"
    site_title = "SMS contact center"
    index_title = "Configuration"

    def has_permission(self, request) -> bool:
        """Admit staff, but never an agent, even one flagged as staff by mistake."""
        user = request.user
        if not super().has_permission(request):
            return False
        if user.is_superuser:
            return True
        return not user.groups.filter(name="Agents").exists()
