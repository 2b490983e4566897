"""Actions that call an HTTP endpoint: a service's admin API, dependency health.

The endpoints come from the site defaults (BASTION_ACTION_DEFAULTS_FILE),
since the operations team's catalog names only actions. A credential is
given as a reference (``env:NAME`` or ``file:/path``), read at run time, and
neither stored, logged nor put in the output.
"""

import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mitigations.actions.base import (
    Action,
    ActionContext,
    ActionError,
    Parameter,
    ParameterError,
    PermanentError,
    expand_labels,
)
from mitigations.choices import Risk
from mitigations.registry import register
from mitigations.services.clients import http_request, read_credential, safe_url

logger = logging.getLogger(__name__)

MAX_BODY_CHARS = 2048
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Passed as expect_status, so http_request returns every response and the
# health check judges the status itself.
ANY_STATUS = range(100, 600)


@dataclass(frozen=True)
class StatusListParameter(Parameter):
    """A list of HTTP status codes, such as [200, 202]."""

    def convert(self, value: Any) -> Any:
        values = value if isinstance(value, list) else [value]
        statuses = []
        for item in values:
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise ParameterError(self.name, f"{item!r} is not an HTTP status")
            try:
                status = int(item)
            except ValueError:
                raise ParameterError(
                    self.name, f"{item!r} is not an HTTP status"
                ) from None
            if status not in ANY_STATUS:
                raise ParameterError(self.name, f"{status} is not between 100 and 599")
            statuses.append(status)
        return statuses


@dataclass(frozen=True)
class UrlListParameter(Parameter):
    """A list of http:// or https:// URLs."""

    def convert(self, value: Any) -> Any:
        urls = Parameter(self.name, kind="string_list").convert(value)
        if not urls:
            raise ParameterError(self.name, "the list is empty: give at least one URL")
        url = Parameter(self.name, kind="url")
        return [url.convert(item) for item in urls]


def _expand_body(value: Any, labels: Mapping[str, str], field: str) -> Any:
    """Fill ``{label}`` in every string of a mapping, at any depth."""
    if isinstance(value, dict):
        return {key: _expand_body(item, labels, field) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand_body(item, labels, field) for item in value]
    return expand_labels(value, labels, field)


def _credential_headers(params: Mapping[str, Any]) -> dict[str, str]:
    if not params.get("credential"):
        return {}
    secret = read_credential(params["credential"])
    header = params["credential_header"]
    if header.lower() == "authorization":
        return {header: f"Bearer {secret}"}
    return {header: secret}


