"""Rules that every way of defining a watcher (catalog, admin) applies alike."""

from watchers.services.durations import (
    DAILY,
    DAY_SECONDS,
    format_duration,
    parse_duration,
)

MIN_DEFAULT_INTERVAL_SECONDS = 15
MAX_DEFAULT_INTERVAL_SECONDS = 60
# An upper bound that catches typing mistakes before they overflow the column.
MAX_SERIES_LIMIT = 1_000_000


class DefinitionError(ValueError):
    """A watcher field that cannot be saved; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def default_interval_seconds(window_seconds: int) -> int:
    """A quarter of the window, kept between 15 s and 1 min."""
    quarter = window_seconds // 4
    return max(MIN_DEFAULT_INTERVAL_SECONDS, min(MAX_DEFAULT_INTERVAL_SECONDS, quarter))


def window_for_catalog(window_seconds: int | None) -> tuple[int, int]:
    """Return (window, default interval) in seconds for a catalog ``window``.

    ``None`` stands for ``daily``, which is a schedule, not a hold time: the
    check runs once a day and an incident opens on the first breaching
    evaluation, so its window is 0. A window written as ``24h`` or ``1d`` is
    a real hold time, evaluated every minute.
    """
    if window_seconds is None:
        return 0, DAY_SECONDS
    return window_seconds, default_interval_seconds(window_seconds)


def parse_catalog_window(text: object) -> int | None:
    """Parse a catalog ``window``: seconds, or None for ``daily``."""
    if isinstance(text, str) and text.strip().lower() == DAILY:
        return None
    return parse_duration(text)


def check_window_and_interval(window_seconds: int, interval_seconds: int) -> None:
    if interval_seconds <= 0:
        raise DefinitionError("interval", "the interval must be longer than 0s")
    if 0 < window_seconds < interval_seconds:
        raise DefinitionError(
            "window",
            f"the window {format_duration(window_seconds)} is shorter than the "
            f"interval {format_duration(interval_seconds)}: a condition checked "
            "only once per interval cannot be shown to hold for less than one "
            "interval. Lengthen the window or shorten the interval.",
        )


def check_clear_threshold(
    comparison: str, threshold: float, clear_threshold: float
) -> None:
    """Reject a clear threshold that is not strictly on the clear side.

    One equal to the threshold would change nothing, so it is rejected too.
    """
    fires_above = comparison in (">", ">=")
    if fires_above and clear_threshold < threshold:
        return
    if not fires_above and clear_threshold > threshold:
        return
    side = "below" if fires_above else "above"
    raise DefinitionError(
        "clear_threshold",
        f"the clear threshold {clear_threshold:g} is not {side} the threshold "
        f"{threshold:g}: a watcher that fires on {comparison} {threshold:g} "
        f"clears {side} it, so set a value {side} {threshold:g} or leave it empty",
    )


def check_max_series(max_series: int) -> None:
    if max_series <= 0:
        raise DefinitionError(
            "max_series",
            f"{max_series!r} is not a positive whole number: write one from 1 to "
            f"{MAX_SERIES_LIMIT}, e.g. 100",
        )
    if max_series > MAX_SERIES_LIMIT:
        raise DefinitionError(
            "max_series",
            f"{max_series!r} is more than the maximum of {MAX_SERIES_LIMIT}: "
            "write a smaller number, or leave it out for the site-wide limit",
        )
