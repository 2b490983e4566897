"""The watcher's metric around an incident, from Prometheus range queries.

The page shows the same series twice. A chart covers the time around the
incident with the threshold drawn, laid out here as SVG coordinates so that
the page needs no chart library. A table lists the query's value at each
evaluation interval around the opening, judged against the watcher's rule.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from watchers.models import Incident
from watchers.services.formatting import metric_value_with_unit
from watchers.services.judging import Rule, breaches, fingerprint
from watchers.services.prometheus import PrometheusClient, PrometheusError

MAX_CHART_POINTS = 240
MAX_EVALUATION_ROWS = 40
EVALUATIONS_BEFORE = 3
EVALUATIONS_AFTER = 3
MIN_CONTEXT = timedelta(minutes=10)

CHART_WIDTH = 720
CHART_HEIGHT = 220
# Room for the value labels on the left and the time labels below.
PLOT_LEFT = 64
PLOT_RIGHT = 12
PLOT_TOP = 12
PLOT_BOTTOM = 28
TICKS = 5


@dataclass(frozen=True)
class History:
    """Points of the incident's series between ``start`` and ``end``."""

    start: datetime
    end: datetime
    step_seconds: float
    points: list[tuple[float, float]] = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True)
class EvaluationRow:
    at: datetime
    value: float | None
    breached: bool
    text: str
    after_opening: bool


def incident_history(
    incident: Incident,
    client: PrometheusClient | None = None,
    now: datetime | None = None,
) -> History:
    """Query the watcher's series from before the breach to the resolution or now."""
    now = now or timezone.now()
    watcher = incident.watcher
    if watcher is None:
        return _empty(now, "a data source incident has no metric to draw")

    context = max(MIN_CONTEXT, timedelta(seconds=2 * watcher.window_seconds))
    context = max(context, timedelta(seconds=4 * watcher.interval_seconds))
    start = incident.opened_at - context
    end = now
    if incident.resolved_at is not None:
        end = min(now, incident.resolved_at + context / 2)
    step = max(1.0, math.ceil((end - start).total_seconds() / MAX_CHART_POINTS))
    return _query(incident, start, end, step, client)


def evaluations_around_opening(
    incident: Incident,
    client: PrometheusClient | None = None,
    now: datetime | None = None,
) -> tuple[list[EvaluationRow], History]:
    """Recompute the query at each interval from before the window to after opening.

    The rows come from Prometheus's stored samples at instants one interval
    apart, so they show what each evaluation saw, within the offset between
    those instants and the real evaluation slots.
    """
    now = now or timezone.now()
    watcher = incident.watcher
    if watcher is None:
        return [], _empty(now, "a data source incident has no metric to evaluate")

    interval = timedelta(seconds=watcher.interval_seconds)
    start = (
        incident.opened_at
        - timedelta(seconds=watcher.window_seconds)
        - EVALUATIONS_BEFORE * interval
    )
    end = min(now, incident.opened_at + EVALUATIONS_AFTER * interval)
    span = (end - start).total_seconds()
    step = max(float(watcher.interval_seconds), math.ceil(span / MAX_EVALUATION_ROWS))
    history = _query(incident, start, end, step, client)

    rule = Rule(
        comparison=watcher.comparison,
        threshold=watcher.threshold,
        window_seconds=watcher.window_seconds,
        resolve_delay_seconds=watcher.effective_resolve_delay_seconds,
        clear_threshold=watcher.clear_threshold,
    )
    rows = [
        EvaluationRow(
            at=_moment(at),
            value=value,
            breached=breaches(rule, value),
            text=metric_value_with_unit(value, watcher.unit),
            after_opening=_moment(at) >= incident.opened_at,
        )
        for at, value in history.points
    ]
    return rows, history


def _query(
    incident: Incident,
    start: datetime,
    end: datetime,
    step: float,
    client: PrometheusClient | None,
) -> History:
    assert incident.watcher is not None
    client = client or PrometheusClient()
    try:
        series = client.query_range(incident.watcher.query, start, end, step)
    except PrometheusError as error:
        return History(start, end, step, error=f"the range query failed: {error}")
    for candidate in series:
        if fingerprint(candidate.labels) == incident.fingerprint:
            return History(start, end, step, points=candidate.points)
    return History(
        start,
        end,
        step,
        error="Prometheus has no samples of this series in that time, "
        "perhaps because they are older than its retention",
    )


def _empty(now: datetime, reason: str) -> History:
    return History(now, now, 0.0, error=reason)


def _moment(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, tz=timezone.get_current_timezone())


