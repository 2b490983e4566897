"""The one way Bastion queries Prometheus, through prometheus-api-client.

Failures are sorted in two kinds, because they call for different reactions:
``DataSourceUnavailable`` says nothing about the query (refused connection,
connect timeout, a proxy's error page, an auth failure) and counts against the
data source; ``QueryFailed`` is Prometheus rejecting or failing this query
(bad_data, execution, timeout), so a batch that fails this way is split to
find the query at fault.
"""

import ast
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from django.conf import settings
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

logger = logging.getLogger(__name__)

# prometheus-api-client reports a non-200 answer only as this message text.
_STATUS_MESSAGE = re.compile(r"HTTP Status Code (\d+) \((.*)\)\Z", re.DOTALL)
_MAX_ERROR_CHARS = 500


class PrometheusError(Exception):
    pass


class DataSourceUnavailable(PrometheusError):
    pass


class QueryFailed(PrometheusError):
    pass


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


def parse_value(text: object) -> float:
    """Convert a sample value; Prometheus sends NaN and ±Inf as strings."""
    if isinstance(text, str):
        lowered = text.strip().lower()
        if lowered in ("+inf", "inf"):
            return math.inf
        if lowered == "-inf":
            return -math.inf
    return float(text)  # type: ignore[arg-type]


def parse_result(result: object) -> list[Sample]:
    """Turn the ``data.result`` of an instant query into samples.

    A scalar comes back as ``[timestamp, "value"]`` and becomes one sample
    with no labels; a vector is a list of ``{"metric", "value"}`` objects.
    """
    if not isinstance(result, list):
        raise DataSourceUnavailable(
            f"unexpected result from Prometheus: {result!r:.200}"
        )
    if len(result) == 2 and not isinstance(result[0], dict):
        return [Sample(labels={}, value=parse_value(result[1]))]
    samples = []
    for item in result:
        if not isinstance(item, dict) or "value" not in item:
            raise QueryFailed(
                "the query returned a range vector or a string, not an instant "
                "vector or a scalar"
            )
        samples.append(
            Sample(
                labels=dict(item.get("metric", {})), value=parse_value(item["value"][1])
            )
        )
    return samples


@dataclass(frozen=True)
class RangeSeries:
    """One series of a range query: its labels and (Unix time, value) points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


def parse_range_result(result: object) -> list[RangeSeries]:
    """Turn the ``data.result`` of a range query (a matrix) into series."""
    if not isinstance(result, list):
        raise DataSourceUnavailable(
            f"unexpected result from Prometheus: {result!r:.200}"
        )
    series = []
    for item in result:
        if not isinstance(item, dict) or "values" not in item:
            raise QueryFailed("the range query did not return a matrix")
        points = [(float(at), parse_value(value)) for at, value in item["values"]]
        series.append(RangeSeries(labels=dict(item.get("metric", {})), points=points))
    return series


def _classify_status(message: str) -> PrometheusError:
    match = _STATUS_MESSAGE.match(message)
    if match is None:
        return DataSourceUnavailable(message[:_MAX_ERROR_CHARS])
    status = int(match.group(1))
    body = _decode_body(match.group(2))
    error_type = body.get("errorType") if isinstance(body, dict) else None
    if isinstance(body, dict) and error_type and status not in (401, 403, 404):
        detail = str(body.get("error", ""))[:_MAX_ERROR_CHARS]
        return QueryFailed(f"Prometheus rejected the query ({error_type}): {detail}")
    return DataSourceUnavailable(
        f"Prometheus answered HTTP {status} without a query error; "
        "check BASTION_PROMETHEUS_URL and any proxy in front of it"
    )


def _decode_body(text: str) -> object:
    try:
        raw = ast.literal_eval(text)
        return json.loads(raw)
    except (ValueError, SyntaxError, TypeError):
        return None


class _FormBodySession(requests.Session):
    """A session that sends a POST request's parameters as a form body.

    prometheus-api-client 0.7 puts the query in the URL even with
    ``method="POST"``, and Prometheus's HTTP API also accepts the parameters
    form-encoded in the body. A batch of a hundred expressions makes a URL
    of over 10 kB. That is longer than the 8 kB request line nginx accepts
    by default (it returns 414), and slow for urllib3, which re-checks each
    character of a URL.
    """

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        if method.upper() == "POST" and params and data is None:
            params, data = None, params
        return super().request(method, url, params=params, data=data, **kwargs)


class PrometheusClient:
    """Instant queries against one Prometheus server, with no retries.

    Evaluation repeats on its own schedule, so a failed query is reported at
    once instead of retried inside the cycle.
    """

    def __init__(
        self,
        url: str | None = None,
        timeout_seconds: float | None = None,
        bearer_token: str | None = None,
    ) -> None:
        self.url = (url or settings.PROMETHEUS_URL).rstrip("/")
        self.timeout_seconds = timeout_seconds or settings.PROMETHEUS_TIMEOUT_SECONDS
        token = bearer_token or settings.PROMETHEUS_BEARER_TOKEN
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self._connection = PrometheusConnect(
            url=self.url,
            headers=headers,
            retry=Retry(total=0, raise_on_status=False),
            timeout=self.timeout_seconds,
            method="POST",
            session=_FormBodySession(),
        )

    def query(self, expression: str, at: datetime | None = None) -> list[Sample]:
        params = {"time": f"{at.timestamp():.3f}"} if at is not None else {}
        result = self._call(
            lambda: self._connection.custom_query(expression, params=params)
        )
        return parse_result(result)

    def query_range(
        self, expression: str, start: datetime, end: datetime, step_seconds: float
    ) -> list[RangeSeries]:
        """Run a range query: the expression's value every ``step_seconds``.

        prometheus-api-client sends ``start`` and ``end`` rounded to whole
        seconds. Prometheus rejects a range of more than 11,000 points per
        series, so callers choose a step that stays below that.
        """
        result = self._call(
            lambda: self._connection.custom_query_range(
                expression, start_time=start, end_time=end, step=f"{step_seconds:g}"
            )
        )
        return parse_range_result(result)

    def _call(self, request: Callable[[], object]) -> object:
        """Send one request and sort its failure into the two kinds of error."""
        try:
            return request()
        except PrometheusApiClientException as error:
            raise _classify_status(str(error)) from None
        except requests.exceptions.ReadTimeout:
            raise QueryFailed(
                f"the query timed out after {self.timeout_seconds:g}s"
            ) from None
        except requests.exceptions.JSONDecodeError:
            raise DataSourceUnavailable(
                "Prometheus answered with something that is not JSON (an HTML "
                "page from a proxy?); check BASTION_PROMETHEUS_URL"
            ) from None
        except requests.exceptions.RequestException as error:
            raise DataSourceUnavailable(
                f"cannot reach Prometheus at {self.url}: {type(error).__name__}"
            ) from None
        except (KeyError, TypeError) as error:
            raise DataSourceUnavailable(
                f"Prometheus answered without data.result ({error!r})"
            ) from None
