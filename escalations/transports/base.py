"""The contract of a notification transport, and its one HTTP way out.

A transport turns a stored message into a request body. ``post_json`` sends
it with timeouts and bounded retries: a POST is safe to repeat because every
request carries the delivery's ``Idempotency-Key``, which the receiver can use
to drop a repeat. Each error states whether another try could help.
"""

import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)

# 408 and 429 ask the client to come back; 5xx are the server's own failures.
RETRYABLE_STATUS = frozenset({408, 429})


class DeliveryError(Exception):
    """A notification the receiver did not accept.

    ``permanent`` is true when a retry cannot help.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        status_code: int | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status_code = status_code
        self.attempts = attempts


@dataclass(frozen=True)
class SendResult:
    status_code: int
    attempts: int


class Transport:
    """Builds the request body for one kind of receiver."""

    kind: ClassVar[str]

    def payload(self, message: dict[str, Any], recipient: str) -> dict[str, Any]:
        raise NotImplementedError

    def send(
        self,
        url: str,
        message: dict[str, Any],
        *,
        recipient: str,
        idempotency_key: str,
        token: str | None = None,
    ) -> SendResult:
        headers = {"Idempotency-Key": idempotency_key}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return post_json(url, self.payload(message, recipient), headers)


def post_json(url: str, payload: dict[str, Any], headers: dict[str, str]) -> SendResult:
    """POST ``payload``; retry timeouts, 408, 429 and 5xx with a growing pause.

    Raises DeliveryError after the last try, or at once for other statuses.
    """
    tries = 1 + settings.NOTIFICATION_RETRIES
    timeout = settings.NOTIFICATION_TIMEOUT_SECONDS
    last_error = ""
    status_code: int | None = None
    for attempt in range(1, tries + 1):
        try:
            response = httpx.post(url, json=payload, headers=headers, timeout=timeout)
        except httpx.HTTPError as error:
            last_error = f"{type(error).__name__}: {error}"
            status_code = None
        else:
            status_code = response.status_code
            if response.is_success:
                return SendResult(response.status_code, attempt)
            last_error = f"HTTP {status_code}: {response.text[:200]}"
            if not _retryable(status_code):
                raise DeliveryError(
                    last_error,
                    permanent=True,
                    status_code=status_code,
                    attempts=attempt,
                )
        logger.warning(
            "notification to %s failed on try %s of %s: %s",
            _safe(url),
            attempt,
            tries,
            last_error,
        )
        if attempt < tries:
            time.sleep(_pause(attempt))
    raise DeliveryError(
        f"no success after {tries} tries; last: {last_error}",
        permanent=False,
        status_code=status_code,
        attempts=tries,
    )


def _retryable(status_code: int) -> bool:
    return status_code in RETRYABLE_STATUS or status_code >= 500


def _pause(attempt: int) -> float:
    base = settings.NOTIFICATION_BACKOFF_SECONDS
    return float(min(10.0, base * 2 ** (attempt - 1)))


def _safe(url: str) -> str:
    """Keep scheme and host only: a Slack webhook's path is its secret."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}:{parsed.port or ''}".rstrip(":")


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, ending with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"
