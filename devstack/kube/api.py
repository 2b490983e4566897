"""The Kubernetes REST API of the stand-in, without the HTTP plumbing.

Paths, verbs, content types and error bodies follow kube-apiserver for the
resources in ``store.RESOURCE_TYPES``, the ``scale`` and ``status``
subresources of Deployments, namespaces (every name exists) and discovery.
"""

import json
import re
from dataclasses import dataclass, field
from typing import Any

from devstack.kube.patches import (
    PATCH_CONTENT_TYPES,
    PatchApplyError,
    PatchFormatError,
    apply_patch,
)
from devstack.kube.replicasets import desired_replicas, sync_replica_sets
from devstack.kube.selectors import (
    SelectorError,
    format_match_labels,
    parse_field_selector,
    parse_label_selector,
)
from devstack.kube.store import (
    DEPLOYMENTS,
    PODS,
    RESOURCE_TYPES,
    ApiError,
    ResourceType,
    Store,
    conflict,
    now_timestamp,
    resource_details,
)
from devstack.kube.validation import invalid, replicas_problems

ROUTE = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<namespace>[^/]+))?"
    r"/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<subresource>[^/]+))?$"
)
SERVER_VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-bastion-standin",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.22.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
VERBS = ["create", "delete", "get", "list", "patch", "update"]


@dataclass
class ApiRequest:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    content_type: str = ""
    body: bytes = b""
    authorization: str = ""

    @property
    def media_type(self) -> str:
        return self.content_type.split(";")[0].strip().lower()

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun") == "All"

    def json(self) -> Any:
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except json.JSONDecodeError as error:
            raise ApiError(
                400, f"the request body is not valid JSON: {error}"
            ) from error


@dataclass
class ApiResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Route:
    resource: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def unknown_path() -> ApiError:
    return ApiError(404, "the server could not find the requested resource")


def method_not_allowed(request: ApiRequest) -> ApiError:
    return ApiError(
        405,
        "the server does not allow this method on the requested resource: "
        f"{request.method} {request.path}",
    )


