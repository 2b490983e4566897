"""The three patch formats of the Kubernetes API, applied to JSON dicts.

JSON merge patch follows RFC 7386 and JSON patch follows RFC 6902. Strategic
merge patch follows Kubernetes' rules for the fields the stand-in serves.
Lists named in ``MERGE_KEYS`` merge item by item on that key, and other lists
are replaced. The ``$patch`` directive can replace a map or a list, or delete
a list item.
"""

import copy
from typing import Any

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
PATCH_CONTENT_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

# The patchMergeKey of each list field in the Kubernetes API types that the
# stand-in serves. Container ports merge on containerPort, as in k8s.io/api.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "conditions": "type",
}


class PatchFormatError(ValueError):
    """The patch document itself is malformed (HTTP 400)."""


class PatchApplyError(ValueError):
    """The patch is well formed but cannot apply to this object (HTTP 422)."""


def apply_patch(target: dict[str, Any], patch: Any, content_type: str) -> Any:
    """Return a patched copy of ``target``; ``target`` is left unchanged."""
    if content_type == JSON_PATCH:
        return apply_json_patch(target, patch)
    if not isinstance(patch, dict):
        raise PatchFormatError(
            f"a {content_type} body must be a JSON object, not {type(patch).__name__}"
        )
    if content_type == MERGE_PATCH:
        return apply_merge_patch(target, patch)
    return apply_strategic_merge_patch(target, patch)


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch: null deletes, objects merge."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def apply_strategic_merge_patch(target: Any, patch: dict[str, Any]) -> Any:
    """Merge ``patch`` into ``target`` with Kubernetes' strategic rules."""
    directive = patch.get("$patch")
    if directive == "replace":
        return strip_directives(patch)
    if directive not in (None, "merge"):
        raise PatchApplyError(f"$patch {directive!r} is not valid for a map here")
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        merge_field(result, key, value)
    return result


def merge_field(result: dict[str, Any], key: str, value: Any) -> None:
    if key == "$patch" or key == "$retainKeys" or key.startswith("$setElementOrder/"):
        # NOTE: element order and retainKeys are not applied, so lists keep
        # the stored order and unmentioned keys stay, unlike kube-apiserver.
        return
    if key.startswith("$deleteFromPrimitiveList/"):
        field = key.split("/", 1)[1]
        result[field] = [item for item in result.get(field) or [] if item not in value]
        return
    if value is None:
        result.pop(key, None)
        return
    if isinstance(value, dict):
        if value.get("$patch") == "delete":
            result.pop(key, None)
        else:
            result[key] = apply_strategic_merge_patch(result.get(key), value)
        return
    if isinstance(value, list) and key in MERGE_KEYS:
        result[key] = merge_list(result.get(key) or [], value, MERGE_KEYS[key])
        return
    result[key] = copy.deepcopy(value)