class ServiceCall(Action):
    """Call the configured endpoint of the service or tool that owns the change."""

    risk = Risk.DISRUPTIVE
    description = (
        "Send one HTTP request to the endpoint configured for this action and "
        "check its status."
    )
    parameters = (
        Parameter("url", kind="url", help="The endpoint to call."),
        Parameter("method", default="POST", help="HTTP method: " + ", ".join(METHODS)),
        Parameter(
            "json",
            kind="mapping",
            required=False,
            help="JSON body. Its strings may name incident labels, such as {service}.",
        ),
        Parameter(
            "headers",
            kind="mapping",
            required=False,
            help="Extra request headers. Put a secret in 'credential' instead.",
        ),
        Parameter(
            "credential",
            required=False,
            help="Secret sent with the request: env:NAME or file:/path.",
        ),
        Parameter(
            "credential_header",
            default="Authorization",
            help="Header that carries the credential, after 'Bearer ' for "
            "Authorization.",
        ),
        Parameter(
            "timeout_seconds",
            kind="number",
            default=10.0,
            minimum=0.1,
            help="Timeout of each try, in seconds.",
        ),
        StatusListParameter(
            "expect_status",
            kind="integer_list",
            required=False,
            help="Statuses that count as success. Default: any 2xx.",
        ),
    )

    def clean(
        self,
        values: Mapping[str, Any],
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        cleaned = super().clean(values, labels)
        if "method" in cleaned:
            cleaned["method"] = cleaned["method"].upper()
            if cleaned["method"] not in METHODS:
                raise ParameterError(
                    "method", f"{values['method']!r} is not one of {list(METHODS)}"
                )
        headers = cleaned.get("headers", {})
        for name, value in headers.items():
            if name.lower() in ("authorization", "cookie", "proxy-authorization"):
                raise ParameterError(
                    "headers",
                    f"the {name} header would be stored in clear: put a reference "
                    "to the secret in 'credential' instead",
                )
            if not isinstance(value, str):
                raise ParameterError("headers", f"the value of {name} is not a string")
        if labels is not None:
            # Expanded here, so a missing label fails as an invalid parameter.
            for name in ("json", "headers"):
                if name in cleaned:
                    cleaned[name] = _expand_body(cleaned[name], labels, name)
        return cleaned

    def target(self, params: Mapping[str, Any]) -> str:
        return f"endpoint {safe_url(params['url'])}" if params.get("url") else ""

    def _request(self, context: ActionContext) -> dict[str, Any]:
        params = context.params
        request: dict[str, Any] = {
            "headers": dict(params.get("headers", {})),
        }
        if params.get("json") is not None:
            request["json"] = params["json"]
        return request

    def dry_run(self, context: ActionContext) -> dict[str, Any]:
        request = self._request(context)
        return {
            "would_send": context.params["method"],
            "url": safe_url(context.params["url"]),
            "json": request.get("json"),
            "headers": sorted(request["headers"]),
            "with_credential": bool(context.params.get("credential")),
            "expect_status": context.params.get("expect_status", "any 2xx"),
        }

    def run(self, context: ActionContext) -> dict[str, Any]:
        params = context.params
        request = self._request(context)
        request["headers"].update(_credential_headers(params))
        expected = params.get("expect_status")
        started = time.monotonic()
        response = http_request(
            params["method"],
            params["url"],
            timeout_seconds=max(0.1, min(params["timeout_seconds"], _left(context))),
            expect_status=expected or (),
            **request,
        )
        duration = round(time.monotonic() - started, 3)
        if expected and response.status_code not in expected:
            raise PermanentError(
                f"{params['method']} {safe_url(params['url'])} returned HTTP "
                f"{response.status_code}, expected one of {expected}"
            )
        logger.info(
            "%s: %s %s returned HTTP %s in %.3fs for incident %s",
            self.name,
            params["method"],
            safe_url(params["url"]),
            response.status_code,
            duration,
            context.incident_id,
        )
        return {
            "status": response.status_code,
            "body": response.text[:MAX_BODY_CHARS],
            "body_truncated": len(response.text) > MAX_BODY_CHARS,
            "duration_seconds": duration,
        }


def _left(context: ActionContext) -> float:
    return context.remaining_seconds() or 0.1


register(
    "disable_feature_flags",
    "garbage_collection_force",
    "activate_enhanced_waf",
    "forensic_logging",
    "automated_cert_renewal",
    "connection_pool_optimization",
    # Database instances are scaled by the platform that runs them (a managed
    # database's API, an operator's endpoint); the site defaults give its URL.
    "scale_db_instances",
)(ServiceCall)


@register("cert_validation", "backup_cert_check")
class ServiceCheck(ServiceCall):
    """A call that only reads, such as asking certificate tooling for a report."""

    risk = Risk.SAFE


@register("health_check_dependencies")
class HealthCheck(Action):
    risk = Risk.SAFE
    description = (
        "GET each dependency's health URL at once and attach status and latency."
    )
    parameters = (
        UrlListParameter(
            "urls", kind="url_list", help="Health URLs of the dependencies."
        ),
        Parameter(
            "timeout_seconds",
            kind="number",
            default=3.0,
            minimum=0.1,
            help="Timeout of each check, in seconds.",
        ),
        Parameter(
            "fail_when_unhealthy",
            kind="boolean",
            default=True,
            help="Fail the step when a dependency is unhealthy. The failure "
            "message lists the results in short. When false the step "
            "succeeds and its output holds the results.",
        ),
    )

    def target(self, params: Mapping[str, Any]) -> str:
        return f"{len(params.get('urls', []))} dependency health URLs"

    def dry_run(self, context: ActionContext) -> dict[str, Any]:
        return {"would_get": [safe_url(url) for url in context.params["urls"]]}

    def run(self, context: ActionContext) -> dict[str, Any]:
        urls = context.params["urls"]
        timeout = max(0.1, min(context.params["timeout_seconds"], _left(context)))
        with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
            results = list(pool.map(lambda url: _check_health(url, timeout), urls))
        unhealthy = [result for result in results if not result["healthy"]]
        logger.info(
            "health_check_dependencies for incident %s: %s of %s healthy",
            context.incident_id,
            len(results) - len(unhealthy),
            len(results),
        )
        if unhealthy and context.params["fail_when_unhealthy"]:
            # A failed step keeps no output, so the message carries the results.
            summary = "; ".join(
                f"{result['url']} {result.get('error') or result['status']}"
                for result in unhealthy
            )
            raise PermanentError(
                f"{len(unhealthy)} of {len(results)} dependencies are unhealthy: "
                f"{summary}"[:1000]
            )
        return {"healthy": not unhealthy, "results": results}


def _check_health(url: str, timeout_seconds: float) -> dict[str, Any]:
    started = time.monotonic()
    result: dict[str, Any] = {"url": safe_url(url)}
    try:
        response = http_request(
            "GET",
            url,
            timeout_seconds=timeout_seconds,
            retries=0,
            expect_status=ANY_STATUS,
        )
    except ActionError as error:
        result.update(healthy=False, status=None, error=str(error))
    else:
        result.update(
            healthy=response.is_success,
            status=response.status_code,
            error="" if response.is_success else f"HTTP {response.status_code}",
        )
    result["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result
