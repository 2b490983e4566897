"""Small factories for watcher tests."""

from typing import Any

from watchers.models import Watcher

_counter = 0


def make_watcher(**fields: Any) -> Watcher:
    global _counter
    _counter += 1
    values: dict[str, Any] = {
        "name": f"watcher-{_counter}",
        "query": "up",
        "threshold": 1.0,
        "window_seconds": 60,
        "interval_seconds": 15,
    }
    values.update(fields)
    return Watcher.objects.create(**values)
