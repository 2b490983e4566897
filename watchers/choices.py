from django.db import models


class Comparison(models.TextChoices):
    GREATER = ">", "greater than"
    GREATER_OR_EQUAL = ">=", "greater than or equal to"
    LESS = "<", "less than"
    LESS_OR_EQUAL = "<=", "less than or equal to"


class Severity(models.TextChoices):
    CRITICAL = "critical", "critical"
    HIGH = "high", "high"
    MEDIUM = "medium", "medium"
    LOW = "low", "low"


class Mode(models.TextChoices):
    ACTIVE = "active", "active"
    SHADOW = "shadow", "shadow (evaluate and record, run nothing)"
    PAUSED = "paused", "paused (not evaluated)"


class Health(models.TextChoices):
    UNKNOWN = "unknown", "not evaluated yet"
    OK = "ok", "ok"
    ERROR = "error", "query failed"
    TOO_MANY_SERIES = "too_many_series", "too many series"


class SeriesStatus(models.TextChoices):
    PENDING = "pending", "pending"
    FIRING = "firing", "firing"
    RESOLVING = "resolving", "clear, waiting for the resolve delay"


class IncidentKind(models.TextChoices):
    SERIES = "series", "watcher series"
    DATASOURCE = "datasource", "data source unavailable"


class IncidentState(models.TextChoices):
    FIRING = "firing", "firing"
    RESOLVED = "resolved", "resolved"
