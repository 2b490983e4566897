"""The one way out to each system an action changes.

Each factory reads its settings once per process. Tests and the demo point
the settings at real local servers (Redis, PostgreSQL, an HTTP receiver, the
Kubernetes API stand-in through a kubeconfig); nothing here knows about them.
"""

import logging
import time
from collections.abc import Collection
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import psycopg
import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from mitigations.actions.base import PermanentError, RetryableError

logger = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


def _require(name: str, value: str | None) -> str:
    if not value:
        raise PermanentError(
            f"BASTION_{name} is not set, so this action has nowhere to act: set it "
            "in the environment of the Celery worker"
        )
    return value


@lru_cache(maxsize=1)
def kubernetes_client() -> kubernetes.client.ApiClient:
    """An API client from BASTION_KUBECONFIG, or the in-cluster service account."""
    path = settings.KUBECONFIG
    if path:
        if not Path(path).exists():
            raise ImproperlyConfigured(f"BASTION_KUBECONFIG={path!r} does not exist")
        return kubernetes.config.new_client_from_config(config_file=path)
    kubernetes.config.load_incluster_config()
    return kubernetes.client.ApiClient()


def apps_api() -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(kubernetes_client())


def core_api() -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(kubernetes_client())


def autoscaling_api() -> kubernetes.client.AutoscalingV2Api:
    return kubernetes.client.AutoscalingV2Api(kubernetes_client())


@lru_cache(maxsize=16)
def target_redis(db: int | None = None) -> redis.Redis:
    """The application's Redis (not Bastion's broker), from BASTION_TARGET_REDIS_URL.

    ``db`` selects another database number on the same server; without it the
    URL's database is used.
    """
    url = _require("TARGET_REDIS_URL", settings.TARGET_REDIS_URL)
    if db is not None:
        # A database in the URL's path would win over a db= keyword argument.
        url = str(httpx.URL(url).copy_with(path=f"/{db}"))
    return redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=5, decode_responses=True
    )


def target_database() -> psycopg.Connection:
    """A new connection to the database whose queries an action may terminate."""
    url = _require("TARGET_DATABASE_URL", settings.TARGET_DATABASE_URL)
    return psycopg.connect(url, connect_timeout=5, autocommit=True)


def http_request(
    method: str,
    url: str,
    *,
    timeout_seconds: float = 10.0,
    retries: int = 2,
    expect_status: Collection[int] = (),
    **kwargs: Any,
) -> httpx.Response:
    """Send one request; retry idempotent methods on transient failures.

    A POST or PATCH is sent once: repeating it could repeat its effect. A
    status in ``expect_status`` is returned like a 2xx, without a retry.
    Raises RetryableError or PermanentError, never an httpx exception.
    """
    method = method.upper()
    tries = 1 + (retries if method in IDEMPOTENT_METHODS else 0)
    last: Exception | None = None
    for attempt in range(1, tries + 1):
        try:
            response = httpx.request(method, url, timeout=timeout_seconds, **kwargs)
        except (httpx.TimeoutException, httpx.TransportError) as error:
            last = error
            logger.warning(
                "%s %s failed on try %s of %s: %s",
                method,
                safe_url(url),
                attempt,
                tries,
                type(error).__name__,
            )
        else:
            if response.status_code in expect_status:
                return response
            if response.status_code not in RETRYABLE_STATUS or attempt == tries:
                return _check(method, url, response)
            last = RetryableError(
                f"{method} {safe_url(url)}: HTTP {response.status_code}"
            )
        if attempt < tries:
            time.sleep(min(2.0, 0.2 * 2 ** (attempt - 1)))
    raise RetryableError(f"{method} {safe_url(url)} failed: {last}")


def _check(method: str, url: str, response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    message = f"{method} {safe_url(url)}: HTTP {response.status_code}"
    if response.status_code in RETRYABLE_STATUS or response.status_code >= 500:
        raise RetryableError(message)
    raise PermanentError(message)


def safe_url(url: str) -> str:
    """Drop credentials and the query string from a URL before it is logged."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(userinfo=b"", query=None))


def read_credential(name: str) -> str:
    """Read a secret named by a step: ``env:NAME`` or ``file:/path``.

    Steps store the reference, never the secret, so the database and the
    logs hold no credential in clear.
    """
    import os

    kind, _, reference = name.partition(":")
    if kind == "env" and reference:
        value = os.environ.get(reference)
        if not value:
            raise PermanentError(f"the environment variable {reference} is not set")
        return value
    if kind == "file" and reference:
        try:
            return Path(reference).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise PermanentError(
                f"the credential file {reference} cannot be read: {error.strerror}"
            ) from None
    raise PermanentError(
        f"credential {name!r} must be 'env:VARIABLE' or 'file:/path/to/secret'"
    )
