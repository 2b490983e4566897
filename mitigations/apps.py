from typing import Any

from django.apps import AppConfig


class MitigationsConfig(AppConfig):
    name = "mitigations"

    def ready(self) -> None:
        from watchers.signals import incident_opened, incident_resolved

        incident_opened.connect(start_chain_on_open, dispatch_uid="mitigations-start")
        incident_resolved.connect(
            stop_chain_on_resolve, dispatch_uid="mitigations-resolve"
        )


def start_chain_on_open(sender: Any, incident_id: int, **kwargs: Any) -> None:
    # The attempt is created here, in the process that opened the incident,
    # so the first step is one broker hop away instead of two.
    from mitigations.services import chain
    from mitigations.tasks import run_mitigation_step

    first = chain.start_attempt(incident_id, 1)
    if first is not None:
        run_mitigation_step.delay(first.pk)


def stop_chain_on_resolve(sender: Any, incident_id: int, **kwargs: Any) -> None:
    from mitigations.services import chain

    chain.stop_for_resolved(incident_id)