class KubeApi:
    """Serve one request against the store; errors become ``Status`` bodies."""

    def __init__(self, store: Store, server_address: str) -> None:
        self.store = store
        self.server_address = server_address

    def handle(self, request: ApiRequest) -> ApiResponse:
        try:
            return self.dispatch(request)
        except ApiError as error:
            return ApiResponse(error.code, error.status())

    def dispatch(self, request: ApiRequest) -> ApiResponse:
        document = self.discovery(request.path)
        if document is not None:
            if request.method != "GET":
                raise method_not_allowed(request)
            return ApiResponse(200, document)
        if request.query.get("watch") in ("true", "1"):
            # NOTE: watches are not served; a client that needs one fails here.
            raise ApiError(
                400, "watch is not supported by the stand-in: poll with list or get"
            )
        match = ROUTE.match(request.path)
        if match is None:
            raise unknown_path()
        if match["core"] and match["plural"] == "namespaces" and not match["namespace"]:
            return self.namespaces(request, match["name"])
        route = Route(
            find_resource(
                match["group"] or "", match["version"] or "v1", match["plural"]
            ),
            match["namespace"],
            match["name"],
            match["subresource"],
        )
        if route.name is None:
            return self.collection(request, route)
        if route.namespace is None:
            raise unknown_path()
        if route.subresource is None:
            return self.item(request, route)
        return self.subresource(request, route)

    def collection(self, request: ApiRequest, route: Route) -> ApiResponse:
        if request.method == "GET":
            return ApiResponse(200, self.list_objects(request, route))
        if request.method == "POST" and route.namespace is not None:
            body = request_object(request)
            created = self.store.create(
                route.resource, route.namespace, body, request.dry_run
            )
            return ApiResponse(
                201, self.after_write(route.resource, created, request.dry_run)
            )
        raise method_not_allowed(request)

    def list_objects(self, request: ApiRequest, route: Route) -> dict[str, Any]:
        try:
            selector = parse_label_selector(request.query.get("labelSelector", ""))
            fields = parse_field_selector(request.query.get("fieldSelector", ""))
        except SelectorError as error:
            raise ApiError(400, f"invalid selector: {error}") from error
        # NOTE: limit and continue are ignored, so every list is one page.
        items = self.store.list_objects(
            route.resource, route.namespace, selector, fields
        )
        return {
            "kind": f"{route.resource.kind}List",
            "apiVersion": route.resource.api_version,
            "metadata": {"resourceVersion": self.store.resource_version},
            "items": items,
        }

    def item(self, request: ApiRequest, route: Route) -> ApiResponse:
        resource, namespace, name = (
            route.resource,
            route.namespace or "",
            route.name or "",
        )
        if request.method == "GET":
            return ApiResponse(200, self.store.get(resource, namespace, name))
        if request.method == "PUT":
            body = request_object(request)
            stored = self.store.update(resource, namespace, name, body, request.dry_run)
            return ApiResponse(200, self.after_write(resource, stored, request.dry_run))
        if request.method == "PATCH":
            return ApiResponse(200, self.patch(request, route))
        if request.method == "DELETE":
            return ApiResponse(200, self.delete(request, route))
        raise method_not_allowed(request)

    def patch(self, request: ApiRequest, route: Route) -> dict[str, Any]:
        media_type = patch_media_type(request)
        document = request.json()
        resource, namespace, name = (
            route.resource,
            route.namespace or "",
            route.name or "",
        )
        # Reading and writing under one lock keeps the patch from racing
        # the controller into a conflict that kube-apiserver retries away.
        with self.store.lock:
            current = self.store.get(resource, namespace, name)
            patched = patch_or_raise(current, document, media_type)
            stored = self.store.update(
                resource, namespace, name, patched, request.dry_run
            )
            return self.after_write(resource, stored, request.dry_run)

    def delete(self, request: ApiRequest, route: Route) -> dict[str, Any]:
        options = request.json() or {}
        if not isinstance(options, dict):
            raise ApiError(400, "DeleteOptions in the request body must be an object")
        resource, namespace, name = (
            route.resource,
            route.namespace or "",
            route.name or "",
        )
        deleted = self.store.delete(
            resource, namespace, name, options.get("preconditions"), request.dry_run
        )
        if resource is PODS:
            # The response shows the pod terminating, as kube-apiserver does
            # during the grace period, but the stand-in removes it at once.
            deleted["metadata"]["deletionTimestamp"] = now_timestamp()
            deleted["metadata"]["deletionGracePeriodSeconds"] = 30
            return deleted
        details = resource_details(resource, name)
        details["uid"] = deleted["metadata"]["uid"]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }

    def subresource(self, request: ApiRequest, route: Route) -> ApiResponse:
        namespace, name = route.namespace or "", route.name or ""
        if route.resource is not DEPLOYMENTS or route.subresource not in (
            "scale",
            "status",
        ):
            raise unknown_path()
        if route.subresource == "status":
            if request.method != "GET":
                raise method_not_allowed(request)
            return ApiResponse(200, self.store.get(DEPLOYMENTS, namespace, name))
        if request.method == "GET":
            return ApiResponse(
                200, scale_of(self.store.get(DEPLOYMENTS, namespace, name))
            )
        if request.method == "PUT":
            return ApiResponse(
                200,
                self.write_scale(
                    namespace, name, request_object(request), request.dry_run
                ),
            )
        if request.method == "PATCH":
            media_type = patch_media_type(request)
            document = request.json()
            with self.store.lock:
                scale = scale_of(self.store.get(DEPLOYMENTS, namespace, name))
                patched = patch_or_raise(scale, document, media_type)
                return ApiResponse(
                    200, self.write_scale(namespace, name, patched, request.dry_run)
                )
        raise method_not_allowed(request)

    def write_scale(
        self, namespace: str, name: str, scale: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        """Set a Deployment's replicas from an autoscaling/v1 Scale."""
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        problems = replicas_problems(replicas, "spec.replicas")
        if problems:
            raise invalid(SCALE, name, problems)
        with self.store.lock:
            deployment = self.store.get(DEPLOYMENTS, namespace, name)
            expected_version = (scale.get("metadata") or {}).get("resourceVersion")
            if (
                expected_version
                and expected_version != deployment["metadata"]["resourceVersion"]
            ):
                raise conflict(DEPLOYMENTS, name)
            deployment["spec"]["replicas"] = replicas
            stored = self.store.update(
                DEPLOYMENTS, namespace, name, deployment, dry_run
            )
            return scale_of(self.after_write(DEPLOYMENTS, stored, dry_run))

    def after_write(
        self, resource: ResourceType, stored: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        """Let the deployment controller see a Deployment write at once."""
        if resource is not DEPLOYMENTS or dry_run:
            return stored
        deployment, _ = sync_replica_sets(self.store, stored)
        return deployment

    def namespaces(self, request: ApiRequest, name: str | None) -> ApiResponse:
        # Every namespace exists, so creating one only echoes it back.
        if name is None and request.method == "POST":
            body = request_object(request)
            return ApiResponse(
                201, namespace_object(body.get("metadata", {}).get("name", ""))
            )
        if request.method != "GET":
            raise method_not_allowed(request)
        if name is not None:
            return ApiResponse(200, namespace_object(name))
        items = [namespace_object(namespace) for namespace in self.store.namespaces()]
        body = {
            "kind": "NamespaceList",
            "apiVersion": "v1",
            "metadata": {},
            "items": items,
        }
        return ApiResponse(200, body)

    def discovery(self, path: str) -> dict[str, Any] | None:
        """Return the discovery document at ``path``, or None for other paths."""
        path = path.rstrip("/") or "/"
        if path == "/version":
            return dict(SERVER_VERSION)
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server_address}
                ],
            }
        groups = group_versions()
        if path == "/apis":
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    api_group(group, versions)
                    for group, versions in groups.items()
                    if group
                ],
            }
        for group, versions in groups.items():
            if group and path == f"/apis/{group}":
                return api_group(group, versions)
            for version in versions:
                prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
                if path == prefix:
                    return resource_list(group, version)
        return None


