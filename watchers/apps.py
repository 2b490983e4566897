from django.apps import AppConfig
from django.db.models.signals import post_save


class WatchersConfig(AppConfig):
    name = "watchers"
    verbose_name = "Watchers and incidents"

    def ready(self) -> None:
        from mitigations.models import ActionRun, Approval
        from watchers.models import Incident
        from watchers.services import live

        # Saves in any process (web, Celery worker, shell) reach the dashboard.
        # QuerySet.update() and bulk_update() send no post_save, so the code
        # that changes state that way calls live.publish_* itself.
        post_save.connect(live.incident_saved, sender=Incident, dispatch_uid="live")
        post_save.connect(live.run_saved, sender=ActionRun, dispatch_uid="live")
        post_save.connect(live.approval_saved, sender=Approval, dispatch_uid="live")
