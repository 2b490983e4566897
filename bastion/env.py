"""Typed readers for ``BASTION_*`` environment variables.

Each reader raises ``ImproperlyConfigured`` with the variable name, the value
and the accepted form, so a typo in a deployment fails at start-up instead of
silently falling back to a default.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

PREFIX = "BASTION_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    return os.environ.get(PREFIX + name)


def read_str(name: str, default: str) -> str:
    value = _raw(name)
    return default if value is None or value == "" else value


def read_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{PREFIX}{name}={value!r} is not a boolean: use one of "
        f"{sorted(_TRUE)} or {sorted(_FALSE)}"
    )


def read_int(name: str, default: int, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{PREFIX}{name}={value!r} is not a whole number"
        ) from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(
            f"{PREFIX}{name}={number} is below the minimum of {minimum}"
        )
    return number


def read_float(name: str, default: float, minimum: float | None = None) -> float:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{PREFIX}{name}={value!r} is not a number"
        ) from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(
            f"{PREFIX}{name}={number} is below the minimum of {minimum}"
        )
    return number


def read_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None or value == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def read_secret(name: str, default: str | None = None) -> str | None:
    """Read ``BASTION_<name>``, or the file named by ``BASTION_<name>_FILE``."""
    value = _raw(name)
    path = _raw(name + "_FILE")
    if value and path:
        raise ImproperlyConfigured(
            f"both {PREFIX}{name} and {PREFIX}{name}_FILE are set: keep one"
        )
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ImproperlyConfigured(
                f"{PREFIX}{name}_FILE={path!r} cannot be read: {error.strerror}"
            ) from None
    return value or default
