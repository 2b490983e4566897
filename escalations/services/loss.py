"""Estimated revenue loss of an incident, from the PromQL its watcher configures."""

import logging
import math

from escalations.models import LossEstimate
from watchers.models import Incident
from watchers.services.prometheus import PrometheusClient, PrometheusError, Sample

logger = logging.getLogger(__name__)


def read_loss(incident: Incident) -> tuple[float, str] | None:
    """Return the incident's estimated loss per hour and its currency.

    None when its watcher has no estimate, Prometheus fails (logged) or no
    series fits. A query failure does not escalate: the loss is unknown.
    """
    if incident.watcher_id is None:
        return None
    estimate = LossEstimate.objects.filter(watcher_id=incident.watcher_id).first()
    if estimate is None:
        return None
    try:
        samples = PrometheusClient().query(estimate.query)
    except PrometheusError as error:
        logger.warning(
            "incident %s: loss estimate query for watcher %s failed: %s",
            incident.pk,
            incident.watcher_id,
            error,
        )
        return None
    values = [
        sample.value
        for sample in samples
        if _agrees(sample, incident.labels) and not math.isnan(sample.value)
    ]
    if not values:
        return None
    return max(values), estimate.currency


def _agrees(sample: Sample, labels: dict[str, str]) -> bool:
    """Check that the sample's labels match the incident's wherever both have one."""
    return all(
        labels[name] == value
        for name, value in sample.labels.items()
        if name != "__name__" and name in labels
    )
