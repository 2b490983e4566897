"""Shared parts of the Kubernetes actions: parameters, API calls, errors, waits.

Every call goes through ``Cluster.call``, which bounds the request by the
step's remaining time and turns the client's exceptions into RetryableError
or PermanentError. Writes that depend on what was read go through
``retry_on_conflict``, which re-reads and writes again after a 409 Conflict.
"""

import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import kubernetes
import urllib3
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from kubernetes.client.exceptions import ApiException

from mitigations.actions.base import (
    ActionContext,
    ActionError,
    Parameter,
    PermanentError,
    RetryableError,
)
from mitigations.services import clients

logger = logging.getLogger(__name__)

T = TypeVar("T")

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"

# Retries of a write rejected with 409 Conflict, after the first try.
CONFLICT_RETRIES = 3
REQUEST_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.1

DEPLOYMENT = Parameter(
    "deployment",
    labels=("deployment", "app", "service", "job"),
    help="Name of the Deployment.",
)
NAMESPACE = Parameter(
    "namespace",
    required=False,
    labels=("namespace",),
    help="Namespace of the target; BASTION_KUBE_NAMESPACE when not set.",
)


class ConflictError(RetryableError):
    """A write rejected with 409 Conflict: the object changed since the read."""


class NotFoundError(PermanentError):
    """A 404 Not Found from the API for the object named in the message."""


def namespace_of(params: Mapping[str, Any]) -> str:
    return params.get("namespace") or settings.KUBE_NAMESPACE


def deployment_target(params: Mapping[str, Any]) -> str:
    return f"deployment {namespace_of(params)}/{params['deployment']}"


class Cluster:
    """The Kubernetes API for one step, each request bounded by the step's deadline."""

    def __init__(self, context: ActionContext) -> None:
        self.context = context
        try:
            self.client = clients.kubernetes_client()
        except (ImproperlyConfigured, kubernetes.config.ConfigException) as error:
            raise PermanentError(
                f"the Kubernetes client cannot be configured: {error}; check "
                "BASTION_KUBECONFIG or the pod's service account"
            ) from None
        self.apps = clients.apps_api()
        self.core = clients.core_api()
        self.autoscaling = clients.autoscaling_api()

    def call(self, what: str, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call one API method; ``what`` names the object in error messages."""
        timeout = max(
            1.0, min(REQUEST_TIMEOUT_SECONDS, self.context.remaining_seconds())
        )
        try:
            return method(*args, _request_timeout=timeout, **kwargs)
        except ApiException as error:
            raise api_error(error, what) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise RetryableError(
                f"{what}: the Kubernetes API at {self.client.configuration.host} "
                f"did not answer: {error}"
            ) from None

    def to_json(self, model: Any) -> Any:
        """Return a client model as the JSON the API sends, with camelCase keys."""
        return self.client.sanitize_for_serialization(model)


def api_error(error: ApiException, what: str) -> ActionError:
    """Translate an API error into a RetryableError or a PermanentError."""
    status = error.status or 0
    message = f"{what}: HTTP {status} {server_message(error)}"
    if status == 409:
        return ConflictError(message)
    if status == 429 or status >= 500:
        return RetryableError(message)
    if status == 404:
        return NotFoundError(
            f"{message}; check the name and namespace in the step's parameters "
            "or the incident's labels"
        )
    if status in (401, 403):
        return PermanentError(
            f"{message}; grant Bastion's Kubernetes user the permission it needs"
        )
    return PermanentError(message)


def server_message(error: ApiException) -> str:
    """Return the message of the API's Status body, or the HTTP reason."""
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        return str(error.reason or "")
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(error.reason or "")


def retry_on_conflict(what: str, write: Callable[[], T]) -> T:
    """Run ``write``, which reads and writes, again after each 409 Conflict.

    ``write`` must read the object afresh each time, so that the next try
    builds its change on the version that won.
    """
    for retry in range(CONFLICT_RETRIES + 1):
        try:
            return write()
        except ConflictError as error:
            logger.info(
                "%s: conflict on try %d of %d: %s",
                what,
                retry + 1,
                CONFLICT_RETRIES + 1,
                error,
            )
            time.sleep(0.05 * (retry + 1))
    raise RetryableError(
        f"{what}: the object changed under every one of {CONFLICT_RETRIES + 1} "
        "writes (HTTP 409 Conflict); something else is writing it at the same time"
    )


def restart_patch(annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build a rollout restart: the annotation kubectl rollout restart sets.

    Sent as a strategic merge patch, it merges into the template's
    annotations, so every annotation not named here is kept.
    """
    stamped = {RESTARTED_AT: now_rfc3339(), **(annotations or {})}
    return {"spec": {"template": {"metadata": {"annotations": stamped}}}}


def now_rfc3339() -> str:
    # With microseconds, two restarts within one second still differ, so
    # each one rolls the pods.
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def wait_for(
    cluster: Cluster,
    timeout_seconds: float,
    check: Callable[[], T | None],
) -> tuple[T | None, float]:
    """Poll ``check`` until it returns a value or time runs out.

    Returns the value (None on timeout) and the seconds waited. The wait
    ends at the step's deadline even when ``timeout_seconds`` is longer.
    """
    started = time.monotonic()
    deadline = started + min(timeout_seconds, cluster.context.remaining_seconds())
    while True:
        value = check()
        if value is not None:
            return value, time.monotonic() - started
        if time.monotonic() >= deadline:
            return None, time.monotonic() - started
        time.sleep(max(0.0, min(POLL_SECONDS, deadline - time.monotonic())))
