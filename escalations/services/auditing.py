"""Writes to the audit log, which the audit app provides."""

import logging
from typing import Any

logger = logging.getLogger(__name__)


def record(kind: str, summary: str, **fields: Any) -> None:
    """Record an audit event; log instead while the audit app is not installed."""
    try:
        from audit.services import record as record_event
    except ImportError:
        # NOTE: only until the audit app lands; then every event is stored.
        logger.warning("audit log unavailable, not recorded: %s %s", kind, summary)
        return
    record_event(kind, summary, **fields)
