"""Objects of the stand-in cluster, with the API server's write rules.

The store keeps every object as the JSON dict the API returns. It stamps
metadata (uid, creationTimestamp, resourceVersion, generation), checks
resourceVersion preconditions and keeps the status of resources that have a
status subresource out of reach of writes to the main resource.
"""

import copy
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devstack.kube.selectors import LabelSelector


@dataclass(frozen=True)
class ResourceType:
    """One kind of object the stand-in serves, as it appears in API paths."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    has_status: bool = True
    has_generation: bool = True
    # Status fields that the API sends even when zero (no omitempty in k8s.io/api).
    initial_status: tuple[tuple[str, int], ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified_name(self) -> str:
        """The name used in API messages, such as ``deployments.apps``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


DEPLOYMENTS = ResourceType("apps", "v1", "deployments", "Deployment", "deployment")
REPLICA_SETS = ResourceType(
    "apps",
    "v1",
    "replicasets",
    "ReplicaSet",
    "replicaset",
    initial_status=(("replicas", 0),),
)
PODS = ResourceType("", "v1", "pods", "Pod", "pod", has_generation=False)
CONFIG_MAPS = ResourceType(
    "", "v1", "configmaps", "ConfigMap", "configmap", False, False
)
HORIZONTAL_POD_AUTOSCALERS = ResourceType(
    "autoscaling",
    "v2",
    "horizontalpodautoscalers",
    "HorizontalPodAutoscaler",
    "horizontalpodautoscaler",
    initial_status=(("currentReplicas", 0), ("desiredReplicas", 0)),
)
RESOURCE_TYPES = (
    DEPLOYMENTS,
    REPLICA_SETS,
    PODS,
    CONFIG_MAPS,
    HORIZONTAL_POD_AUTOSCALERS,
)
RESOURCE_TYPES_BY_KIND = {resource.kind: resource for resource in RESOURCE_TYPES}

# Real clusters always have these, and clients may read them.
BUILT_IN_NAMESPACES = ("default", "kube-public", "kube-system")

HTTP_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """A failed request, sent to the client as a ``Status`` object."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or HTTP_REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def resource_details(resource: ResourceType, name: str) -> dict[str, Any]:
    details = {"name": name, "kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    return details


def not_found(resource: ResourceType, name: str) -> ApiError:
    return ApiError(
        404,
        f'{resource.qualified_name} "{name}" not found',
        details=resource_details(resource, name),
    )


def conflict(resource: ResourceType, name: str) -> ApiError:
    # The same words as kube-apiserver, which clients sometimes match on.
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {resource.qualified_name} "{name}": '
        "the object has been modified; please apply your changes to the latest "
        "version and try again",
        details=resource_details(resource, name),
    )


def already_exists(resource: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        f'{resource.qualified_name} "{name}" already exists',
        reason="AlreadyExists",
        details=resource_details(resource, name),
    )


def now_timestamp() -> str:
    """Return the current time as the RFC 3339 text Kubernetes uses."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Key = tuple[str, str, str]
Validator = Callable[[ResourceType, dict[str, Any], dict[str, Any] | None], None]


