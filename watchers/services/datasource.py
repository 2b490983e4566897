"""Health of the Prometheus data source, and its meta-incident.

When queries fail for reasons that say nothing about the queries (the
server is down, a proxy answers instead), every watcher would report the same
error. One incident about the data source is opened instead, after
``BASTION_DATASOURCE_FAILURES_BEFORE_INCIDENT`` consecutive failed evaluations,
and resolved by the first evaluation that reaches Prometheus again.
"""

import hashlib
import logging
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from audit.services import record
from watchers.choices import IncidentKind, IncidentState, Severity
from watchers.models import DataSource, Incident
from watchers.services import live

logger = logging.getLogger(__name__)


def datasource_fingerprint(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def record_failure(url: str, message: str, now: datetime) -> Incident | None:
    """Count one failed evaluation; open the meta-incident at the limit."""
    DataSource.objects.get_or_create(url=url)
    DataSource.objects.filter(url=url).update(
        consecutive_failures=F("consecutive_failures") + 1,
        last_error=message,
        last_failure_at=now,
    )
    failures = DataSource.objects.values_list("consecutive_failures", flat=True).get(
        url=url
    )
    if failures < settings.DATASOURCE_FAILURES_BEFORE_INCIDENT:
        return None
    return _open_incident(url, message, failures, now)


def _open_incident(
    url: str, message: str, failures: int, now: datetime
) -> Incident | None:
    fingerprint = datasource_fingerprint(url)
    if Incident.objects.filter(
        kind=IncidentKind.DATASOURCE, fingerprint=fingerprint, resolved_at__isnull=True
    ).exists():
        return None
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                kind=IncidentKind.DATASOURCE,
                fingerprint=fingerprint,
                labels={"datasource": url},
                severity=Severity.HIGH,
                summary=f"Prometheus at {url} failed {failures} evaluations in a "
                f"row: {message}"[:500],
                opened_at=now,
            )
    except IntegrityError:
        return None  # another worker opened it first
    record(
        "incident.opened",
        f"incident {incident.pk} opened: {incident.summary}",
        incident_id=incident.pk,
        details={"datasource": url},
    )
    logger.warning(
        "incident %s opened: data source %s unavailable after %s failures: %s",
        incident.pk,
        url,
        failures,
        message,
    )
    return incident


def record_success(url: str, now: datetime) -> int:
    """Reset the failure count and resolve the meta-incident, if one is open."""
    updated = DataSource.objects.filter(url=url, consecutive_failures__gt=0).update(
        consecutive_failures=0, last_success_at=now
    )
    if not updated:
        DataSource.objects.filter(url=url).update(last_success_at=now)
        return 0
    open_incidents = Incident.objects.filter(
        kind=IncidentKind.DATASOURCE,
        fingerprint=datasource_fingerprint(url),
        resolved_at__isnull=True,
    )
    resolved_ids = list(open_incidents.values_list("pk", flat=True))
    resolved = open_incidents.update(state=IncidentState.RESOLVED, resolved_at=now)
    if resolved:
        live.publish_evaluation_after_commit(resolved_ids, [])
        record("incident.resolved", f"data source {url} reachable again")
        logger.info("data source %s reachable again: meta-incident resolved", url)
    return resolved
