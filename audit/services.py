"""Writing to the audit log, and reading who acted from where off a request."""

import ipaddress
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest

from audit.models import AuditEvent
from watchers.models import Incident

logger = logging.getLogger(__name__)

SUMMARY_MAX_CHARS = 500


def record(
    kind: str,
    summary: str,
    *,
    actor: User | AnonymousUser | None = None,
    address: str | None = None,
    incident_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one event to the audit log; ``actor`` None means the automation."""
    user = actor if actor is not None and actor.is_authenticated else None
    linked = (
        incident_id is not None and Incident.objects.filter(pk=incident_id).exists()
    )
    event = AuditEvent.objects.create(
        kind=kind,
        summary=summary[:SUMMARY_MAX_CHARS],
        actor=user,
        actor_name=user.get_username() if user is not None else "",
        address=_valid_address(address),
        incident_id=incident_id if linked else None,
        incident_number=incident_id,
        details=details or {},
    )
    logger.info(
        "audit %s by %s (incident %s): %s",
        kind,
        event.actor_name or "automation",
        incident_id,
        event.summary,
    )
    return event


def _valid_address(address: str | None) -> str | None:
    if not address:
        return None
    try:
        return str(ipaddress.ip_address(address.strip()))
    except ValueError:
        logger.warning("audit: %r is not an IP address; recorded without one", address)
        return None


def client_address(request: HttpRequest) -> str | None:
    """Return the client's IP address.

    X-Forwarded-For is read only when BASTION_TRUST_X_FORWARDED_FOR is true,
    meaning a proxy in front of Bastion sets it, because any client can send
    the header.
    The first hop is the client as that proxy saw it.
    """
    if getattr(settings, "TRUST_X_FORWARDED_FOR", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        first_hop = forwarded.split(",")[0].strip()
        if first_hop:
            return _valid_address(first_hop)
    return _valid_address(request.META.get("REMOTE_ADDR"))