SCALE = ResourceType(
    "autoscaling", "v1", "scale", "Scale", "scale", has_generation=False
)


def find_resource(group: str, version: str, plural: str) -> ResourceType:
    for resource in RESOURCE_TYPES:
        if (resource.group, resource.version, resource.plural) == (
            group,
            version,
            plural,
        ):
            return resource
    raise unknown_path()


def request_object(request: ApiRequest) -> dict[str, Any]:
    if request.media_type not in ("application/json", ""):
        raise ApiError(
            415,
            f"the body of the request was in an unknown format ({request.media_type}) "
            "- the stand-in accepts application/json",
        )
    body = request.json()
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def patch_media_type(request: ApiRequest) -> str:
    if request.media_type not in PATCH_CONTENT_TYPES:
        raise ApiError(
            415,
            "the body of the request was in an unknown format "
            f"({request.media_type or 'no Content-Type'}) "
            f"- accepted media types include: {', '.join(PATCH_CONTENT_TYPES)}",
        )
    return request.media_type


def patch_or_raise(
    target: dict[str, Any], document: Any, media_type: str
) -> dict[str, Any]:
    try:
        patched = apply_patch(target, document, media_type)
    except PatchFormatError as error:
        raise ApiError(400, f"invalid {media_type} body: {error}") from error
    except PatchApplyError as error:
        raise ApiError(422, str(error)) from error
    if not isinstance(patched, dict):
        raise ApiError(422, "the patch replaced the whole object with a non-object")
    return patched


def scale_of(deployment: dict[str, Any]) -> dict[str, Any]:
    """Build the autoscaling/v1 Scale that the scale subresource serves."""
    metadata = deployment["metadata"]
    match_labels = deployment["spec"]["selector"].get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            field_name: metadata[field_name]
            for field_name in (
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "creationTimestamp",
            )
            if field_name in metadata
        },
        "spec": {"replicas": desired_replicas(deployment)},
        "status": {
            "replicas": (deployment.get("status") or {}).get("replicas", 0),
            "selector": format_match_labels(match_labels),
        },
    }


def namespace_object(name: str) -> dict[str, Any]:
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def group_versions() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for resource in RESOURCE_TYPES:
        versions = groups.setdefault(resource.group, [])
        if resource.version not in versions:
            versions.append(resource.version)
    return groups


def api_group(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [
        {"groupVersion": f"{group}/{version}", "version": version}
        for version in versions
    ]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def resource_list(group: str, version: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for resource in RESOURCE_TYPES:
        if (resource.group, resource.version) != (group, version):
            continue
        resources.append(
            {
                "name": resource.plural,
                "singularName": resource.singular,
                "namespaced": True,
                "kind": resource.kind,
                "verbs": VERBS,
            }
        )
        if resource is DEPLOYMENTS:
            resources += [
                {
                    "name": "deployments/scale",
                    "singularName": "",
                    "namespaced": True,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                },
                {
                    "name": "deployments/status",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "Deployment",
                    "verbs": ["get"],
                },
            ]
    if group == "" and version == "v1":
        resources.append(
            {
                "name": "namespaces",
                "singularName": "namespace",
                "namespaced": False,
                "kind": "Namespace",
                "verbs": ["create", "get", "list"],
            }
        )
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }
