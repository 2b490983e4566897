"""Built-in actions by name; each module under mitigations/actions registers its own."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing the actions package here would be circular
    from mitigations.actions.base import Action

_ACTIONS: dict[str, "Action"] = {}


class UnknownActionError(KeyError):
    pass


def register(*names: str):  # type: ignore[no-untyped-def]
    """Register an Action subclass under one or more catalog names."""

    def decorate(cls: type["Action"]) -> type["Action"]:
        for name in names:
            if name in _ACTIONS:
                raise ValueError(f"action {name!r} is registered twice")
            instance = cls()
            instance.name = name  # type: ignore[misc]
            _ACTIONS[name] = instance
        return cls

    return decorate


def _load() -> None:
    import mitigations.actions  # noqa: F401 - registers every built-in action


def get_action(name: str) -> "Action":
    _load()
    try:
        return _ACTIONS[name]
    except KeyError:
        raise UnknownActionError(name) from None


def action_names() -> frozenset[str]:
    _load()
    return frozenset(_ACTIONS)
