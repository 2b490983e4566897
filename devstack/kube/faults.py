"""Injected failures: error responses, stalled responses and forced conflicts.

A fault matches requests by method and by a regular expression searched in
the path, and applies to the next ``times`` matching requests (1 unless set,
every one when ``times`` is null). Fault specifications, as JSON:

- ``{"method": "PATCH", "path_regex": "/deployments/", "status": 500, "times": 3}``
- ``retry_after_seconds`` adds a Retry-After header (429 has 1 unless set).
  The client's urllib3 retries a GET, PUT or DELETE answered 429, 503 or
  413 with Retry-After, so a test of error handling leaves it out;
- ``{"stall_seconds": 40}``: hold the next request that long, then serve it
  (or answer ``status`` when that is given too);
- ``{"conflicts": 2}``: answer the next two writes with 409 Conflict;
- ``{"stall_ready": "sandra-api", "namespace": "default"}``: keep that
  Deployment's pods from becoming ready until the faults are cleared.
"""

import re
import threading
from dataclasses import dataclass
from typing import Any

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FAULT_FIELDS = {
    "method",
    "path_regex",
    "status",
    "times",
    "stall_seconds",
    "conflicts",
    "stall_ready",
    "namespace",
    "message",
    "retry_after_seconds",
}


class FaultError(ValueError):
    pass


@dataclass
class Fault:
    id: int
    methods: frozenset[str] | None
    path_regex: str | None
    status: int | None
    stall_seconds: float
    times: int | None
    message: str
    retry_after_seconds: int | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.path_regex is None or re.search(self.path_regex, path) is not None

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "methods": sorted(self.methods) if self.methods is not None else None,
            "path_regex": self.path_regex,
            "status": self.status,
            "stall_seconds": self.stall_seconds,
            "times_left": self.times,
            "hits": self.hits,
        }


def parse_methods(value: Any, default: frozenset[str] | None) -> frozenset[str] | None:
    if value is None:
        return default
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise FaultError(f"method must be a name or a list of names, not {value!r}")
    return frozenset(name.upper() for name in names)


def parse_fault(fault_id: int, spec: dict[str, Any]) -> Fault:
    """Build a Fault from its JSON specification, or raise FaultError."""
    conflicts = spec.get("conflicts")
    status = 409 if conflicts is not None else spec.get("status")
    stall_seconds = spec.get("stall_seconds", 0)
    times = conflicts if conflicts is not None else spec.get("times", 1)
    check_fault_values(status, stall_seconds, times)

    path_regex = spec.get("path_regex")
    if path_regex is not None:
        try:
            re.compile(path_regex)
        except re.error as error:
            raise FaultError(
                f"path_regex {path_regex!r} is invalid: {error}"
            ) from error

    default_methods = WRITE_METHODS if conflicts is not None else None
    return Fault(
        id=fault_id,
        methods=parse_methods(spec.get("method"), default_methods),
        path_regex=path_regex,
        status=status,
        stall_seconds=float(stall_seconds),
        times=times,
        message=str(spec.get("message") or "injected fault"),
        retry_after_seconds=retry_after(spec.get("retry_after_seconds"), status),
    )


def check_fault_values(status: Any, stall_seconds: Any, times: Any) -> None:
    if status is None and not stall_seconds:
        raise FaultError(
            "a fault needs status, stall_seconds, conflicts or stall_ready"
        )
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise FaultError(
            f"status must be an HTTP error code from 400 to 599, not {status!r}"
        )
    if not isinstance(stall_seconds, int | float) or stall_seconds < 0:
        raise FaultError(f"stall_seconds must be a number >= 0, not {stall_seconds!r}")
    if times is not None and (not isinstance(times, int) or times < 1):
        raise FaultError(f"times must be an integer >= 1 or null, not {times!r}")


def retry_after(value: Any, status: int | None) -> int | None:
    """Return the Retry-After seconds: 1 for 429 unless set, as API priority does."""
    if value is None:
        return 1 if status == 429 else None
    if not isinstance(value, int) or value < 0:
        raise FaultError(f"retry_after_seconds must be an integer >= 0, not {value!r}")
    return value


class FaultSet:
    """The active faults, in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(self, spec: dict[str, Any]) -> Fault:
        unknown = set(spec) - FAULT_FIELDS
        if unknown:
            raise FaultError(
                f"unknown fault fields {sorted(unknown)}; "
                f"valid fields: {sorted(FAULT_FIELDS)}"
            )
        with self._lock:
            fault = parse_fault(self._next_id, spec)
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def take(self, method: str, path: str) -> Fault | None:
        """Return the first fault matching this request and count it as used."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path):
                    continue
                fault.hits += 1
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.describe() for fault in self._faults]
