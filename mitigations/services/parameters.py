"""Step parameters: site defaults, the step's own values, the incident's labels.

A site can give every action default parameters in the YAML file named by
BASTION_ACTION_DEFAULTS_FILE (the URL of its feature-flag service, the
commands it allows), so the operations team's catalog, which names only
actions, runs without editing each step.
"""

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from mitigations.actions.base import Action, ParameterError


@lru_cache(maxsize=4)
def _load_defaults(path: str) -> dict[str, dict[str, Any]]:
    if not path:
        return {}
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise ImproperlyConfigured(
            f"BASTION_ACTION_DEFAULTS_FILE={path!r} cannot be read: {error.strerror}"
        ) from None
    except yaml.YAMLError as error:
        raise ImproperlyConfigured(f"{path} is not valid YAML: {error}") from None
    if not isinstance(document, dict) or not all(
        isinstance(v, dict) for v in document.values()
    ):
        raise ImproperlyConfigured(
            f"{path} must map action names to mappings of parameters"
        )
    return document


def site_defaults(action_name: str) -> dict[str, Any]:
    return dict(_load_defaults(settings.ACTION_DEFAULTS_FILE).get(action_name, {}))


def merged_values(action: Action, step_values: dict[str, Any]) -> dict[str, Any]:
    return {**site_defaults(action.name), **(step_values or {})}


def check_step(action: Action, step_values: dict[str, Any]) -> dict[str, Any]:
    """Validate a step when it is saved; labels are not known yet."""
    return action.clean(merged_values(action, step_values))


def resolve(
    action: Action, step_values: dict[str, Any], labels: dict[str, str]
) -> dict[str, Any]:
    """Parameters for a run: defaults, step values, then labels filled in."""
    return action.clean(merged_values(action, step_values), labels=labels)


__all__ = ["ParameterError", "check_step", "resolve", "site_defaults"]