class Store:
    """Every object of the cluster, keyed by (plural, namespace, name).

    One re-entrant lock guards all objects, so a caller that holds
    ``store.lock`` can read, change and write without another writer between.
    """

    def __init__(self, admit: Validator | None = None) -> None:
        """``admit`` fills defaults into a new object, then validates it."""
        self.lock = threading.RLock()
        self._objects: dict[Key, dict[str, Any]] = {}
        self._resource_version = 0
        self._validate = admit or (lambda resource, new, old: None)
        # Set on every write, so the controller wakes without polling.
        self.changed = threading.Event()

    @property
    def resource_version(self) -> str:
        return str(self._resource_version)

    def get(self, resource: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            found = self._objects.get((resource.plural, namespace, name))
            if found is None:
                raise not_found(resource, name)
            return copy.deepcopy(found)

    def find(
        self, resource: ResourceType, namespace: str, name: str
    ) -> dict[str, Any] | None:
        try:
            return self.get(resource, namespace, name)
        except ApiError:
            return None

    def list_objects(
        self,
        resource: ResourceType,
        namespace: str | None = None,
        selector: LabelSelector | None = None,
        fields: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        with self.lock:
            items = [
                copy.deepcopy(obj)
                for (plural, obj_namespace, _), obj in sorted(self._objects.items())
                if plural == resource.plural
                and namespace in (None, obj_namespace)
                and (selector is None or selector.matches(labels_of(obj)))
                and matches_fields(obj, fields or {})
            ]
        return items

    def namespaces(self) -> list[str]:
        with self.lock:
            used = {namespace for _, namespace, _ in self._objects}
        return sorted(used | set(BUILT_IN_NAMESPACES))

    def create(
        self,
        resource: ResourceType,
        namespace: str,
        body: dict[str, Any],
        dry_run: bool = False,
        keep_status: bool = False,
    ) -> dict[str, Any]:
        """Add a new object; ``keep_status`` is for the controller's own pods."""
        new = normalize(resource, namespace, body)
        metadata = new["metadata"]
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
        self._validate(resource, new, None)
        name = metadata["name"]
        with self.lock:
            if (resource.plural, namespace, name) in self._objects:
                raise already_exists(resource, name)
            metadata.pop("resourceVersion", None)
            metadata["uid"] = str(uuid.uuid4())
            metadata["creationTimestamp"] = now_timestamp()
            if resource.has_generation:
                metadata["generation"] = 1
            if resource.has_status and not keep_status:
                new["status"] = dict(resource.initial_status)
            if not dry_run:
                self._commit(resource, new)
            return copy.deepcopy(new)

    def update(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        body: dict[str, Any],
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Replace the object's metadata and spec, as PUT does.

        A resourceVersion in ``body`` is a precondition: a different current
        version raises 409 Conflict. Status is kept from the stored object.
        """
        with self.lock:
            current = self.get(resource, namespace, name)
            new = normalize(resource, namespace, body)
            check_name(new, name)
            expected_version = new["metadata"].get("resourceVersion")
            if expected_version and expected_version != current["metadata"].get(
                "resourceVersion"
            ):
                raise conflict(resource, name)
            # Defaults come first, so that a spec sent without them does not
            # count as a change of generation.
            self._validate(resource, new, current)
            carry_server_fields(resource, current, new)
            if new == current or dry_run:
                return copy.deepcopy(new)
            self._commit(resource, new)
            return copy.deepcopy(new)

    def write_status(
        self, resource: ResourceType, obj: dict[str, Any], status: dict[str, Any]
    ) -> bool:
        """Store a new status for ``obj``; return False when nothing changed."""
        metadata = obj["metadata"]
        with self.lock:
            key = (resource.plural, metadata["namespace"], metadata["name"])
            current = self._objects.get(key)
            if current is None or current.get("status") == status:
                return False
            current["status"] = copy.deepcopy(status)
            self._commit(resource, current)
            return True

    def write(self, resource: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` as it is, for the controller's changes of metadata."""
        with self.lock:
            metadata = obj["metadata"]
            key = (resource.plural, metadata["namespace"], metadata["name"])
            if self._objects.get(key) == obj:
                return copy.deepcopy(obj)
            stored = copy.deepcopy(obj)
            self._commit(resource, stored)
            return copy.deepcopy(stored)

    def delete(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        with self.lock:
            current = self.get(resource, namespace, name)
            check_preconditions(resource, current, preconditions or {})
            if not dry_run:
                del self._objects[(resource.plural, namespace, name)]
                self._resource_version += 1
                self.changed.set()
            return current

    def clear(self) -> None:
        with self.lock:
            self._objects.clear()

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        return {
            resource.plural: self.list_objects(resource) for resource in RESOURCE_TYPES
        }

    def _commit(self, resource: ResourceType, obj: dict[str, Any]) -> None:
        self._resource_version += 1
        metadata = obj["metadata"]
        metadata["resourceVersion"] = str(self._resource_version)
        self._objects[(resource.plural, metadata["namespace"], metadata["name"])] = obj
        self.changed.set()


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def matches_fields(obj: dict[str, Any], fields: dict[str, str]) -> bool:
    for path, expected in fields.items():
        value: Any = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if str(value) != expected:
            return False
    return True


def normalize(
    resource: ResourceType, namespace: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Copy ``body`` with kind, apiVersion and namespace filled from the URL."""
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body for a {resource.kind} must be an object")
    new = copy.deepcopy(body)
    for field, expected in (
        ("kind", resource.kind),
        ("apiVersion", resource.api_version),
    ):
        if new.get(field) not in (None, "", expected):
            raise ApiError(
                400,
                f"{field} {new[field]!r} does not match the URL: expected {expected!r}",
            )
        new[field] = expected
    metadata = new.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise ApiError(400, "metadata must be an object")
    if metadata.get("namespace") not in (None, "", namespace):
        raise ApiError(
            400,
            "the namespace of the provided object does not match the namespace "
            f"sent on the request: {metadata['namespace']!r} is not {namespace!r}",
        )
    metadata["namespace"] = namespace
    return new


def check_name(new: dict[str, Any], name: str) -> None:
    body_name = new["metadata"].get("name")
    if body_name != name:
        raise ApiError(
            400,
            f"the name of the object ({body_name}) does not match the name on "
            f"the URL ({name})",
        )


def carry_server_fields(
    resource: ResourceType, current: dict[str, Any], new: dict[str, Any]
) -> None:
    """Keep what the server owns and count a spec change in ``generation``."""
    old_metadata, metadata = current["metadata"], new["metadata"]
    for field in ("uid", "creationTimestamp", "resourceVersion"):
        metadata[field] = old_metadata.get(field)
    if "deletionTimestamp" in old_metadata:
        metadata["deletionTimestamp"] = old_metadata["deletionTimestamp"]
    if resource.has_generation:
        generation = int(old_metadata.get("generation", 1))
        spec_changed = new.get("spec") != current.get("spec")
        metadata["generation"] = generation + 1 if spec_changed else generation
    if resource.has_status:
        new["status"] = copy.deepcopy(current.get("status", {}))


def check_preconditions(
    resource: ResourceType, current: dict[str, Any], preconditions: dict[str, Any]
) -> None:
    metadata = current["metadata"]
    for field in ("uid", "resourceVersion"):
        expected = preconditions.get(field)
        if expected and expected != metadata.get(field):
            raise conflict(resource, metadata["name"])