def merge_list(current: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    """Merge list items that share ``merge_key``; append the new ones."""
    if {"$patch": "replace"} in patch:
        return [
            strip_directives(item) for item in patch if item != {"$patch": "replace"}
        ]
    result = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise PatchApplyError(
                f"list item {item!r} does not contain declared merge key: {merge_key}"
            )
        position = next(
            (
                i
                for i, old in enumerate(result)
                if old.get(merge_key) == item[merge_key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                del result[position]
        elif position is None:
            result.append(strip_directives(item))
        else:
            result[position] = apply_strategic_merge_patch(result[position], item)
    return result


def strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: strip_directives(item)
            for key, item in value.items()
            if not key.startswith("$")
        }
    if isinstance(value, list):
        return [strip_directives(item) for item in value]
    return copy.deepcopy(value)


def apply_json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch: a list of add/remove/replace/... steps."""
    if not isinstance(operations, list):
        raise PatchFormatError("a JSON patch must be a JSON array of operations")
    document = copy.deepcopy(target)
    for operation in operations:
        document = apply_operation(document, operation)
    return document


def apply_operation(document: Any, operation: Any) -> Any:
    if not isinstance(operation, dict) or "op" not in operation:
        raise PatchFormatError(f"JSON patch operation {operation!r} has no 'op'")
    op = operation["op"]
    path = parse_pointer(required_member(operation, "path"))
    if op == "add":
        return add_value(
            document, path, copy.deepcopy(required_member(operation, "value"))
        )
    if op == "remove":
        return remove_value(document, path)
    if op == "replace":
        document = remove_value(document, path)
        return add_value(
            document, path, copy.deepcopy(required_member(operation, "value"))
        )
    if op in ("move", "copy"):
        source = parse_pointer(required_member(operation, "from"))
        value = copy.deepcopy(read_value(document, source))
        if op == "move":
            if path[: len(source)] == source and path != source:
                raise PatchApplyError(
                    f"cannot move {operation['from']!r} into its own child "
                    f"{operation['path']!r}"
                )
            document = remove_value(document, source)
        return add_value(document, path, value)
    if op == "test":
        expected = required_member(operation, "value")
        if not json_equal(read_value(document, path), expected):
            raise PatchApplyError(
                f"test operation failed: the value at {operation['path']!r} is not "
                f"{expected!r}"
            )
        return document
    raise PatchFormatError(f"unknown JSON patch operation {op!r}")


def required_member(operation: dict[str, Any], member: str) -> Any:
    if member not in operation:
        raise PatchFormatError(
            f"JSON patch operation {operation.get('op')!r} is missing {member!r}"
        )
    return operation[member]


def parse_pointer(pointer: Any) -> list[str]:
    """Split an RFC 6901 JSON pointer into its unescaped reference tokens."""
    if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
        raise PatchFormatError(
            f"invalid JSON pointer {pointer!r}: it must start with '/'"
        )
    if pointer == "":
        return []
    return [
        token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")
    ]


def read_value(document: Any, path: list[str]) -> Any:
    value = document
    for depth, token in enumerate(path):
        value = child(value, token, path[: depth + 1])
    return value


def child(container: Any, token: str, path: list[str]) -> Any:
    if isinstance(container, dict) and token in container:
        return container[token]
    if isinstance(container, list):
        return container[list_index(container, token, path, allow_end=False)]
    raise PatchApplyError(f"path {format_pointer(path)!r} does not exist")


def add_value(document: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = read_value(document, path[:-1])
    token = path[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(list_index(parent, token, path, allow_end=True), value)
    else:
        raise PatchApplyError(f"path {format_pointer(path[:-1])!r} is not a container")
    return document


def remove_value(document: Any, path: list[str]) -> Any:
    if not path:
        return None
    parent = read_value(document, path[:-1])
    token = path[-1]
    if isinstance(parent, dict) and token in parent:
        del parent[token]
    elif isinstance(parent, list):
        del parent[list_index(parent, token, path, allow_end=False)]
    else:
        raise PatchApplyError(f"path {format_pointer(path)!r} does not exist")
    return document


def list_index(items: list[Any], token: str, path: list[str], allow_end: bool) -> int:
    # "-" is RFC 6901's name for the position after the last element.
    if token == "-" and allow_end:  # noqa: S105
        return len(items)
    limit = len(items) if allow_end else len(items) - 1
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchApplyError(
            f"path {format_pointer(path)!r}: {token!r} is not an index"
        )
    index = int(token)
    if index > limit:
        raise PatchApplyError(
            f"path {format_pointer(path)!r}: index {index} is out of range"
        )
    return index


def format_pointer(path: list[str]) -> str:
    return "".join("/" + token.replace("~", "~0").replace("/", "~1") for token in path)


def json_equal(left: Any, right: Any) -> bool:
    """Compare as JSON values, so that true is not equal to 1."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(
            json_equal(left[key], right[key]) for key in left
        )
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and left == right
