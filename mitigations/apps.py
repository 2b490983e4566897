from typing import Any

from django.apps import AppConfig


class MitigationsConfig(AppConfig):
    name = "mitigations"

    def ready(self) -> None:
        from watchers.signals import incident_opened

        incident_opened.connect(start_chain_on_open, dispatch_uid="mitigations-start")


def start_chain_on_open(sender: Any, incident_id: int, **kwargs: Any) -> None:
    from mitigations.tasks import start_mitigation

    start_mitigation.delay(incident_id, 1)