# Drawing


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    """SVG coordinates of the incident chart, which the template draws."""

    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    lines: list[str]
    dots: list[tuple[float, float]]
    threshold_y: float | None
    threshold_label: str
    incident_x: tuple[float, float] | None
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    description: str

    @property
    def plot_width(self) -> int:
        return self.plot_right - self.plot_left

    @property
    def plot_height(self) -> int:
        return self.plot_bottom - self.plot_top

    @property
    def incident_width(self) -> float:
        if self.incident_x is None:
            return 0.0
        return round(self.incident_x[1] - self.incident_x[0], 1)

    @property
    def value_label_x(self) -> int:
        return self.plot_left - 6

    @property
    def time_label_y(self) -> int:
        return self.height - 8


def chart_for(incident: Incident, history: History) -> Chart | None:
    """Lay out the history as a line chart with the threshold and the incident."""
    finite = [(at, value) for at, value in history.points if math.isfinite(value)]
    if not finite or incident.watcher is None:
        return None
    unit = incident.watcher.unit
    threshold = incident.threshold

    low, high = _value_range([value for _, value in finite], threshold)
    t_start, t_end = history.start.timestamp(), history.end.timestamp()
    # A series younger than the time asked for starts at its first sample, so
    # a new incident's few points do not sit squeezed against the right edge.
    t_start = max(t_start, history.points[0][0] - history.step_seconds)
    if t_end <= t_start:
        t_end = t_start + 1
    plot_width = CHART_WIDTH - PLOT_LEFT - PLOT_RIGHT
    plot_height = CHART_HEIGHT - PLOT_TOP - PLOT_BOTTOM

    def x_of(at: float) -> float:
        return round(PLOT_LEFT + (at - t_start) / (t_end - t_start) * plot_width, 1)

    def y_of(value: float) -> float:
        share = (value - low) / (high - low)
        return round(PLOT_TOP + (1 - share) * plot_height, 1)

    lines = _segments(history.points, history.step_seconds, x_of, y_of)
    dots = [(x_of(at), y_of(value)) for at, value in finite] if len(finite) < 3 else []
    resolved = incident.resolved_at.timestamp() if incident.resolved_at else t_end
    opened = max(t_start, incident.opened_at.timestamp())
    incident_x = (x_of(opened), x_of(min(resolved, t_end))) if opened < t_end else None

    return Chart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        plot_left=PLOT_LEFT,
        plot_right=CHART_WIDTH - PLOT_RIGHT,
        plot_top=PLOT_TOP,
        plot_bottom=CHART_HEIGHT - PLOT_BOTTOM,
        lines=lines,
        dots=dots,
        threshold_y=y_of(threshold) if threshold is not None else None,
        threshold_label=metric_value_with_unit(threshold, unit),
        incident_x=incident_x,
        x_ticks=_time_ticks(t_start, t_end, x_of),
        y_ticks=[
            Tick(y_of(value), metric_value_with_unit(value, unit))
            for value in _even(low, high)
        ],
        description=_describe(incident, finite, unit),
    )


def _value_range(values: list[float], threshold: float | None) -> tuple[float, float]:
    """Return the y axis range: every value and the threshold, with some margin."""
    shown = [*values, threshold] if threshold is not None else list(values)
    low, high = min(shown), max(shown)
    spread = high - low
    margin = spread * 0.1 if spread else (abs(high) * 0.1 or 1.0)
    bottom = low - margin
    # When no value is negative, the axis starts at 0 rather than below it.
    if low >= 0 and bottom < 0:
        bottom = 0.0
    return bottom, high + margin


def _segments(
    points: list[tuple[float, float]],
    step: float,
    x_of: Callable[[float], float],
    y_of: Callable[[float], float],
) -> list[str]:
    """Return polyline point lists, broken where a sample is missing or not finite."""
    segments: list[list[str]] = [[]]
    previous: float | None = None
    for at, value in points:
        gap = previous is not None and at - previous > 1.5 * step
        if (gap or not math.isfinite(value)) and segments[-1]:
            segments.append([])
        if math.isfinite(value):
            segments[-1].append(f"{x_of(at)},{y_of(value)}")
        previous = at
    return [" ".join(segment) for segment in segments if len(segment) > 1]


def _even(low: float, high: float) -> list[float]:
    return [low + (high - low) * index / (TICKS - 1) for index in range(TICKS)]


def _time_ticks(start: float, end: float, x_of: Callable[[float], float]) -> list[Tick]:
    long_range = end - start > 86400
    ticks = []
    for moment in _even(start, end):
        local = _moment(moment)
        label = local.strftime("%m-%d %H:%M" if long_range else "%H:%M:%S")
        ticks.append(Tick(x_of(moment), label))
    return ticks


def _describe(incident: Incident, finite: list[tuple[float, float]], unit: str) -> str:
    values = [value for _, value in finite]
    return (
        f"{len(values)} samples from {metric_value_with_unit(min(values), unit)} "
        f"to {metric_value_with_unit(max(values), unit)}; threshold "
        f"{incident.comparison} {metric_value_with_unit(incident.threshold, unit)}"
    )
