"""Text of metric values, thresholds, units, labels and ages on the pages.

The templates use these through the ``incident_format`` filters, and the live
stream uses them to format values it sends without a whole row.
"""

import math
from datetime import datetime
from typing import Any

from django.utils import timezone

from watchers.models import Incident

# Prefixes for values of a thousand and more, so 1234567 reads 1.23M, not 1.23e+06.
_SI_PREFIXES = ["", "k", "M", "G", "T", "P", "E"]
NO_VALUE = "—"


def metric_value(value: float | None) -> str:
    """Format a sample value to 3 significant digits, with NaN and Inf as Prometheus."""
    if value is None:
        return NO_VALUE
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"

    # Round first, so that 999.7 becomes 1k rather than 1e+03.
    rounded = float(f"{value:.3g}")
    if abs(rounded) < 1000:
        return f"{rounded:.3g}"
    thousands = int(math.log10(abs(rounded)) // 3)
    if thousands >= len(_SI_PREFIXES):
        return f"{rounded:.3g}"
    return f"{rounded / 1000**thousands:.3g}{_SI_PREFIXES[thousands]}"


def metric_value_with_unit(value: float | None, unit: str) -> str:
    """Format a value as ``metric_value`` does, followed by ``unit`` if any."""
    text = metric_value(value)
    if not unit or value is None:
        return text
    return f"{text} {unit}"


def incident_unit(incident: Incident) -> str:
    """Return the unit of the incident's watcher, or "" for a data source incident."""
    return incident.watcher.unit if incident.watcher is not None else ""


def value_against_threshold(incident: Incident) -> str:
    """Format the last value beside the condition: ``0.689 s (threshold > 0.8 s)``.

    The condition is named as the threshold rather than stated of the value,
    so the text stays true once the value is back under it. Incidents without
    a threshold, such as data source incidents, show their summary instead.
    """
    if not incident.comparison or incident.threshold is None:
        return incident.summary or NO_VALUE
    unit = incident_unit(incident)
    return (
        f"{metric_value_with_unit(incident.last_value, unit)} (threshold "
        f"{incident.comparison} {metric_value_with_unit(incident.threshold, unit)})"
    )


def label_pairs(labels: Any) -> list[tuple[str, str]]:
    """Return a label set as sorted (name, value) pairs.

    Templates cannot loop over ``labels.items`` safely, because a label named
    ``items`` would shadow the dict method.
    """
    if not isinstance(labels, dict):
        return []
    return sorted((str(name), str(value)) for name, value in labels.items())


def age(moment: datetime | None) -> str:
    """Format the time since ``moment`` in its largest fitting unit: ``12 min``."""
    if moment is None:
        return NO_VALUE
    seconds = max(0, int((timezone.now() - moment).total_seconds()))
    return duration_text(seconds)


def duration_text(seconds: float) -> str:
    """Format a number of seconds in its largest fitting unit: ``12 min``."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 48 * 3600:
        return f"{whole // 3600} h"
    return f"{whole // 86400} d"


# A symbol beside each status word (of a step, an approval, a delivery or an
# attempt), so a status never relies on colour alone.
STATUS_ICONS = {
    "queued": "…",
    "waiting_approval": "‖",
    "approved": "✓",
    "running": "▶",
    "succeeded": "✓",
    "failed": "✗",
    "dry_run": "○",
    "skipped": "↷",
    "blocked": "⊘",
    "rejected": "✗",
    "lost": "?",
    "expired": "⊗",
    "pending": "…",
    "sending": "…",
    "delivered": "✓",
    "firing": "●",
    "resolved": "✓",
    "escalated": "▲",
    "verifying": "…",
    "mitigated": "✓",
    "stopped": "■",
}


def status_icon(status: str) -> str:
    """Return the symbol shown beside a status word, or a bullet for others."""
    return STATUS_ICONS.get(status, "•")
