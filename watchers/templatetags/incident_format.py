"""Template filters that format incident values, labels and ages for the pages."""

import math
from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone

from watchers.models import Incident

register = template.Library()

# Prefixes for values of a thousand and more, so 1234567 reads 1.23M, not 1.23e+06.
_SI_PREFIXES = ["", "k", "M", "G", "T", "P", "E"]
NO_VALUE = "—"


@register.filter
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


@register.filter
def value_against_threshold(incident: Incident) -> str:
    """Format the last value, the comparison and the threshold: ``0.93 > 0.8``.

    Incidents without a threshold, such as data source incidents, show their
    summary instead.
    """
    if not incident.comparison or incident.threshold is None:
        return incident.summary or NO_VALUE
    return (
        f"{metric_value(incident.last_value)} {incident.comparison} "
        f"{metric_value(incident.threshold)}"
    )


@register.filter
def label_pairs(labels: Any) -> list[tuple[str, str]]:
    """Return a label set as sorted (name, value) pairs.

    Templates cannot loop over ``labels.items`` safely, because a label named
    ``items`` would shadow the dict method.
    """
    if not isinstance(labels, dict):
        return []
    return sorted((str(name), str(value)) for name, value in labels.items())


@register.filter
def age(moment: datetime | None) -> str:
    """Format the time since ``moment`` in its largest fitting unit: ``12 min``."""
    if moment is None:
        return NO_VALUE
    seconds = max(0, int((timezone.now() - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"
