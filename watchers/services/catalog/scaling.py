"""Shrink a catalog's windows and delays by a factor, so a demo fires in seconds."""

import dataclasses
import math

from watchers.services.catalog.validation import WatcherDefinition
from watchers.services.definitions import window_for_catalog
from watchers.services.durations import format_duration

MIN_SCALED_INTERVAL_SECONDS = 5
EXAMPLE_WINDOW_SECONDS = 600


def check_scale_factor(factor: float) -> None:
    if not (factor > 1 and math.isfinite(factor)):
        raise ValueError(
            f"the window scale factor {factor:g} must be a number greater than 1, "
            "such as 20 for a 10m window that holds for 30s"
        )


def scale_definition(definition: WatcherDefinition, factor: float) -> WatcherDefinition:
    """Return a copy with window, interval and delays divided by ``factor``.

    The interval is scaled from the definition's own interval, which the window
    before scaling set unless the catalog gave one. The window never becomes
    shorter than the scaled interval, and a window of 0 (``daily``) stays 0.
    """
    window, interval = scale_window_and_interval(
        definition.window_seconds, definition.interval_seconds, factor
    )
    return dataclasses.replace(
        definition,
        window_seconds=window,
        interval_seconds=interval,
        escalation_delay_seconds=_scale_delay(
            definition.escalation_delay_seconds, factor
        ),
        resolve_delay_seconds=_scale_delay(definition.resolve_delay_seconds, factor),
    )


def scale_window_and_interval(
    window_seconds: int, interval_seconds: int, factor: float
) -> tuple[int, int]:
    interval = max(MIN_SCALED_INTERVAL_SECONDS, round(interval_seconds / factor))
    if window_seconds == 0:
        return 0, interval
    return max(round(window_seconds / factor), interval), interval


def _scale_delay(seconds: int | None, factor: float) -> int | None:
    # 0 (immediate) and None (no delay of its own) stay as they are, and a
    # real delay stays at least 1 s so it does not turn into "immediate".
    if not seconds:
        return seconds
    return max(1, round(seconds / factor))


def describe_scale(factor: float) -> str:
    """Describe the scaling with a 10m window as the example."""
    window, interval = window_for_catalog(EXAMPLE_WINDOW_SECONDS)
    scaled_window, scaled_interval = scale_window_and_interval(window, interval, factor)
    return (
        f"Windows are scaled down by {factor:g}: a {format_duration(window)} "
        f"window becomes {format_duration(scaled_window)}, evaluated every "
        f"{format_duration(scaled_interval)} instead of {format_duration(interval)}. "
        "Escalation and resolve delays are divided by the same factor."
    )
