"""Template filters that format incident values, labels and ages for the pages."""

from django import template

from watchers.models import Incident
from watchers.services.formatting import (
    age,
    incident_unit,
    label_pairs,
    metric_value,
    metric_value_with_unit,
    status_icon,
    value_against_threshold,
)

register = template.Library()

register.filter("metric_value", metric_value)
register.filter("value_against_threshold", value_against_threshold)
register.filter("label_pairs", label_pairs)
register.filter("age", age)
register.filter("status_icon", status_icon)


@register.filter
def with_unit(value: float | None, unit: str) -> str:
    """Format a value followed by a unit: ``{{ value|with_unit:watcher.unit }}``."""
    return metric_value_with_unit(value, unit)


@register.filter
def incident_value(value: float | None, incident: Incident) -> str:
    """Format a value in the unit of the incident's watcher."""
    return metric_value_with_unit(value, incident_unit(incident))
